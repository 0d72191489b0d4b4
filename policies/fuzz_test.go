package policies

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/groundgate/groundgate/wire"
)

// FuzzParse: no input panics; errors name the file; a set that loads
// matches and renders without error (its templates passed the same dry
// run at load).
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("examples/*.yaml")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"name: a\nupstream:\n  temprature: 1\n",
		"name: a\nfilters: &a [*a]\n",
		"name: a\nmeta_prompt:\n  template: '{{template \"x\"}}{{define \"x\"}}{{template \"x\"}}{{end}}'\n",
		"name: a\n---\nname: b\n",
		"{",
		"",
	} {
		f.Add([]byte(s))
	}
	inputs := []Input{
		{API: "openai", Route: "chat.completions", Model: "gpt-4o", Key: "k", Team: "support"},
		{API: "azure", Route: "embeddings", Model: "copilot-ask-question", Team: "billing"},
		{API: "azure_v1", Route: "chat.completions", Feature: "draft_email", Team: "support"},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(map[string][]byte{"f.yaml": data})
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "f.yaml") {
					t.Fatalf("error line %q does not name the file", line)
				}
			}
			return
		}
		if len(s.Policies()) != 1 || len(s.Hash()) != 64 {
			t.Fatalf("set of %d policies, hash %q", len(s.Policies()), s.Hash())
		}
		for _, in := range inputs {
			d := s.Match(in)
			if d.Denied == (d.Policy != nil) || len(d.Trace) != 1 {
				t.Fatalf("inconsistent decision %+v", d)
			}
		}
		p := s.Policies()[0]
		if p.Meta != nil {
			if _, err := p.Meta.Render(sampleData(p.Feature)); err != nil {
				t.Fatalf("template passed load but failed on the sample data: %v", err)
			}
		}
		for _, r := range []RawSection{p.Context, p.Budgets, p.Filters, p.Post} {
			var x any
			_ = r.Decode(&x)
		}
	})
}

// FuzzApplySystemPrompt: no input panics; a valid JSON object with one
// "messages" array comes out valid, with the prompt added exactly once
// and every other message and field unchanged.
func FuzzApplySystemPrompt(f *testing.F) {
	f.Add([]byte(`{"model":"gpt-4o","messages":[{"role":"system","content":"a"},{"role":"user","content":"b"}]}`), "You are helpful.", uint8(0))
	f.Add([]byte(`{"messages":[{"role":"developer","content":"a"},{"role":"system","content":"x"},{"role":"user","content":"b"}],"n":2}`), "P \"q\"\n", uint8(1))
	f.Add([]byte(`{"messages":[{"role":"user","content":"b"},{"role":"system","content":"c"}]}`), "日本語", uint8(2))
	f.Add([]byte(` { "messages" : [ ] } `), "", uint8(2))
	f.Add([]byte(`{"messages":[1,null,"s",{"role":"system","role":"user"}]}`), "\xff", uint8(1))
	f.Add([]byte(`{"messages":[],"messages":[]}`), "p", uint8(0))
	f.Fuzz(func(t *testing.T, body []byte, prompt string, m uint8) {
		mode := []Mode{ModePrepend, ModeAppend, ModeReplace}[m%3]
		out, err := ApplySystemPrompt(body, prompt, mode)
		inMsgs, rest, ok := splitRequest(body)
		if !ok {
			return
		}
		if err != nil {
			t.Fatalf("valid request refused: %v", err)
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON out: %s", out)
		}
		outMsgs, outRest, ok := splitRequest(out)
		if !ok {
			t.Fatalf("output lost its messages: %s", out)
		}
		if len(rest) != len(outRest) {
			t.Fatalf("other fields changed: %v vs %v", rest, outRest)
		}
		for k, v := range rest {
			if !bytes.Equal(outRest[k], v) {
				t.Fatalf("field %q changed: %s -> %s", k, v, outRest[k])
			}
		}
		// The expected messages.
		var sys json.RawMessage
		if prompt != "" {
			sys = appendSystemMessage(nil, prompt)
		}
		var want []json.RawMessage
		switch {
		case mode == ModeReplace:
			if sys != nil {
				want = append(want, sys)
			}
			for _, msg := range inMsgs {
				if !isSystemRaw(msg) {
					want = append(want, msg)
				}
			}
		case sys == nil:
			want = inMsgs
		default:
			at := 0
			if mode == ModeAppend {
				for at < len(inMsgs) && isSystemRaw(inMsgs[at]) {
					at++
				}
			}
			want = append(append(append(want, inMsgs[:at]...), sys), inMsgs[at:]...)
		}
		if len(want) != len(outMsgs) {
			t.Fatalf("%s: %d messages, want %d\nin  %s\nout %s", mode, len(outMsgs), len(want), body, out)
		}
		for i := range want {
			if !bytes.Equal(want[i], outMsgs[i]) {
				t.Fatalf("%s: message %d = %s, want %s", mode, i, outMsgs[i], want[i])
			}
		}
		// The injected message carries the prompt (invalid UTF-8 aside).
		if sys != nil {
			var in string
			json.Unmarshal(wire.AppendString(nil, prompt), &in)
			n := 0
			for _, msg := range outMsgs {
				var x struct{ Role, Content string }
				if json.Unmarshal(msg, &x) == nil && x.Role == "system" && x.Content == in {
					n++
				}
			}
			before := 0
			for _, msg := range inMsgs {
				var x struct{ Role, Content string }
				if json.Unmarshal(msg, &x) == nil && x.Role == "system" && x.Content == in {
					before++
				}
			}
			if mode == ModeReplace && n != 1 || mode != ModeReplace && n != before+1 {
				t.Fatalf("%s: prompt appears %d times (was %d)", mode, n, before)
			}
		}
	})
}

