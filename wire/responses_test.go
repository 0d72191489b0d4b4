package wire

import (
	"encoding/json"
	"testing"
)

func TestParseResponses(t *testing.T) {
	r, err := ParseResponses([]byte(`{"model":"gpt-4o","input":[{"role":"user","content":[{"type":"input_text","text":"hi"}]},{"type":"message","role":"assistant","content":"earlier"},{"type":"function_call_output","call_id":"c","output":"{}"}],"instructions":"be brief","previous_response_id":"resp_1","max_output_tokens":50,"stream":true,"store":false}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.Model != "gpt-4o" || !r.Stream || r.Instructions != "be brief" || r.PreviousResponseID != "resp_1" || r.MaxOutputTokens != 50 || !r.NoStore || !r.Input.IsArray() {
		t.Fatalf("parsed %+v", r)
	}
	if r, err = ParseResponses([]byte(`{"model":"m","input":"hello"}`)); err != nil || r.Input.Str != "hello" || r.NoStore {
		t.Fatalf("string input: %+v %v", r, err)
	}
	for body, param := range map[string]string{
		`{"input":42}`:                                "input",
		`{"input":[1]}`:                               "input[0]",
		`{"input":[{"content":"x"}]}`:                 "input[0].role",
		`{"input":[{"role":"user","content":7}]}`:     "input[0].content",
		`{"input":[{"role":"user","content":["x"]}]}`: "input[0].content",
		`{"input":[{"type":3}]}`:                      "input[0].type",
		`{"input":"x","stream":"yes"}`:                "stream",
		`{"input":"x","max_output_tokens":0}`:         "max_output_tokens",
		`{"input":"x","instructions":["a"]}`:          "instructions",
		`{"input":"x","previous_response_id":1}`:      "previous_response_id",
		`{"model":1,"input":"x"}`:                     "model",
	} {
		_, err := ParseResponses([]byte(body))
		e, ok := err.(*Error)
		if !ok || e.Status != 400 || e.Param != param {
			t.Errorf("%s: got %v, want a 400 naming %s", body, err, param)
		}
	}
	// Item types the gateway does not know pass through.
	if _, err := ParseResponses([]byte(`{"input":[{"type":"reasoning","id":"rs_1","summary":[]},{"type":"item_reference","id":"msg_1"}]}`)); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseResponses(f *testing.F) {
	f.Add([]byte(`{"model":"gpt-4o","input":"hi","stream":true}`))
	f.Add([]byte(`{"input":[{"role":"user","content":[{"type":"input_text","text":"x"}]}],"max_output_tokens":3}`))
	f.Add([]byte(`{"input":[{"type":"function_call","call_id":"c","name":"f","arguments":"{}"}],"previous_response_id":"resp_1"}`))
	f.Add([]byte("{\n\"input\": [}"))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseResponses(body)
		if err != nil {
			e, ok := err.(*Error)
			if !ok || e.Status != 400 || !json.Valid(e.AppendJSON(nil)) {
				t.Fatalf("bad error %v for %q", err, body)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		if in := r.Input; in.Exists() && in.Type != 0 && !in.IsArray() && in.Type.String() != "String" {
			t.Fatalf("accepted input %s", in.Raw)
		}
	})
}
