package regex

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/groundgate/groundgate/filters"
	"github.com/groundgate/groundgate/filters/filterstest"
)

var redactAll = filters.StageActions{Input: filters.Redact, Context: filters.Redact, Output: filters.Redact}

func mustNew(t testing.TB, ps ...Pattern) *Regex {
	t.Helper()
	r, err := New(redactAll, ps...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestSameAsRegexp: whole-text findings are regexp's FindAllStringIndex.
func TestSameAsRegexp(t *testing.T) {
	for _, tc := range []struct{ pat, text string }{
		{`ORD-\d{8}`, "orders ORD-12345678 and ORD-87654321, not ORD-1234"},
		{`\bcat\b`, "cat concat cat's cats cat"},
		{`(?i)project\s+falcon`, "PROJECT  Falcon and project falcon"},
		{`^line`, "line one\nline two"},
		{`(?m)^line`, "line one\nline two"},
		{`a+`, "baaab aab"},
		{`\Bing\b`, "sing ing singing"},
		{`aa`, "aaaaa"},
		{`x*y`, "xxy y xy"},
		{`é+`, "cafééé é"},
	} {
		r := mustNew(t, Pattern{Name: "p", Pattern: tc.pat})
		var got [][]int
		for _, f := range r.Scan(tc.text, filters.StageInput) {
			got = append(got, []int{f.Start, f.End})
		}
		var want [][]int
		for _, m := range regexp.MustCompile(tc.pat).FindAllStringIndex(tc.text, -1) {
			if m[1] > m[0] {
				want = append(want, m)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s on %q: got %v, want %v", tc.pat, tc.text, got, want)
		}
	}
}

func TestStreamEqualsWhole(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 1))
	sets := [][]Pattern{
		{{Name: "order", Pattern: `\bORD-\d{8}\b`}, {Name: "sku", Pattern: `SKU[- ]?[A-Z0-9]{4,10}`}},
		{{Name: "cat", Pattern: `\bcat\b`}, {Name: "ing", Pattern: `\Bing\b`}, {Name: "caps", Pattern: `(?m)^[A-Z]{2,5}`}},
		{{Name: "aa", Pattern: `aa`}, {Name: "aaa", Pattern: `a{3}`}, {Name: "long", Pattern: `x+y`}},
		{{Name: "euro", Pattern: `€\s?\d{1,6}(?:[.,]\d{2})?`}, {Name: "end", Pattern: `done$`}},
	}
	texts := []string{
		"orders ORD-12345678 and ORD-87654321x, SKU-AB12CD and SKU 99ZZ, not ORD-1234",
		"cat concat cat's cats cat\nSING singing ING\nABCDEF cat",
		"aaaaaaa baab xxxxy xy y aaaa",
		"costs € 129,99 or €5 — done",
		"naïve café ORD-00000001 cat ééé aa",
	}
	for _, ps := range sets {
		r := mustNew(t, ps...)
		c := filters.MustChain([]filters.Filter{r}, filters.Options{})
		for _, text := range texts {
			filterstest.Check(t, c, filters.StageOutput, text, rnd, 100)
		}
	}
}

func TestPerPatternActions(t *testing.T) {
	r, err := New(filters.StageActions{Output: filters.Redact},
		Pattern{Name: "order", Pattern: `ORD-\d{8}`},
		Pattern{Name: "key", Pattern: `sk-[a-z0-9]{8}`, Actions: &filters.StageActions{Input: filters.Block, Output: filters.Block}})
	if err != nil {
		t.Fatal(err)
	}
	c := filters.MustChain([]filters.Filter{r}, filters.Options{})
	if res := c.Run("ORD-12345678", filters.StageOutput); res.Text != "[REDACTED:order]" {
		t.Errorf("got %q", res.Text)
	}
	if res := c.Run("ORD-12345678", filters.StageInput); res.Findings != nil {
		t.Errorf("order at input (off): %+v", res.Findings)
	}
	if res := c.Run("my key sk-abcd1234", filters.StageInput); !res.Blocked {
		t.Error("key at input not blocked")
	}
	if !r.Active(filters.StageInput) || r.Active(filters.StageContext) {
		t.Error("Active")
	}
}

func TestProvisionErrors(t *testing.T) {
	for _, tc := range []struct {
		ps   []Pattern
		want string
	}{
		{nil, "no patterns"},
		{[]Pattern{{Name: "", Pattern: "x"}}, "no name"},
		{[]Pattern{{Name: "a", Pattern: "x"}, {Name: "a", Pattern: "y"}}, "duplicate"},
		{[]Pattern{{Name: "a", Pattern: "("}}, "missing closing"},
		{[]Pattern{{Name: "a", Pattern: "x*"}}, "empty string"},
	} {
		_, err := New(redactAll, tc.ps...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want %q", tc.ps, err, tc.want)
		}
	}
	if _, err := New(filters.StageActions{}, Pattern{Name: "a", Pattern: "x"}); err == nil || !strings.Contains(err.Error(), "no stage") {
		t.Errorf("no actions: %v", err)
	}
}

func TestUnmarshalCaddyfile(t *testing.T) {
	in := "regex {\n output redact\n max_match 128\n pattern order `ORD-\\d{8}`\n pattern key `sk-\\w{8}` {\n  input block\n }\n}"
	var r Regex
	if err := r.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(&r)
	want := `{"actions":{"output":"redact"},"patterns":[{"name":"order","pattern":"ORD-\\d{8}"},{"name":"key","pattern":"sk-\\w{8}","actions":{"input":"block"}}],"max_match":128}`
	if string(js) != want {
		t.Errorf("got  %s\nwant %s", js, want)
	}
	for in, want := range map[string]string{
		"regex {\n bogus\n}":                             `unrecognized regex subdirective "bogus"`,
		"regex x":                                        "wrong argument count",
		"regex {\n pattern a\n}":                         "wrong argument count",
		"regex {\n pattern a b c\n}":                     "wrong argument count",
		"regex {\n pattern a b {\n  nope x\n }\n}":       `unrecognized regex pattern subdirective "nope"`,
		"regex {\n pattern a b {\n  output maybe\n }\n}": `unknown action "maybe"`,
		"regex {\n max_match 0\n}":                       "want an integer >= 1",
	} {
		var r Regex
		err := r.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", in, err, want)
		}
	}
}

