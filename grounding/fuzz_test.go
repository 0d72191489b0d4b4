package grounding

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	"github.com/groundgate/groundgate/policies"
	"github.com/groundgate/groundgate/tokens"
)

var (
	fuzzCase  = regexp.MustCompile(`^CAS-\d{5}-[A-Z0-9]{6}$`)
	fuzzEmail = regexp.MustCompile(`^[a-z0-9._%+-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,24}$`)
)

// FuzzExtract: any header value and body; no panic, at most MaxKeys keys,
// every key normalised and matching its kind's pattern.
func FuzzExtract(f *testing.F) {
	f.Add("CAS-01234-X1Y2Z3", []byte(`{"messages":[{"role":"user","content":"CAS-01234-X1Y2Z3 a@b.example"}],"metadata":{"case_number":"CAS-11111-AAAAAA"},"user":"x@y.example"}`))
	f.Add("cas-01234-x1y2z3, CAS-00000-000000", []byte(`{"messages":[{"role":"user","content":[{"type":"text","text":"cas-99999-zzzzzz"}]}]}`))
	f.Add("", []byte(`{"metadata":{"case_number":["CAS-11111-AAAAAA",1,null]}}`))
	f.Add("\xff", []byte("{\"messages\":[{\"role\":\"user\",\"content\":\"\xff CAS-01234-X1Y2Z3\"}]}"))
	x, err := NewExtractor([]KeySpec{
		{Header: "x-groundgate-case", Kind: "case"},
		{Metadata: "case_number", Kind: "case"},
		{User: true, Kind: "email"},
		{Message: true, Kind: "case"},
		{Message: true, Kind: "email"},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		keys := x.Extract(http.Header{"X-Groundgate-Case": {header}}, body)
		if len(keys) > MaxKeys {
			t.Fatalf("%d keys", len(keys))
		}
		seen := map[string]bool{}
		for _, k := range keys {
			if seen[k.dedupeKey()] {
				t.Fatalf("duplicate key %v", k)
			}
			seen[k.dedupeKey()] = true
			switch k.Entity {
			case EntityIncident:
				if !fuzzCase.MatchString(k.Value) {
					t.Fatalf("bad case number %q", k.Value)
				}
			case EntityContact:
				if !fuzzEmail.MatchString(k.Value) {
					t.Fatalf("bad email %q", k.Value)
				}
			default:
				t.Fatalf("unexpected entity %v", k)
			}
		}
	})
}

// FuzzParseArticleFile: front matter, Markdown, HTML and JSON articles.
// No panic; articles always have an id, a number or title, and valid
// UTF-8 content.
func FuzzParseArticleFile(f *testing.F) {
	f.Add(byte(0), []byte("---\narticlepublicnumber: KA-1\ntitle: T\nkeywords: [a, b]\n---\n# H\n\nbody"))
	f.Add(byte(0), []byte("---\nkeywords: a, b\nisinternal: yes\n---\n"))
	f.Add(byte(0), []byte("---\n&a [*a]\n---\n"))
	f.Add(byte(1), []byte(`<html><head><title>T</title><meta name="keywords" content="a,b"></head><body><h2>S</h2><p>x<br>y</p><ul><li>1</li></ul></body></html>`))
	f.Add(byte(1), []byte(`<div><h1>only</h1><script>x</script>`))
	f.Add(byte(2), []byte(`{"value":[{"articlepublicnumber":"KA-1","title":"T","content":"<p>x</p>","statecode":3}]}`))
	f.Add(byte(2), []byte(`[{"knowledgearticleid":"a"},{"knowledgearticleid":"b","content":"<"}]`))
	exts := []string{".md", ".html", ".json"}
	f.Fuzz(func(t *testing.T, ext byte, data []byte) {
		name := "kb/article" + exts[int(ext)%len(exts)]
		arts, err := ParseArticleFile(name, data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), name+": ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, a := range arts {
			if a.ID == "" || a.Title == "" {
				t.Fatalf("article without id or title: %+v", a)
			}
			if !utf8.ValidString(a.Content) || strings.Contains(a.Content, "\r") {
				t.Fatalf("content %q", a.Content)
			}
		}
	})
}

