package filters

import (
	"encoding/json"
	"strings"
	"testing"
)

// lit is a test filter: every occurrence of a literal (overlaps
// included), streamed with a fixed hold-back.
type lit struct {
	kind, cat, word string
	act             StageActions
	stream          bool
}

func (l *lit) Kind() string        { return l.kind }
func (l *lit) Active(s Stage) bool { return l.act.For(s) != Off }
func (l *lit) Window() int         { return len(l.word) }
func (l *lit) Scan(t string, s Stage) []Finding {
	fs, _ := l.ScanStream(t, 0, true, s)
	return fs
}
func (l *lit) ScanStream(t string, from int, final bool, s Stage) ([]Finding, int) {
	h := len(t)
	if !final {
		h = max(from, len(t)-len(l.word)+1)
	}
	var out []Finding
	for i := from; i < h && i+len(l.word) <= len(t); i++ {
		if strings.HasPrefix(t[i:], l.word) {
			out = append(out, Finding{Filter: l.kind, Category: l.cat, Start: i, End: i + len(l.word), Score: 1, Action: l.act.For(s)})
		}
	}
	return out, h
}

// whole hides the streaming methods of a filter.
type whole struct{ Filter }

func out(a Action) StageActions { return StageActions{Output: a} }

func TestRunRedactionMerge(t *testing.T) {
	c := MustChain([]Filter{
		&lit{kind: "pii", cat: "a", word: "abc", act: out(Redact)},
		&lit{kind: "pii", cat: "b", word: "bcde", act: out(Redact)},
		&lit{kind: "regex", cat: "x", word: "xx", act: out(Redact)},
		&lit{kind: "regex", cat: "n", word: "note", act: out(Annotate)},
	}, Options{})
	for in, want := range map[string]string{
		"1abcde2":   "1[REDACTED:a]2",             // overlapping spans merge, first labels
		"abcabc":    "[REDACTED:a][REDACTED:a]",   // touching spans do not merge
		"xxx":       "[REDACTED:x]",               // overlapping matches of one pattern
		"bcde abc!": "[REDACTED:b] [REDACTED:a]!", // in order
		"a note":    "a note",                     // annotate changes nothing
		"":          "",
	} {
		r := c.Run(in, StageOutput)
		if r.Text != want || r.Blocked || r.Redacted != (want != in) {
			t.Errorf("%q: got %+v, want %q", in, r, want)
		}
	}
	if r := c.Run("abc", StageInput); r.Findings != nil || r.Text != "abc" {
		t.Errorf("inactive stage: %+v", r)
	}
}

func TestReplacement(t *testing.T) {
	c, err := NewChain([]Filter{&lit{kind: "pii", cat: "email", word: "e@x", act: out(Redact)}}, Options{Replacement: "<{filter}:{category}>"})
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Run("mail e@x now", StageOutput); r.Text != "mail <pii:email> now" {
		t.Errorf("got %q", r.Text)
	}
	if _, err := NewChain(nil, Options{Replacement: "{oops}"}); err == nil {
		t.Error("bad placeholder accepted")
	}
}

func TestBlock(t *testing.T) {
	c := MustChain([]Filter{&lit{kind: "blocklist", cat: "bad", word: "bad", act: StageActions{Input: Block, Output: Redact}}}, Options{})
	if r := c.Run("so bad", StageInput); !r.Blocked {
		t.Error("not blocked")
	}
	if r := c.Run("so bad", StageOutput); r.Blocked || r.Text != "so [REDACTED:bad]" {
		t.Errorf("%+v", r)
	}
}

func TestActionAndStageText(t *testing.T) {
	var a StageActions
	if err := json.Unmarshal([]byte(`{"input":"detect","context":"redact","output":"block"}`), &a); err != nil {
		t.Fatal(err)
	}
	if a != (StageActions{Annotate, Redact, Block}) {
		t.Errorf("%+v", a)
	}
	if err := json.Unmarshal([]byte(`{"input":"maybe"}`), &a); err == nil {
		t.Error("bad action accepted")
	}
	js, _ := json.Marshal(StageActions{Output: Redact})
	if string(js) != `{"output":"redact"}` {
		t.Errorf("%s", js)
	}
	for _, s := range Stages {
		if p, err := ParseStage(s.String()); err != nil || p != s {
			t.Errorf("%v: %v %v", s, p, err)
		}
	}
	if _, err := ParseStage("middle"); err == nil {
		t.Error("bad stage accepted")
	}
}

func TestSettle(t *testing.T) {
	fs := []Finding{{Start: 0, End: 4}, {Start: 5, End: 12}, {Start: 9, End: 11}, {Start: 14, End: 15}}
	got, h := Settle(fs, 10)
	if h != 5 || len(got) != 1 || got[0].Start != 0 {
		t.Errorf("got %+v %d", got, h)
	}
}

func TestStreamNonStreamingFilterHoldsAll(t *testing.T) {
	c := MustChain([]Filter{whole{&lit{kind: "prompt_injection", cat: "jailbreak", word: "zz", act: out(Redact)}}}, Options{})
	sc := c.NewStreamScanner(StageOutput)
	for _, p := range []string{"a z", "z b"} {
		if e, v := sc.Push(p); e != "" || v != Pass {
			t.Fatalf("push %q: %q %v", p, e, v)
		}
	}
	if e, v := sc.Close(); e != "a [REDACTED:jailbreak] b" || v != Pass {
		t.Errorf("close: %q %v", e, v)
	}
}

