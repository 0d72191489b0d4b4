package blocklist

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/groundgate/groundgate/filters"
	"github.com/groundgate/groundgate/filters/filterstest"
)

var allRedact = filters.StageActions{Input: filters.Redact, Context: filters.Redact, Output: filters.Redact}

func mustNew(t testing.TB, terms []string, wb bool) *Blocklist {
	t.Helper()
	b, err := New("bl", terms, allRedact, wb)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func spans(text string, fs []filters.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, text[f.Start:f.End])
	}
	return out
}

func TestMatches(t *testing.T) {
	b := mustNew(t, []string{"café crème", "naïve", "Straße", "bad", "c++", "gift card", "ÆON"}, true)
	for _, tc := range []struct {
		text string
		want []string
	}{
		{"a cafe creme please", []string{"cafe creme"}},
		{"A CAFÉ CRÈME!", []string{"CAFÉ CRÈME"}},
		{"un cafe\u0301 cre\u0300me", []string{"cafe\u0301 cre\u0300me"}}, // decomposed accents
		{"so NAIVE", []string{"NAIVE"}},
		{"die STRASSE", []string{"STRASSE"}},
		{"die strasse", []string{"strasse"}},
		{"that is bad.", []string{"bad"}},
		{"badge", nil},                                   // word boundary at the end
		{"a sinbad story", nil},                          // word boundary at the start
		{"bad_thing", nil},                               // '_' is a word character
		{"bad2", nil},                                    // digits too
		{"éBAD", nil},                                    // a letter before
		{"(bad)", []string{"bad"}},                       // punctuation is a boundary
		{"I like c++ and c++11", []string{"c++", "c++"}}, // '+' ends no word: no boundary needed after it
		{"a gift   card", []string{"gift   card"}},       // whitespace runs
		{"a gift\ncard", []string{"gift\ncard"}},
		{"a gift\u00a0card", []string{"gift\u00a0card"}}, // no-break space
		{"b\u200bad", []string{"b\u200bad"}},             // zero-width space inside
		{"ＢＡＤ", []string{"ＢＡＤ"}},                         // fullwidth
		{"aeon and æon", []string{"aeon", "æon"}},
		{"", nil},
		{"bab bad", []string{"bad"}},
	} {
		got := spans(tc.text, b.Scan(tc.text, filters.StageInput))
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%q: got %q, want %q", tc.text, got, tc.want)
		}
	}
}

func TestNoWordBoundaries(t *testing.T) {
	b := mustNew(t, []string{"bad"}, false)
	got := spans("badge sinbad", b.Scan("badge sinbad", filters.StageOutput))
	if fmt.Sprint(got) != "[bad bad]" {
		t.Errorf("got %q", got)
	}
}

func TestOverlaps(t *testing.T) {
	b := mustNew(t, []string{"he", "she", "his", "hers", "she sells"}, false)
	text := "ushers: she sells"
	got := spans(text, b.Scan(text, filters.StageOutput))
	want := "[she he hers she he she sells]"
	if fmt.Sprint(got) != want {
		t.Errorf("got %q, want %s", got, want)
	}
}

func TestActionsPerStage(t *testing.T) {
	b, err := New("x", []string{"secret"}, filters.StageActions{Input: filters.Block, Output: filters.Redact}, true)
	if err != nil {
		t.Fatal(err)
	}
	c := filters.MustChain([]filters.Filter{b}, filters.Options{})
	if r := c.Run("my secret", filters.StageInput); !r.Blocked {
		t.Error("input not blocked")
	}
	if r := c.Run("my secret", filters.StageOutput); r.Blocked || r.Text != "my [REDACTED:x]" {
		t.Errorf("output: %+v", r)
	}
	if r := c.Run("my secret", filters.StageContext); r.Findings != nil || r.Text != "my secret" {
		t.Errorf("context (off): %+v", r)
	}
}

var streamTexts = []string{
	"Our competitor Acme Corp sells the same café crème maker; ACME CORP's price is higher.",
	"bad badge sinbad (bad) b\u200bad cafe\u0301 cre\u0300me café crème Straße",
	"ééé bad éé ñ 日本語 bad\n\nbad",
	"she sells his hers ushers",
	"acme  corp acme\tcorp acme\u00a0corp",
}

