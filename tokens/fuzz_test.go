package tokens

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	tiktoken "github.com/pkoukk/tiktoken-go"
	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
	"github.com/tidwall/gjson"
)

// FuzzCountChat: CountChat never panics; a body that is valid JSON with a
// messages array counts at least the 3 tokens of reply priming; anything
// else is an error with a count of 0.
func FuzzCountChat(f *testing.F) {
	f.Add([]byte(`{"messages":[{"role":"user","content":"hello world"}]}`))
	f.Add([]byte(`{"messages":[]}`))
	f.Add([]byte(`{"messages":[{"role":"user","content":[{"type":"text","text":"x"},{"type":"image_url","image_url":{"url":"u","detail":"low"}}]}]}`))
	f.Add([]byte(`{"messages":[{"role":"assistant","tool_calls":[{"function":{"name":"f","arguments":"{}"}}]}],"tools":[{"type":"function","function":{"name":"f","parameters":{"properties":{"a":{"type":"string","enum":["x",1]}}}}}]}`))
	f.Add([]byte(`{"messages":"nope"}`))
	f.Add([]byte(`not json`))
	o200k, err := ForEncoding("o200k_base")
	if err != nil {
		f.Fatal(err)
	}
	cl100k, err := ForEncoding("cl100k_base")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		valid := gjson.ValidBytes(body)
		msgs := gjson.GetBytes(body, "messages")
		wantOK := valid && gjson.ParseBytes(body).IsObject() && msgs.IsArray()
		for _, e := range []*Encoder{o200k, cl100k} {
			n, err := e.CountChat(body)
			if wantOK {
				if err != nil || n < 3 {
					t.Fatalf("%s: CountChat(%q) = %d, %v; want >= 3, nil", e.Name(), body, n, err)
				}
				if m := e.CountMessages(msgs); m < 3 || m > n {
					t.Fatalf("%s: CountMessages = %d, CountChat = %d", e.Name(), m, n)
				}
			} else if err == nil || n != 0 {
				t.Fatalf("%s: CountChat(%q) = %d, %v; want an error", e.Name(), body, n, err)
			}
		}
	})
}

var tiktokenGo = sync.OnceValues(func() (map[string]*tiktoken.Tiktoken, error) {
	// tiktoken-go must never download: use the embedded ranks.
	tiktoken.SetBpeLoader(tiktoken_loader.NewOfflineLoader())
	m := map[string]*tiktoken.Tiktoken{}
	for _, name := range []string{"o200k_base", "cl100k_base"} {
		tk, err := tiktoken.GetEncoding(name)
		if err != nil {
			return nil, err
		}
		m[name] = tk
	}
	return m, nil
})

// FuzzCountVsTiktokenGo checks Count against tiktoken-go's EncodeOrdinary
// (a regexp-based implementation of the same encodings) on arbitrary text.
func FuzzCountVsTiktokenGo(f *testing.F) {
	for _, s := range oracleStrings {
		if len(s) < 300 {
			f.Add(s)
		}
	}
	f.Add("x'ſx HELLO'S ABʰC1 \u0301\u0301 1234 \r\n\r\n  \t/ //\n")
	f.Add(strings.Repeat("Reset the soundbar: hold POWER for 10 s.\n", 8) + "\n\n<<<article ref=\"doc1\">>>\nx:\n\n/etc\n\n's\n\n\u00a0y")
	tk, err := tiktokenGo()
	if err != nil {
		f.Fatal(err)
	}
	encs := []*Encoder{mustEncoding(f, "o200k_base"), mustEncoding(f, "cl100k_base")}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 4096 {
			return // tiktoken-go is slow on long inputs
		}
		if strings.Contains(s, "'\u017f") {
			// Known tiktoken-go difference: its regexp engine does not
			// case-fold ſ (U+017F) to s in (?i:'s), OpenAI's tokenizer does
			// (TestOracleCounts pins the OpenAI behaviour).
			return
		}
		for _, e := range encs {
			want := len(tk[e.Name()].EncodeOrdinary(s))
			if got := e.Count(s); got != want {
				t.Fatalf("%s: Count(%q) = %d, tiktoken-go %d (valid UTF-8: %v)", e.Name(), s, got, want, utf8.ValidString(s))
			}
		}
	})
}

// FuzzCountSegments checks that counting a long text paragraph by
// paragraph (Count's cache path) gives the count of the whole text, with
// arbitrary text on both sides of the blank lines it splits at.
func FuzzCountSegments(f *testing.F) {
	f.Add("Answer using only the knowledge articles below.", "<<<article ref=\"doc1\">>>\ntitle: Reset", byte('<'))
	f.Add("x:", "/path/to/file", byte('/'))
	f.Add("naïve café", "\u00a0nbsp", byte(' '))
	f.Add("1234", "'s and 'T", byte('\''))
	encs := []*Encoder{mustEncoding(f, "o200k_base"), mustEncoding(f, "cl100k_base")}
	f.Fuzz(func(t *testing.T, a, b string, c byte) {
		if len(a) == 0 || len(a)+len(b) > 2048 {
			return
		}
		head := strings.Repeat(a, minCachedLen/len(a)+1)
		text := head + "\n\n" + string(c) + b + "\n\n" + b + head + "\n\n" + a
		for _, e := range encs {
			if got, want := e.Count(text), e.core.count(text); got != want {
				t.Fatalf("%s: Count = %d, whole-text count %d for %q", e.Name(), got, want, text)
			}
		}
	})
}

// FuzzCountResponses: any valid Responses body counts without panicking,
// at least the reply priming, and the string input form costs what the
// one-message item form costs.
func FuzzCountResponses(f *testing.F) {
	f.Add(`{"input":"hello there","instructions":"be brief"}`)
	f.Add(`{"input":[{"role":"user","content":[{"type":"input_text","text":"x"},{"type":"input_image","detail":"low"}]},{"type":"function_call","name":"f","arguments":"{}"},{"type":"function_call_output","output":[1]}],"tools":[{"type":"function","name":"f","parameters":{"type":"object"}}]}`)
	enc, err := ForModel("gpt-4o")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text string) {
		body, _ := json.Marshal(map[string]any{"input": text})
		n, err := enc.CountResponsesValid(body)
		if err != nil || n < replyPriming {
			t.Fatalf("%q: %d %v", text, n, err)
		}
		items, _ := json.Marshal(map[string]any{"input": []any{map[string]any{"role": "user", "content": text}}})
		// role "user" is one token, as the string form assumes.
		if m, err := enc.CountResponsesValid(items); err != nil || m != n {
			t.Fatalf("%q: string form %d, item form %d (%v)", text, n, m, err)
		}
		if gjson.Valid(text) {
			_, _ = enc.CountResponsesValid([]byte(text))
		}
	})
}
