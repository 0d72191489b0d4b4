package policies

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestApplySystemPrompt(t *testing.T) {
	// Odd but valid formatting around and inside the array; the bytes
	// outside "messages" must come through unchanged.
	const body = "{ \"model\" : \"gpt-4o\",\n  \"temperature\":0.20,\"messages\": [ {\"role\":\"system\",\"content\":\"app rules\"} ,\n {\"role\": \"developer\", \"content\":\"dev\"},{\"role\":\"user\",\"content\":\"h\\u00e9llo \\\"q\\\"\"}, {\"content\":\"x\",\"role\":\"system\"} ],\n \"stream\": true , \"metadata\":{\"messages\":[1]} }"
	const sys = `{"role":"system","content":"P"}`
	tests := []struct {
		mode Mode
		want string
	}{
		{ModePrepend, "{ \"model\" : \"gpt-4o\",\n  \"temperature\":0.20,\"messages\": [ " + sys + ",{\"role\":\"system\",\"content\":\"app rules\"} ,\n {\"role\": \"developer\", \"content\":\"dev\"},{\"role\":\"user\",\"content\":\"h\\u00e9llo \\\"q\\\"\"}, {\"content\":\"x\",\"role\":\"system\"} ],\n \"stream\": true , \"metadata\":{\"messages\":[1]} }"},
		{ModeAppend, "{ \"model\" : \"gpt-4o\",\n  \"temperature\":0.20,\"messages\": [ {\"role\":\"system\",\"content\":\"app rules\"} ,\n {\"role\": \"developer\", \"content\":\"dev\"}," + sys + ",{\"role\":\"user\",\"content\":\"h\\u00e9llo \\\"q\\\"\"}, {\"content\":\"x\",\"role\":\"system\"} ],\n \"stream\": true , \"metadata\":{\"messages\":[1]} }"},
		{ModeReplace, "{ \"model\" : \"gpt-4o\",\n  \"temperature\":0.20,\"messages\": [" + sys + ",{\"role\":\"user\",\"content\":\"h\\u00e9llo \\\"q\\\"\"}],\n \"stream\": true , \"metadata\":{\"messages\":[1]} }"},
	}
	for _, tc := range tests {
		got, err := ApplySystemPrompt([]byte(body), "P", tc.mode)
		if err != nil {
			t.Fatalf("%s: %v", tc.mode, err)
		}
		if string(got) != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.mode, got, tc.want)
		}
		if !json.Valid(got) {
			t.Errorf("%s: invalid JSON", tc.mode)
		}
	}
}

func TestApplySystemPromptModesSimple(t *testing.T) {
	for _, tc := range []struct {
		body string
		mode Mode
		want string
	}{
		{`{"messages":[]}`, ModePrepend, `{"messages":[S]}`},
		{`{"messages":[ ]}`, ModeAppend, `{"messages":[S ]}`},
		{`{"messages":[]}`, ModeReplace, `{"messages":[S]}`},
		{`{"messages":[U]}`, ModeAppend, `{"messages":[S,U]}`},
		{`{"messages":[Y,U]}`, ModeAppend, `{"messages":[Y,S,U]}`},
		{`{"messages":[Y,Y,U,Y]}`, ModeAppend, `{"messages":[Y,Y,S,U,Y]}`},
		{`{"messages":[U,Y]}`, ModePrepend, `{"messages":[S,U,Y]}`},
		{`{"messages":[Y,U,Y]}`, ModeReplace, `{"messages":[S,U]}`},
		{`{"messages":[Y]}`, ModeReplace, `{"messages":[S]}`},
		{`{"messages":[1,"x",null,U]}`, ModeAppend, `{"messages":[S,1,"x",null,U]}`},
		{`{"messages":[{"role":"user","role":"system"}]}`, ModeReplace, `{"messages":[S]}`},
		{`{"messages":[U]}`, "", `{"messages":[S,U]}`},
	} {
		r := strings.NewReplacer("S", `{"role":"system","content":"p"}`, "U", `{"role":"user","content":"u"}`, "Y", `{"role":"system","content":"y"}`)
		got, err := ApplySystemPrompt([]byte(r.Replace(tc.body)), "p", tc.mode)
		if err != nil {
			t.Errorf("%s %s: %v", tc.body, tc.mode, err)
			continue
		}
		if want := r.Replace(tc.want); string(got) != want {
			t.Errorf("%s %s:\n got %s\nwant %s", tc.body, tc.mode, got, want)
		}
	}
}

func TestApplySystemPromptEncoding(t *testing.T) {
	prompt := "Line 1\nLine \"2\"\t\\ back\r\n</script> & <b> — 日本語 👍 \u2028 \x01 \xff end"
	body := []byte(`{"messages":[{"role":"user","content":"hi"}],"n":1}`)
	for _, mode := range []Mode{ModePrepend, ModeAppend, ModeReplace} {
		out, err := ApplySystemPrompt(body, prompt, mode)
		if err != nil {
			t.Fatal(err)
		}
		var req struct {
			Messages []struct{ Role, Content string }
			N        int
		}
		if err := json.Unmarshal(out, &req); err != nil {
			t.Fatalf("%s: %v\n%s", mode, err, out)
		}
		want := strings.ToValidUTF8(prompt, "\ufffd")
		if len(req.Messages) != 2 || req.Messages[0].Role != "system" || req.Messages[0].Content != want || req.N != 1 {
			t.Errorf("%s: got %+v", mode, req)
		}
		if req.Messages[1].Content != "hi" {
			t.Errorf("%s: user message changed: %+v", mode, req.Messages[1])
		}
	}
}

func TestApplySystemPromptErrors(t *testing.T) {
	for _, tc := range []struct {
		body string
		mode Mode
		want string
	}{
		{``, ModePrepend, "request body is empty"},
		{`{"messages":[`, ModePrepend, "request body is not valid JSON"},
		{`[{"messages":[]}]`, ModePrepend, "request body is not a JSON object"},
		{`{"model":"x"}`, ModePrepend, `request body has no "messages"`},
		{`{"messages":{"role":"user"}}`, ModePrepend, `"messages" is not an array`},
		{`{"messages":[],"messages":[]}`, ModeReplace, `request body gives "messages" more than once`},
		{`{"messages":[],"mess\u0061ges":[]}`, ModeReplace, `request body gives "messages" more than once`},
		{`{"messages":[]}`, "sideways", `unknown meta prompt mode "sideways"`},
	} {
		out, err := ApplySystemPrompt([]byte(tc.body), "p", tc.mode)
		if err == nil || err.Error() != tc.want || out != nil {
			t.Errorf("%s: got %s, %v; want error %q", tc.body, out, err, tc.want)
		}
	}
}

func TestApplyEmptyPrompt(t *testing.T) {
	body := []byte(`{"messages":[{"role":"system","content":"a"},{"role":"user","content":"b"}]}`)
	out, _ := ApplySystemPrompt(body, "", ModePrepend)
	if string(out) != string(body) {
		t.Errorf("prepend empty: %s", out)
	}
	out, _ = ApplySystemPrompt(body, "", ModeReplace)
	if string(out) != `{"messages":[{"role":"user","content":"b"}]}` {
		t.Errorf("replace empty: %s", out)
	}
}