func TestStreamEqualsWhole(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, wb := range []bool{true, false} {
		b := mustNew(t, []string{"acme corp", "café crème", "bad", "straße", "she", "hers", "he", "日本"}, wb)
		c := filters.MustChain([]filters.Filter{b}, filters.Options{})
		for _, text := range streamTexts {
			filterstest.Check(t, c, filters.StageOutput, text, rnd, 200)
		}
	}
}

func TestStreamBlock(t *testing.T) {
	b, err := New("x", []string{"forbidden word"}, filters.StageActions{Output: filters.Block}, true)
	if err != nil {
		t.Fatal(err)
	}
	c := filters.MustChain([]filters.Filter{b}, filters.Options{})
	rnd := rand.New(rand.NewPCG(3, 4))
	r := filterstest.Check(t, c, filters.StageOutput, "this is fine, then a FORBIDDEN  word and more text after it", rnd, 100)
	if !r.Blocked {
		t.Fatal("not blocked")
	}
}

func TestLargeList(t *testing.T) {
	rnd := rand.New(rand.NewPCG(5, 6))
	terms := make([]string, 50000)
	for i := range terms {
		terms[i] = fmt.Sprintf("term%dx%d", i, rnd.IntN(1000))
	}
	b := mustNew(t, append(terms, "needle"), true)
	text := strings.Repeat("hay ", 100) + "NEEDLE " + terms[4242] + " hay"
	got := spans(text, b.Scan(text, filters.StageInput))
	if fmt.Sprint(got) != fmt.Sprintf("[NEEDLE %s]", terms[4242]) {
		t.Errorf("got %q", got)
	}
}

func TestFilesAndProvision(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "terms.txt")
	if err := os.WriteFile(p, []byte("# comment\n\nfoo bar\n  baz  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := &Blocklist{Name: "files", Files: []string{p}, Terms: []string{"qux"}, Actions: allRedact}
	if err := b.Provision(caddy.Context{}); err != nil {
		t.Fatal(err)
	}
	if err := b.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := spans("foo bar, baz, qux, comment", b.Scan("foo bar, baz, qux, comment", filters.StageInput)); fmt.Sprint(got) != "[foo bar baz qux]" {
		t.Errorf("got %q", got)
	}
	if err := (&Blocklist{Files: []string{filepath.Join(dir, "missing")}, Actions: allRedact}).Provision(caddy.Context{}); err == nil {
		t.Error("missing file accepted")
	}
	if err := (&Blocklist{Terms: []string{" ", "\u200b"}, Actions: allRedact}).Provision(caddy.Context{}); err == nil {
		t.Error("empty list accepted")
	}
	nb := &Blocklist{Terms: []string{"x"}}
	if err := nb.Provision(caddy.Context{}); err != nil {
		t.Fatal(err)
	}
	if err := nb.Validate(); err == nil || !strings.Contains(err.Error(), "no stage") {
		t.Errorf("no actions: %v", err)
	}
}

func TestUnmarshalCaddyfile(t *testing.T) {
	in := `blocklist competitors {
		terms "acme corp" globex
		terms initech
		file /tmp/a.txt /tmp/b.txt
		input annotate
		output redact
		context detect
		word_boundaries off
	}`
	var b Blocklist
	if err := b.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(&b)
	want := `{"name":"competitors","terms":["acme corp","globex","initech"],"files":["/tmp/a.txt","/tmp/b.txt"],"actions":{"input":"annotate","context":"annotate","output":"redact"},"word_boundaries":false}`
	if string(js) != want {
		t.Errorf("got  %s\nwant %s", js, want)
	}
	var back Blocklist
	if err := json.Unmarshal(js, &back); err != nil || back.Actions != b.Actions {
		t.Errorf("round trip: %v %+v", err, back.Actions)
	}
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	for in, want := range map[string]string{
		"blocklist {\n bogus 1\n}":            `unrecognized blocklist subdirective "bogus"`,
		"blocklist a b":                       "wrong argument count",
		"blocklist {\n terms\n}":              "wrong argument count",
		"blocklist {\n file\n}":               "wrong argument count",
		"blocklist {\n input\n}":              "wrong argument count",
		"blocklist {\n input maybe\n}":        `unknown action "maybe"`,
		"blocklist {\n word_boundaries x\n}":  "want on or off",
		"blocklist {\n name\n}":               "wrong argument count",
		"blocklist {\n output block extra\n}": "wrong argument count",
	} {
		var b Blocklist
		err := b.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", in, err, want)
		}
	}
}

