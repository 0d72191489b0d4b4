package tokens

import (
	"encoding/json"
	"testing"

	"github.com/tidwall/gjson"
)

// countMessageGJSON is countMessage as written with gjson's ForEach: the
// reference the member walk must agree with.
func (e *Encoder) countMessageGJSON(m gjson.Result) int {
	n := tokensPerMessage
	if !m.IsObject() {
		return n
	}
	m.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "role":
			n += e.countString(v)
		case "name":
			n += tokensPerName + e.countString(v)
		case "content":
			n += e.countContent(v)
		case "tool_calls":
			if v.IsArray() {
				v.ForEach(func(_, call gjson.Result) bool {
					n += e.countFunctionCall(call.Get("function"))
					return true
				})
			}
		case "function_call":
			n += e.countFunctionCall(v)
		}
		return true
	})
	return n
}

// FuzzCountMessage checks the member walk and the pooled unescaping
// against gjson on arbitrary messages: whole objects, and text placed in a
// content string both encoded and raw (escapes, \u surrogates, control
// characters and invalid escapes included).
func FuzzCountMessage(f *testing.F) {
	f.Add(`{"role":"system","content":"Rules:\n- cite [doc1]\u00e9 \ud83d\ude00 \"q\" \/ \\"}`)
	f.Add(`{"role":"user","name":"ann","content":[{"type":"text","text":"a\tb"},{"type":"image_url","image_url":{"url":"x","detail":"low"}}]}`)
	f.Add(`{"role":"assistant","content":null,"tool_calls":[{"id":"1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]}`)
	f.Add(`{ "role" : "user" , "content" : "x\q" , "n\u0061me": 12 }`)
	f.Add(`{"content":"\ud800\u0041 \uZZZZ"}`)
	e := mustEncoding(f, "o200k_base")
	f.Fuzz(func(t *testing.T, s string) {
		check := func(js string) {
			if !gjson.Valid(js) {
				return
			}
			m := gjson.Parse(js)
			if got, want := e.countMessage(m), e.countMessageGJSON(m); got != want {
				t.Fatalf("countMessage(%s) = %d, with gjson %d", js, got, want)
			}
		}
		check(s)
		enc, _ := json.Marshal(s)
		check(`{"role":"user","content":` + string(enc) + `}`)
		check(`{"role":"user","content":"` + s + `"}`)
		check(`{"role":"user","content":[{"type":"text","text":"` + s + `"}],"name":"` + s + `"}`)
	})
}