// FuzzScan: whole-text findings are regexp's, and a two-piece stream
// gives the whole-text result, for bounded patterns.
func FuzzScan(f *testing.F) {
	f.Add(`\bcat\b`, "cat concat cat", 4)
	f.Add(`a{2}`, "aaaaa", 2)
	f.Add(`(?m)^x.y$`, "xay\nxby", 3)
	f.Add(`é[a-z]{1,3}`, "éabc éé", 1)
	f.Add(`\Bing`, "singing", 5)
	f.Fuzz(func(t *testing.T, pat, text string, split int) {
		re, err := regexp.Compile(pat)
		if err != nil || re.MatchString("") {
			return
		}
		r, err := New(redactAll, Pattern{Name: "p", Pattern: pat})
		if err != nil {
			t.Fatalf("%q: %v", pat, err)
		}
		var got, want [][]int
		for _, f := range r.Scan(text, filters.StageOutput) {
			got = append(got, []int{f.Start, f.End})
		}
		for _, m := range re.FindAllStringIndex(text, -1) {
			if m[1] > m[0] {
				want = append(want, m)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%q on %q: got %v, want %v", pat, text, got, want)
		}
		if r.Patterns[0].re.MaxLen() < 0 {
			return // unbounded: streamed matches are capped (documented)
		}
		c := filters.MustChain([]filters.Filter{r}, filters.Options{})
		i := (split%(len(text)+1) + len(text) + 1) % (len(text) + 1)
		whole := c.Run(text, filters.StageOutput).Text
		s, v, _ := filterstest.Stream(c, filters.StageOutput, []string{text[:i], text[i:]})
		if v != filters.Pass || s != whole {
			t.Fatalf("%q on %q split %d: stream %q, whole %q", pat, text, i, s, whole)
		}
	})
}

func BenchmarkScan2KB(b *testing.B) {
	r := mustNew(b, Pattern{Name: "order", Pattern: `\bORD-\d{8}-\d{4}\b`}, Pattern{Name: "key", Pattern: `sk-[A-Za-z0-9]{32}`})
	base := "Hi, I ordered the X200 wireless headphones on March 3rd (order ORD-20240303-7781) and they arrived with a cracked case. " +
		"The left earbud doesn't charge and the app says firmware 2.3.14 is current. Could you send a replacement or refund? "
	text := strings.Repeat(base, 10)[:2048]
	b.ReportAllocs()
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		r.Scan(text, filters.StageInput)
	}
}