func TestUnmarshalAsGuest(t *testing.T) {
	d := caddyfile.NewTestDispenser("filter blocklist words {\n terms x\n output block\n}")
	d.Next()
	if !d.NextArg() {
		t.Fatal("no module name")
	}
	unm, err := caddyfile.UnmarshalModule(d, "llm_gateway.filters."+d.Val())
	if err != nil {
		t.Fatal(err)
	}
	if b := unm.(*Blocklist); b.Name != "words" || b.Actions.Output != filters.Block {
		t.Errorf("got %+v", b)
	}
}

// FuzzScan checks, for any text and term, that matches are where the
// folded term is, that streaming in two pieces gives the whole-text
// result, and that nothing panics.
func FuzzScan(f *testing.F) {
	f.Add("bad", "that is bad.", 3)
	f.Add("café crème", "CAFE\u0301 CRE\u0300ME", 5)
	f.Add("straße", "STRASSE", 2)
	f.Add("he", "ushers", 1)
	f.Add("日本", "日本語", 4)
	f.Add("a b", "a \u200b b a\u00a0b", 0)
	f.Fuzz(func(t *testing.T, term, text string, split int) {
		for _, wb := range []bool{true, false} {
			b, err := New("f", []string{term}, allRedact, wb)
			if err != nil {
				return // term folds to nothing
			}
			whole := b.Scan(text, filters.StageOutput)
			for _, x := range whole {
				if x.Start < 0 || x.End > len(text) || x.Start >= x.End {
					t.Fatalf("bad span %+v in %q", x, text)
				}
			}
			c := filters.MustChain([]filters.Filter{b}, filters.Options{})
			if split < 0 {
				split = -split
			}
			i := split % (len(text) + 1)
			want := c.Run(text, filters.StageOutput).Text
			got, v, _ := filterstest.Stream(c, filters.StageOutput, []string{text[:i], text[i:]})
			if v != filters.Pass || got != want {
				t.Fatalf("term %q text %q split %d: stream %q, whole %q", term, text, i, got, want)
			}
		}
	})
}

func benchText() string {
	base := "Hi, I ordered the X200 wireless headphones on March 3rd (order ORD-20240303-7781) and they arrived with a cracked case. " +
		"The left earbud doesn't charge and the app says firmware 2.3.14 is current. Could you send a replacement or refund? " +
		"I've tried resetting them twice, cleaning the contacts, and a different cable. Thanks for your help! "
	var sb strings.Builder
	for sb.Len() < 2048 {
		sb.WriteString(base)
	}
	return sb.String()[:2048]
}

func BenchmarkScan2KB(b *testing.B) {
	rnd := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{100, 10000} {
		terms := make([]string, n)
		for i := range terms {
			terms[i] = fmt.Sprintf("w%dq%d", i, rnd.IntN(1e6))
		}
		terms = append(terms, "cracked case", "refund")
		bl := mustNew(b, terms, true)
		text := benchText()
		b.Run(fmt.Sprintf("terms=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				bl.Scan(text, filters.StageInput)
			}
		})
	}
}

// What clients send is matched despaced and folded (look-alike letters,
// full-width forms, invisible characters); the redaction covers the
// spaced-out original.
func TestNormalisedInput(t *testing.T) {
	b := mustNew(t, []string{"wire transfer", "kill"}, true)
	for text, want := range map[string]string{
		"send a w i r e  t r a n s f e r now": "w i r e  t r a n s f e r",
		"send a W.I.R.E T.R.A.N.S.F.E.R now":  "W.I.R.E T.R.A.N.S.F.E.R",
		"I will k-i-l-l it":                   "k-i-l-l",
		"a wіrе trаnsfеr":                     "wіrе trаnsfеr", // Cyrillic і е а
		"ｗｉｒｅ ｔｒａｎｓｆｅｒ":                       "ｗｉｒｅ ｔｒａｎｓｆｅｒ",
		"wi\u200bre tran\u00adsfer":           "wi\u200bre tran\u00adsfer",
	} {
		got := spans(text, b.Scan(text, filters.StageInput))
		if len(got) != 1 || got[0] != want {
			t.Errorf("%q: found %q, want %q", text, got, want)
		}
	}
	if got := b.Scan("s k i l l e d", filters.StageInput); len(got) != 0 {
		t.Errorf("a spaced word containing a term: %v", got)
	}
}
