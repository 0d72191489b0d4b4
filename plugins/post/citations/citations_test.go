package citations

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/tidwall/gjson"

	"github.com/groundgate/groundgate/grounding"
	"github.com/groundgate/groundgate/post"
)

// testPacked is what three retrieved chunks look like after
// grounding.Pack: doc1 has a public number and a URL, doc2 has a number
// but no URL, doc3 only an id.
func testPacked() *grounding.Packed {
	return &grounding.Packed{Docs: []grounding.Doc{
		{Ref: "doc1", ArticleID: "a-1", Number: "KA-01234", Title: "Reset a password", URL: "https://kb.example/KA-01234", ChunkID: "0", Content: "Go to Settings > Security."},
		{Ref: "doc2", ArticleID: "a-2", Number: "KA-05678", Title: "Unlock an account", ChunkID: "3", Content: "Accounts unlock after 30 minutes."},
		{Ref: "doc3", ArticleID: "a-3", Title: "", Content: "Call \"support\" on 555-0100."},
	}}
}

func mustNew(t testing.TB, c Citations) *Citations {
	t.Helper()
	p, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// rewrite runs the non-streamed path on text: one Delta, then Finish.
func rewrite(p *Citations, packed *grounding.Packed, text string) (string, []byte, *post.Result) {
	res := new(post.Result)
	rw := p.NewRewriter(&post.Request{Packed: packed}, res)
	a, c1 := rw.Delta(text)
	c1 = append([]byte(nil), c1...)
	b, c2 := rw.Finish()
	return a + b, post.MergeContext(c1, append([]byte(nil), c2...)), res
}

func TestRewriteMarkers(t *testing.T) {
	def := mustNew(t, Citations{})
	for _, tc := range []struct {
		name, in, want string
		cited          []int
		invented, dups int
	}{
		{"renumbered by first citation", "A [doc2]. B [doc1]. C [doc2].", "A [doc1]. B [doc2]. C [doc1].", []int{1, 0}, 0, 0},
		{"kept in order", "A [doc1] B [doc2] C [doc3]", "A [doc1] B [doc2] C [doc3]", []int{0, 1, 2}, 0, 0},
		{"invented dropped", "X [doc9] Y [doc0] Z [doc01] W [doc4].", "X  Y  Z  W .", nil, 4, 0},
		{"invented among valid", "See [doc3][doc7] and [doc1].", "See [doc1] and [doc2].", []int{2, 0}, 1, 0},
		{"adjacent duplicate", "Fact [doc2][doc2].", "Fact [doc1].", []int{1}, 0, 1},
		{"duplicate across invented", "Fact [doc1][doc5][doc1].", "Fact [doc1].", []int{0}, 1, 1},
		{"separated duplicate kept", "[doc1] and [doc1]", "[doc1] and [doc1]", []int{0}, 0, 0},
		{"not markers", "[Doc1] [doc 1] [doc] [doc1234567] arr[0] [d", "[Doc1] [doc 1] [doc] [doc1234567] arr[0] [d", nil, 0, 0},
		{"bracket before marker", "[[doc2]]", "[[doc1]]", []int{1}, 0, 0},
		{"six digits invented", "[doc123456]", "", nil, 1, 0},
		{"unicode around", "Café [doc3] 日本", "Café [doc1] 日本", []int{2}, 0, 0},
		{"empty", "", "", nil, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, res := rewrite(def, testPacked(), tc.in)
			if got != tc.want {
				t.Errorf("rewrite(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if !reflect.DeepEqual(res.Cited, tc.cited) {
				t.Errorf("cited %v, want %v", res.Cited, tc.cited)
			}
			if res.Invented != tc.invented || res.Duplicates != tc.dups {
				t.Errorf("invented %d dups %d, want %d %d", res.Invented, res.Duplicates, tc.invented, tc.dups)
			}
		})
	}
}

// The marker validity rule is grounding.Packed.Doc's.
func TestValidityMatchesPackedDoc(t *testing.T) {
	p := mustNew(t, Citations{Context: ContextOff})
	packed := testPacked()
	for _, digits := range []string{"0", "1", "2", "3", "4", "01", "001", "10", "999999", "000001"} {
		ref := "doc" + digits
		_, want := packed.Doc(ref)
		got, _, _ := rewrite(p, packed, "["+ref+"]")
		if kept := got != ""; kept != want {
			t.Errorf("[%s]: kept %v, Packed.Doc ok %v", ref, kept, want)
		}
	}
}

func TestNoDocs(t *testing.T) {
	p := mustNew(t, Citations{})
	got, ctx, res := rewrite(p, nil, "Answer [doc1].")
	if got != "Answer ." || res.Invented != 1 || ctx != nil {
		t.Errorf("got %q ctx %s invented %d", got, ctx, res.Invented)
	}
}

func TestFormat(t *testing.T) {
	p := mustNew(t, Citations{Format: "[{number}]({url})", FormatNoURL: "[{number}]"})
	got, _, _ := rewrite(p, testPacked(), "a [doc1] b [doc2] c [doc3] d [doc1]")
	want := "a [KA-01234](https://kb.example/KA-01234) b [KA-05678] c [a-3] d [KA-01234](https://kb.example/KA-01234)"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	p = mustNew(t, Citations{Format: "{{{n}|{doc}|{id}|{title}|{chunk_id}}}"})
	got, _, _ = rewrite(p, testPacked(), "[doc2][doc1]")
	if want := "{1|doc2|a-2|Unlock an account|3}{2|doc1|a-1|Reset a password|0}"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, bad := range []string{"{nope}", "{n", "x}", "{}"} {
		if _, err := New(Citations{Format: bad}); err == nil {
			t.Errorf("format %q: no error", bad)
		}
	}
}

// The non-streamed body: content rewritten, message.context.citations in
// Azure's shape (keys content, title, filepath, url, chunk_id; null for
// empty fields), an upstream context member kept, nothing else touched.
func TestBodyAzureContext(t *testing.T) {
	p := mustNew(t, Citations{Format: "[doc{n}]"})
	body := []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"Unlock waits [doc2]; call [doc3][doc8].","context":{"intent":"unlock"}}}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`)
	res := new(post.Result)
	out, err := post.NewChain(p).Body(body, &post.Request{Packed: testPacked()}, res)
	if err != nil {
		t.Fatal(err)
	}
	if got := gjson.GetBytes(out, "choices.0.message.content").String(); got != "Unlock waits [doc1]; call [doc2]." {
		t.Errorf("content %q", got)
	}
	wantCtx := `{"intent":"unlock","citations":[` +
		`{"content":"Accounts unlock after 30 minutes.","title":"Unlock an account","filepath":"KA-05678","url":null,"chunk_id":"3"},` +
		`{"content":"Call \"support\" on 555-0100.","title":null,"filepath":"a-3","url":null,"chunk_id":null}]}`
	if got := gjson.GetBytes(out, "choices.0.message.context").Raw; got != wantCtx {
		t.Errorf("context\n got %s\nwant %s", got, wantCtx)
	}
	// Exactly Azure's citation keys, in order.
	var keys []string
	gjson.GetBytes(out, "choices.0.message.context.citations.0").ForEach(func(k, _ gjson.Result) bool {
		keys = append(keys, k.String())
		return true
	})
	if want := []string{"content", "title", "filepath", "url", "chunk_id"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("citation keys %v, want %v", keys, want)
	}
	for _, path := range []string{"id", "object", "created", "model", "usage", "choices.0.finish_reason", "choices.0.message.role"} {
		if a, b := gjson.GetBytes(body, path).Raw, gjson.GetBytes(out, path).Raw; a != b {
			t.Errorf("%s changed: %s → %s", path, a, b)
		}
	}
	if !json.Valid(out) {
		t.Error("invalid JSON")
	}
	if !reflect.DeepEqual(res.Cited, []int{1, 2}) || res.Invented != 1 {
		t.Errorf("result %+v", res)
	}
}

func TestContextAll(t *testing.T) {
	p := mustNew(t, Citations{Context: ContextAll})
	got, ctx, _ := rewrite(p, testPacked(), "B [doc2] A [doc1] X [doc9]")
	if got != "B [doc2] A [doc1] X " {
		t.Errorf("all mode keeps injected numbers: %q", got)
	}
	var refs []string
	gjson.GetBytes(ctx, "citations").ForEach(func(_, c gjson.Result) bool {
		refs = append(refs, c.Get("content").String())
		return true
	})
	if len(refs) != 3 || refs[0] != "Go to Settings > Security." {
		t.Errorf("all mode lists every doc in injection order: %v", refs)
	}
	p = mustNew(t, Citations{Context: ContextOff})
	if _, ctx, _ := rewrite(p, testPacked(), "A [doc1]"); ctx != nil {
		t.Errorf("off mode: context %s", ctx)
	}
}

func TestRequireGrounding(t *testing.T) {
	flag := mustNew(t, Citations{Require: true})
	got, ctx, res := rewrite(flag, testPacked(), "No sources here [doc9].")
	if got != "No sources here ." || !res.Ungrounded || res.Refused || res.HeaderValue() != "ungrounded" {
		t.Errorf("flag: %q %+v", got, res)
	}
	if want := `{"citations":[],"ungrounded":true}`; string(ctx) != want {
		t.Errorf("flag context %s, want %s", ctx, want)
	}
	_, ctx, res = rewrite(flag, testPacked(), "Grounded [doc1].")
	if res.Ungrounded || gjson.GetBytes(ctx, "ungrounded").Exists() {
		t.Errorf("grounded answer flagged: %+v %s", res, ctx)
	}

	refuse := mustNew(t, Citations{Require: true, OnUngrounded: Refuse, Refusal: "Not in the knowledge base."})
	got, ctx, res = rewrite(refuse, testPacked(), "Made up [doc7].")
	if got != "Not in the knowledge base." || !res.Refused || res.HeaderValue() != "refused" {
		t.Errorf("refuse: %q %+v", got, res)
	}
	if want := `{"citations":[],"ungrounded":true}`; string(ctx) != want {
		t.Errorf("refuse context %s", ctx)
	}
	got, _, res = rewrite(refuse, testPacked(), "Real [doc2] answer.")
	if got != "Real [doc1] answer." || res.Refused || res.Ungrounded {
		t.Errorf("refuse, grounded: %q %+v", got, res)
	}
	// No docs injected at all: nothing can be cited.
	got, _, res = rewrite(refuse, nil, "Anything.")
	if got != "Not in the knowledge base." || !res.Refused {
		t.Errorf("refuse without docs: %q %+v", got, res)
	}
	// The default refusal.
	def := mustNew(t, Citations{Require: true, OnUngrounded: Refuse})
	if got, _, _ := rewrite(def, testPacked(), "x"); got != DefaultRefusal {
		t.Errorf("default refusal %q", got)
	}
}

// With refuse, the answer is held until its first citation, at most
// max_hold bytes: past that the answer is refused, streamed or not.
func TestMaxHold(t *testing.T) {
	p := mustNew(t, Citations{Require: true, OnUngrounded: Refuse, MaxHold: 10})
	if got, _, _ := rewrite(p, testPacked(), "0123456789[doc1]"); got != "0123456789[doc1]" {
		t.Errorf("within max_hold: %q", got)
	}
	got, ctx, res := rewrite(p, testPacked(), "0123456789X[doc1]")
	if got != DefaultRefusal || !res.Refused || len(res.Cited) != 0 {
		t.Errorf("past max_hold: %q %+v", got, res)
	}
	if want := `{"citations":[],"ungrounded":true}`; string(ctx) != want {
		t.Errorf("context %s", ctx)
	}
	// Streamed, the held text never exceeds max_hold.
	rw := p.NewRewriter(&post.Request{Packed: testPacked()}, new(post.Result)).(*rewriter)
	for _, c := range "0123456789X[doc1] more" {
		if out, _ := rw.Delta(string(c)); out != "" {
			t.Fatalf("emitted %q before the refusal", out)
		}
		if len(rw.pending) > 10 {
			t.Fatalf("holding %d bytes", len(rw.pending))
		}
	}
	if out, _ := rw.Finish(); out != DefaultRefusal {
		t.Errorf("finish %q", out)
	}
}

// The hold-back buffer only ever holds a possible marker prefix: at most
// 10 bytes, and everything else is emitted at once.
func TestHoldBackBounded(t *testing.T) {
	p := mustNew(t, Citations{})
	rw := p.NewRewriter(&post.Request{Packed: testPacked()}, new(post.Result)).(*rewriter)
	steps := []struct{ in, out string }{
		{"Hello ", "Hello "},
		{"[do", ""},
		{"c1", ""},
		{"] wor", "[doc1] wor"},
		{"ld [", "ld "},
		{"x", "[x"},
		{"[doc12345", ""},
		{"6", ""},
		{"7]", "[doc1234567]"},
		{"[doc2", ""},
	}
	for _, s := range steps {
		got, _ := rw.Delta(s.in)
		if got != s.out {
			t.Errorf("Delta(%q) = %q, want %q", s.in, got, s.out)
		}
		if rw.nh > 10 {
			t.Fatalf("holding %d bytes", rw.nh)
		}
	}
	if got, _ := rw.Finish(); got != "[doc2" {
		t.Errorf("Finish = %q, want the held prefix as text", got)
	}
}

// streamRewrite feeds pieces and returns the concatenated output and the
// merged context.
func streamRewrite(rw post.Rewriter, pieces []string) (string, []byte) {
	var b strings.Builder
	var ctx []byte
	for _, p := range pieces {
		out, c := rw.Delta(p)
		b.WriteString(out)
		ctx = post.MergeContext(ctx, append([]byte(nil), c...))
	}
	out, c := rw.Finish()
	b.WriteString(out)
	return b.String(), post.MergeContext(ctx, append([]byte(nil), c...))
}

var streamAnswers = []string{
	"To reset it, open Settings [doc1]. Accounts unlock after 30 minutes [doc2][doc2]. Invented [doc9]; [doc3].",
	"[doc3][doc1][doc12][doc1] tail [do",
	"No citations at all, café ☕ 日本語 [Doc1] [doc 2] [[doc2]] [doc0002] [doc1234567]",
	"[[[[doc1]]]] [doc][doc1",
	"",
	"Long answer before the citation " + strings.Repeat("é", 40) + " [doc2].",
}

var streamConfigs = []Citations{
	{},
	{Format: "[{number}]({url})", FormatNoURL: "[{number}]"},
	{Context: ContextAll},
	{Context: ContextOff, Format: "<{doc}>"},
	{Require: true},
	{Require: true, OnUngrounded: Refuse, Refusal: "No."},
	{Require: true, OnUngrounded: Refuse, MaxHold: 40},
}

// The stream rewrite equals the non-streamed rewrite for every split of
// the answer into two pieces at every byte boundary, and for random
// multi-splits; so does the context.
func TestStreamEqualsBody(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for ci, cfg := range streamConfigs {
		p := mustNew(t, cfg)
		for ai, ans := range streamAnswers {
			req := &post.Request{Packed: testPacked()}
			wantRes := new(post.Result)
			want, wantCtx := streamRewrite(p.NewRewriter(req, wantRes), []string{ans})
			check := func(pieces []string) {
				t.Helper()
				res := new(post.Result)
				got, ctx := streamRewrite(p.NewRewriter(req, res), pieces)
				if got != want {
					t.Fatalf("config %d answer %d split %q:\n got %q\nwant %q", ci, ai, pieces, got, want)
				}
				if string(ctx) != string(wantCtx) {
					t.Fatalf("config %d answer %d split %q: context\n got %s\nwant %s", ci, ai, pieces, ctx, wantCtx)
				}
				if !reflect.DeepEqual(res, wantRes) {
					t.Fatalf("config %d answer %d split %q: result %+v, want %+v", ci, ai, pieces, res, wantRes)
				}
			}
			for i := 0; i <= len(ans); i++ {
				check([]string{ans[:i], ans[i:]})
			}
			for range 200 {
				check(randomSplit(rng, ans))
			}
			// One byte at a time.
			var bytes []string
			for i := range len(ans) {
				bytes = append(bytes, ans[i:i+1])
			}
			check(bytes)
		}
	}
}

func randomSplit(rng *rand.Rand, s string) []string {
	var out []string
	for len(s) > 0 {
		n := rng.IntN(min(len(s), 12) + 1) // empty pieces too
		out = append(out, s[:n])
		s = s[n:]
	}
	return append(out, "")
}

// In "all" mode the citations come with the first delta that emits
// text, as Azure sends context in the first delta.
func TestAllModeContextFirst(t *testing.T) {
	p := mustNew(t, Citations{Context: ContextAll})
	rw := p.NewRewriter(&post.Request{Packed: testPacked()}, new(post.Result))
	if out, ctx := rw.Delta(""); out != "" || ctx != nil {
		t.Errorf("empty delta: %q %s", out, ctx)
	}
	if out, ctx := rw.Delta("[do"); out != "" || ctx != nil {
		t.Errorf("held delta: %q %s", out, ctx)
	}
	out, ctx := rw.Delta("c1] Hi")
	if out != "[doc1] Hi" || gjson.GetBytes(ctx, "citations.#").Int() != 3 {
		t.Errorf("first content: %q %s", out, ctx)
	}
	if _, ctx := rw.Delta("more"); ctx != nil {
		t.Errorf("context sent twice")
	}
	if _, ctx := rw.Finish(); ctx != nil {
		t.Errorf("context at finish: %s", ctx)
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []Citations{
		{Context: "some"},
		{OnUngrounded: Refuse},
		{Require: true, OnUngrounded: "drop"},
		{Refusal: "x"},
		{Require: true, Refusal: "x"},
		{Require: true, OnUngrounded: Refuse, Refusal: "see [doc1]"},
		{MaxHold: -1},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}

func TestCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`citations {
		format "[{number}]({url})"
		format_no_url "[{number}]"
		context all
		require
		on_ungrounded refuse
		refusal "Sorry."
		max_hold 4096
	}`)
	var c Citations
	if err := c.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	want := Citations{Format: "[{number}]({url})", FormatNoURL: "[{number}]", Context: "all", Require: true,
		OnUngrounded: "refuse", Refusal: "Sorry.", MaxHold: 4096}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got %+v\nwant %+v", c, want)
	}
	if _, err := New(c); err != nil {
		t.Error(err)
	}
	for in, msg := range map[string]string{
		"citations {\n format x\n colour red\n}": `"colour"`,
		"citations {\n context most\n}":          "context",
		"citations {\n require maybe\n}":         "require",
		"citations {\n on_ungrounded drop\n}":    "on_ungrounded",
		"citations {\n max_hold 0\n}":            "max_hold",
		"citations {\n format\n}":                "argument",
		"citations extra":                        "argument",
	} {
		var c Citations
		err := c.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in))
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: error %v, want one mentioning %s", in, err, msg)
		}
	}
}

func ExampleCitations() {
	p, _ := New(Citations{Format: "[{number}]({url})", FormatNoURL: "[{number}]"})
	res := new(post.Result)
	rw := p.NewRewriter(&post.Request{Packed: testPacked()}, res)
	a, _ := rw.Delta("Wait 30 minutes [doc2] or reset it [do")
	b, _ := rw.Delta("c1]. Not [doc7].")
	c, ctx := rw.Finish()
	fmt.Println(a + b + c)
	fmt.Println(gjson.GetBytes(ctx, "citations.#.filepath"))
	// Output:
	// Wait 30 minutes [KA-05678] or reset it [KA-01234](https://kb.example/KA-01234). Not .
	// ["KA-05678","KA-01234"]
}

func TestModuleRegistered(t *testing.T) {
	m, err := caddy.GetModule("llm_gateway.post.citations")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.New().(post.Processor); !ok {
		t.Error("not a post.Processor")
	}
}