// splitRequest decodes a request the way an upstream would, with
// encoding/json: ok when it is an object with exactly one "messages" key
// whose value is an array.
func splitRequest(b []byte) (msgs []json.RawMessage, rest map[string]json.RawMessage, ok bool) {
	if !json.Valid(b) {
		return nil, nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, nil, false
	}
	rest = map[string]json.RawMessage{}
	count := 0
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, nil, false
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, false
		}
		k := kt.(string)
		if k == "messages" {
			count++
			if err := json.Unmarshal(v, &msgs); err != nil {
				return nil, nil, false
			}
			continue
		}
		rest[k] = v
	}
	if count != 1 || msgs == nil {
		return nil, nil, false
	}
	return msgs, rest, true
}

// isSystemRaw: any "role" key of the message says system or developer.
func isSystemRaw(msg json.RawMessage) bool {
	dec := json.NewDecoder(bytes.NewReader(msg))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return false
	}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return false
		}
		var v any
		if err := dec.Decode(&v); err != nil {
			return false
		}
		if kt == "role" && (v == "system" || v == "developer") {
			return true
		}
	}
	return false
}

// FuzzFence: whatever the label and content, a fence has exactly its own
// two markers, valid UTF-8, no control or chat-markup characters; escaping
// is idempotent and leaves plain text alone.
func FuzzFence(f *testing.F) {
	for _, s := range []string{"", "plain", "<<<end text>>>", "<<<<<<>>>>>>", ">x<", "<|im_start|>", "a\r\nb", "\xff\xfe", "\u202e", "<<", ">>"} {
		f.Add("text", s)
	}
	f.Add("", "x")
	f.Add("Re cord!", ">>>")
	f.Fuzz(func(t *testing.T, label, content string) {
		out := Fence(label, content)
		l := fenceLabel(label)
		if !strings.HasPrefix(out, "<<<"+l+">>>") || !strings.HasSuffix(out, "<<<end "+l+">>>") {
			t.Fatalf("bad fence %q", out)
		}
		if strings.Count(out, "<<<") != 2 || strings.Count(out, ">>>") != 2 {
			t.Fatalf("extra markers in %q", out)
		}
		e := Escape(content)
		for _, s := range []string{out, e} {
			if !utf8.ValidString(s) {
				t.Fatalf("invalid UTF-8 in %q", s)
			}
			if strings.Contains(s, "<|") || strings.Contains(s, "|>") || strings.Contains(s, "\r") {
				t.Fatalf("chat markup or CR in %q", s)
			}
			for _, r := range s {
				if r < 0x20 && r != '\n' && r != '\t' || r == 0x7f || r >= 0x80 && r <= 0x9f || r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 {
					t.Fatalf("control character %U in %q", r, s)
				}
			}
		}
		if strings.Contains(e, "<<<") || strings.Contains(e, ">>>") {
			t.Fatalf("Escape(%q) = %q keeps a marker", content, e)
		}
		if Escape(e) != e {
			t.Fatalf("Escape is not idempotent on %q: %q then %q", content, e, Escape(e))
		}
		if !needsEscape(content) && e != content {
			t.Fatalf("plain %q escaped to %q", content, e)
		}
		// The same content inside a record stays inside it.
		rec := RecordView{&Record{Entity: content, ID: content, Title: content, Fields: map[string]string{content: content}}}.String()
		if strings.Count(rec, "<<<") != 2 || strings.Count(rec, ">>>") != 2 {
			t.Fatalf("record fence broken: %q", rec)
		}
	})
}
