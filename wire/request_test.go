package wire

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

func TestParseChat(t *testing.T) {
	body := []byte(`{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"max_tokens":50,"max_completion_tokens":40,"user":"u1","messages":[{"role":"system","content":"s"},{"role":"user","content":"hi"}]}`)
	c, err := ParseChat(body)
	if err != nil {
		t.Fatal(err)
	}
	if c.Model != "gpt-4o" || !c.Stream || !c.IncludeUsage || c.MaxTokens != 40 || c.User != "u1" || len(c.Messages.Array()) != 2 {
		t.Fatalf("parsed %+v", c)
	}
}

func TestParseChatErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body, param, code, msgPart string
	}{
		{"empty", ``, "", "invalid_json", "body is empty"},
		{"not object", `[1]`, "", "invalid_json", "JSON object"},
		{"syntax line 1", `{"model": "x",}`, "", "invalid_json", "line 1, column 15"},
		{"syntax line 3", "{\n  \"model\": \"x\",\n  \"messages\": [}\n", "", "invalid_json", "line 3, column 16"},
		{"truncated", `{"messages":[{"role":"user"`, "", "invalid_json", "unexpected end of JSON input"},
		{"no messages", `{"model":"m"}`, "messages", "missing_required_parameter", "'messages'"},
		{"messages object", `{"messages":{}}`, "messages", "invalid_type", "expected an array, but got an object"},
		{"messages empty", `{"messages":[]}`, "messages", "empty_array", "empty array"},
		{"message not object", `{"messages":["hi"]}`, "messages[0]", "invalid_type", "messages[0]"},
		{"role missing", `{"messages":[{"role":"user"},{"content":"x"}]}`, "messages[1].role", "invalid_type", "messages[1].role"},
		{"model number", `{"model":4,"messages":[{"role":"user"}]}`, "model", "invalid_type", "got a number"},
		{"stream string", `{"stream":"yes","messages":[{"role":"user"}]}`, "stream", "invalid_type", "a boolean"},
		{"max_tokens neg", `{"max_tokens":-1,"messages":[{"role":"user"}]}`, "max_tokens", "invalid_type", "positive integer"},
		{"max_tokens frac", `{"max_tokens":1.5,"messages":[{"role":"user"}]}`, "max_tokens", "invalid_type", "positive integer"},
		{"include_usage str", `{"stream_options":{"include_usage":"y"},"messages":[{"role":"user"}]}`, "stream_options.include_usage", "invalid_type", "boolean"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseChat([]byte(tc.body))
			e, ok := err.(*Error)
			if !ok {
				t.Fatalf("err = %v, want *Error", err)
			}
			if e.Status != 400 || e.Param != tc.param || e.Code != tc.code || !strings.Contains(e.Message, tc.msgPart) {
				t.Fatalf("got %d param=%q code=%q msg=%q", e.Status, e.Param, e.Code, e.Message)
			}
		})
	}
}

func TestErrorJSONShape(t *testing.T) {
	e := &Error{Status: 401, Type: TypeInvalidRequest, Message: "bad \"key\" <x>\n\x01", Code: "invalid_api_key"}
	out := e.AppendJSON(nil)
	if !json.Valid(out) {
		t.Fatalf("invalid JSON: %s", out)
	}
	r := gjson.ParseBytes(out)
	if r.Get("error.message").Str != "bad \"key\" <x>\n\x01" || r.Get("error.param").Type != gjson.Null ||
		r.Get("error.code").Str != "invalid_api_key" || r.Get("error.type").Str != TypeInvalidRequest {
		t.Fatalf("shape: %s", out)
	}
	// Invalid UTF-8 still yields valid JSON.
	if out := (&Error{Message: "\xff\xfe"}).AppendJSON(nil); !json.Valid(out) {
		t.Fatalf("invalid UTF-8 leaked: %q", out)
	}
}

func TestParseEmbeddings(t *testing.T) {
	if e, err := ParseEmbeddings([]byte(`{"model":"e","input":["a","b"]}`)); err != nil || e.Model != "e" || len(e.Input.Array()) != 2 {
		t.Fatalf("%+v %v", e, err)
	}
	if _, err := ParseEmbeddings([]byte(`{"model":"e"}`)); err == nil || err.(*Error).Param != "input" {
		t.Fatalf("missing input: %v", err)
	}
	if _, err := ParseEmbeddings([]byte(`{"input":3}`)); err == nil || err.(*Error).Param != "input" {
		t.Fatalf("numeric input: %v", err)
	}
}

func FuzzParseChat(f *testing.F) {
	f.Add([]byte(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true}`))
	f.Add([]byte(`{"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}],"max_tokens":3}`))
	f.Add([]byte("{\n\"messages\": [}"))
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := ParseChat(body)
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
		if !c.Messages.IsArray() || len(c.Messages.Array()) == 0 {
			t.Fatalf("accepted without messages: %q", body)
		}
	})
}

func BenchmarkParseChat(b *testing.B) {
	body := []byte(`{"model":"gpt-4o","stream":false,"messages":[{"role":"system","content":"` + strings.Repeat("You are a helpful support agent. ", 40) + `"},{"role":"user","content":"My TV won't turn on after the firmware update, what can I do?"}],"max_tokens":300}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseChat(body); err != nil {
			b.Fatal(err)
		}
	}
}