// FuzzChunkArticle: chunks never exceed the cap, are numbered 0…n-1, and
// lose no word of the content.
func FuzzChunkArticle(f *testing.F) {
	f.Add("## A\n\npara one. para two.\n\n## B\n\n"+strings.Repeat("word ", 200), uint8(40))
	f.Add(strings.Repeat("x", 500), uint8(1))
	f.Add("#\n\n#######\n\n# \n\nü. ü! ü?", uint8(3))
	enc := encoder(f)
	f.Fuzz(func(t *testing.T, content string, capTokens uint8) {
		if !utf8.ValidString(content) || len(content) > 4000 {
			return
		}
		max := int(capTokens)%200 + 8 // a single character can cost up to 4 tokens
		cs := ChunkArticle(Article{ID: "a", Content: content}, enc, max)
		var all strings.Builder
		for i, c := range cs {
			if c.ChunkID != itoa(i) || c.Tokens > max || c.Tokens != enc.Count(c.Text) {
				t.Fatalf("chunk %d: id %s, %d tokens (cap %d)", i, c.ChunkID, c.Tokens, max)
			}
			all.WriteString(c.Text)
			all.WriteByte(' ')
		}
		got := strings.Join(strings.Fields(all.String()), "")
		for _, w := range strings.Fields(normalizeNewlines(content)) {
			if !strings.Contains(got, w) && !isHeading(w) {
				t.Fatalf("word %q lost", w)
			}
		}
	})
}

// FuzzBuildQuery: any chat body; no panic, the query text within
// MaxQueryText, weights in (0, 1], at most turns user parts.
func FuzzBuildQuery(f *testing.F) {
	f.Add([]byte(`{"messages":[{"role":"user","content":"hotel Avalon"},{"role":"assistant","content":"yes"},{"role":"user","content":"big rooms?"}]}`), uint8(3), uint8(12))
	f.Add([]byte(`{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}`), uint8(1), uint8(1))
	f.Add([]byte("{\"messages\":[{\"role\":\"assistant\",\"content\":\"\xff\"}]}"), uint8(0), uint8(0))
	f.Fuzz(func(t *testing.T, body []byte, turns, lookback uint8) {
		if !gjson.ValidBytes(body) {
			return
		}
		spec := policies.ArticleQuery{Turns: int(turns%50) + 1, Lookback: int(lookback%200) + 1}
		q := BuildQuery(Conversation(gjson.ParseBytes(body), 0), spec.WithDefaults())
		if len(q.Text) > MaxQueryText {
			t.Fatalf("text of %d bytes", len(q.Text))
		}
		users := 0
		for _, p := range q.Parts {
			if p.Weight <= 0 || p.Weight > 1 {
				t.Fatalf("weight %v", p.Weight)
			}
			if p.Weight == 1 || strings.TrimSpace(p.Text) == "" {
				users++
			}
		}
		if users > spec.Turns+1 || len(q.Mentions) > spec.Lookback {
			t.Fatalf("%d parts, %d mentions for %+v", len(q.Parts), len(q.Mentions), spec)
		}
	})
}

// FuzzPackTokens packs chunks of any text and title and checks that the
// packing's token count, a sum of per-article counts, equals a count of
// the articles as templates print them.
func FuzzPackTokens(f *testing.F) {
	f.Add("Hold the power button.\n\nThen release it.", "Reset", "x y", 3)
	f.Add("a>>>\n\n<<<b", "<<<t>>>", "\n\n/etc", 2)
	f.Add("émoji 👍\r\n\r\n\tend", "", "", 1)
	enc, err := tokens.ForModel("gpt-4o")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text, title, other string, n int) {
		n = 1 + (n&7)%4
		hits := make([]Hit, n)
		for i := range hits {
			body := text
			if i%2 == 1 {
				body = other + text
			}
			hits[i] = Hit{Chunk: Chunk{ArticleID: "a" + strconv.Itoa(i), ChunkID: "0", Title: title, Number: "KA-" + strconv.Itoa(i), Text: body + strconv.Itoa(i)}}
		}
		p, err := PackLimits(nil, hits, Limits{Tokens: 1 << 20}, enc)
		if err != nil {
			t.Fatal(err)
		}
		want, err := CountContext(p.Records, p.Articles, enc)
		if err != nil {
			t.Fatal(err)
		}
		if p.Tokens != want {
			t.Fatalf("Tokens %d, the rendering counts %d", p.Tokens, want)
		}
	})
}