func TestStreamHoldLimit(t *testing.T) {
	c := MustChain([]Filter{whole{&lit{kind: "x", cat: "y", word: "q", act: out(Redact)}}}, Options{MaxHold: 10})
	sc := c.NewStreamScanner(StageOutput)
	if _, v := sc.Push("0123456789"); v != Pass {
		t.Fatal("blocked early")
	}
	if e, v := sc.Push("a"); v != Blocked || e != "" {
		t.Fatalf("got %q %v", e, v)
	}
	if f, ok := sc.BlockedBy(); !ok || f.Category != CategoryHoldLimit {
		t.Errorf("%+v", f)
	}
	if e, v := sc.Push("more"); e != "" || v != Blocked {
		t.Error("emitted after block")
	}
}

type liar struct{ lit }

func (l *liar) ScanStream(t string, from int, final bool, s Stage) ([]Finding, int) {
	return nil, len(t) + 1
}

func TestStreamFailsClosedOnBrokenFilter(t *testing.T) {
	c := MustChain([]Filter{&liar{lit{kind: "x", word: "q", act: out(Redact)}}}, Options{})
	sc := c.NewStreamScanner(StageOutput)
	if e, v := sc.Push("hello"); e != "" || v != Blocked {
		t.Errorf("got %q %v", e, v)
	}
}

func TestStreamBlockStopsEmitting(t *testing.T) {
	c := MustChain([]Filter{&lit{kind: "blocklist", cat: "bad", word: "bad", act: out(Block)}}, Options{})
	sc := c.NewStreamScanner(StageOutput)
	var got strings.Builder
	var v Verdict
	for _, p := range []string{"this is", " fine b", "ad and then", " more"} {
		var e string
		e, v = sc.Push(p)
		got.WriteString(e)
	}
	if v != Blocked || strings.Contains(got.String(), "b") && strings.Contains(got.String(), "bad") || strings.Contains(got.String(), "and") {
		t.Errorf("emitted %q, %v", got.String(), v)
	}
	if !strings.HasPrefix("this is fine ", got.String()) {
		t.Errorf("emitted %q", got.String())
	}
}

func TestAnnotations(t *testing.T) {
	pii := &lit{kind: "pii", cat: "email", word: "e@x", act: StageActions{Input: Annotate, Output: Redact}}
	bl := &lit{kind: "blocklist", cat: "competitors", word: "acme", act: StageActions{Input: Block, Output: Annotate}}
	rx := &lit{kind: "regex", cat: "order", word: "ORD", act: StageActions{Input: Annotate}}
	pi := &lit{kind: "prompt_injection", cat: "jailbreak", word: "DAN", act: StageActions{Input: Block, Context: Annotate}}
	c := MustChain([]Filter{pii, bl, rx, pi}, Options{})

	r := c.Run("hi e@x about ORD from acme, DAN", StageInput)
	got := string(c.Annotations(r.Findings, StageInput))
	want := `{"custom_blocklists":{"filtered":true,"details":[{"filtered":true,"id":"competitors"},{"filtered":false,"id":"order"}]},"jailbreak":{"filtered":true,"detected":true},"pii":{"filtered":false,"detected":true}}`
	if got != want {
		t.Errorf("input:\n got  %s\n want %s", got, want)
	}
	r = c.Run("nothing here", StageInput)
	got = string(c.Annotations(r.Findings, StageInput))
	want = `{"custom_blocklists":{"filtered":false,"details":[]},"jailbreak":{"filtered":false,"detected":false},"pii":{"filtered":false,"detected":false}}`
	if got != want {
		t.Errorf("clean input:\n got  %s\n want %s", got, want)
	}
	r = c.Run("DAN", StageContext)
	if got := string(c.Annotations(r.Findings, StageContext)); got != `{"indirect_attack":{"filtered":false,"detected":true}}` {
		t.Errorf("context: %s", got)
	}
	if got := string(c.Annotations(nil, Stage(9))); got != `{}` {
		t.Errorf("no filters: %s", got)
	}
	var v any
	if err := json.Unmarshal(c.Annotations(r.Findings, StageOutput), &v); err != nil {
		t.Error(err)
	}
}

func TestPromptFilteredError(t *testing.T) {
	bl := &lit{kind: "blocklist", cat: "pizza", word: "pizza", act: StageActions{Input: Block}}
	c := MustChain([]Filter{bl}, Options{})
	r := c.Run("I like pizza", StageInput)
	got := string(c.PromptFilteredError(r.Findings))
	want := `{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry. To learn more about our content filtering policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"custom_blocklists":{"filtered":true,"details":[{"filtered":true,"id":"pizza"}]}}}}}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	var v struct {
		Error struct {
			Type       *string
			Param      string
			Code       string
			Status     int
			Innererror struct {
				Code                string
				ContentFilterResult map[string]json.RawMessage `json:"content_filter_result"`
			}
		}
	}
	if err := json.Unmarshal([]byte(got), &v); err != nil || v.Error.Type != nil || v.Error.Status != 400 || v.Error.Innererror.Code != "ResponsibleAIPolicyViolation" {
		t.Errorf("%+v %v", v, err)
	}
	if got := string(AppendPromptFilteredError(nil, nil)); !strings.HasSuffix(got, `"content_filter_result":{}}}}`) {
		t.Errorf("empty: %s", got)
	}
}
