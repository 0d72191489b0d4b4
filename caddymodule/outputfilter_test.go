package caddymodule

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	_ "github.com/groundgate/groundgate/plugins/filters/blocklist"
)

var outputFilters = map[string]string{
	"pii":   `{"filter":"pii","entities":["credit_card"],"actions":{"output":"redact"}}`,
	"words": `{"filter":"blocklist","terms":["project falcon"],"actions":{"output":"block"}}`,
}

const outputPolicy = "name: p\ndefault: true\nfilters: [pii, words]\n"

func answerHandler(text string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"id":"c","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":%q},"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}}}],"usage":{"prompt_tokens":5,"completion_tokens":9,"total_tokens":14}}`, text)
	}
}

// chunkedStream streams text as Azure does, split into pieces of n bytes.
func chunkedStream(text string, n int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"id\":\"\",\"object\":\"\",\"created\":0,\"model\":\"\",\"prompt_filter_results\":[],\"choices\":[]}\n\n")
		for i := 0; i < len(text); i += n {
			piece := text[i:min(i+n, len(text))]
			fmt.Fprintf(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%q},\"finish_reason\":null}]}\n\n", piece)
		}
		fmt.Fprint(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n")
		fmt.Fprint(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":9,\"total_tokens\":14}}\n\ndata: [DONE]\n\n")
	}
}

// streamed returns the text the client received and the last chunk's
// finish_reason.
func streamed(t *testing.T, body string) (text, finish string) {
	t.Helper()
	if !strings.HasSuffix(body, "data: [DONE]\n\n") {
		t.Fatalf("stream does not end with [DONE]: %q", body)
	}
	for _, ev := range events(body) {
		if ev == "[DONE]" {
			continue
		}
		r := gjson.Parse(ev)
		text += r.Get("choices.0.delta.content").Str
		if f := r.Get("choices.0.finish_reason"); f.Type == gjson.String {
			finish = f.Str
		}
	}
	return text, finish
}

func TestOutputFiltersNonStreamed(t *testing.T) {
	g, main := filteredGateway(t, outputPolicy, outputFilters)
	main.handler = answerHandler("Your card 4111 1111 1111 1111 is on file.")
	r := do(t, g, "POST", "/v1/chat/completions", chatBody)
	c := gjson.Get(r.body, "choices.0")
	if c.Get("message.content").Str != "Your card [REDACTED:credit_card] is on file." || c.Get("finish_reason").Str != "stop" ||
		!c.Get("content_filter_results.pii.detected").Bool() || c.Get("content_filter_results.hate.severity").Str != "safe" {
		t.Fatalf("redacted answer: %s", r.body)
	}
	main.handler = answerHandler("The internal codename is Project Falcon.")
	r = do(t, g, "POST", "/v1/chat/completions", chatBody)
	c = gjson.Get(r.body, "choices.0")
	if c.Get("message.content").Exists() || c.Get("finish_reason").Str != "content_filter" || strings.Contains(r.body, "Falcon") {
		t.Fatalf("blocked answer: %s", r.body)
	}
}

func TestOutputFiltersOnStreamsAtEverySplit(t *testing.T) {
	const answer = "Your card 4111 1111 1111 1111 is on file, thanks."
	const want = "Your card [REDACTED:credit_card] is on file, thanks."
	g, main := filteredGateway(t, outputPolicy, outputFilters)
	for n := 1; n <= len(answer); n++ {
		main.handler = chunkedStream(answer, n)
		r := do(t, g, "POST", "/v1/chat/completions", `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
		text, finish := streamed(t, r.body)
		if text != want || finish != "stop" || strings.Contains(r.body, "4111") {
			t.Fatalf("pieces of %d: got %q (finish %q)", n, text, finish)
		}
	}
}

func TestOutputBlockEndsStreamCleanly(t *testing.T) {
	const answer = "Sure. The internal codename is Project Falcon and it ships in May."
	g, main := filteredGateway(t, outputPolicy, outputFilters)
	for _, n := range []int{1, 3, 7, 16, len(answer)} {
		main.handler = chunkedStream(answer, n)
		r := do(t, g, "POST", "/v1/chat/completions", `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
		text, finish := streamed(t, r.body)
		if finish != "content_filter" || strings.Contains(strings.ToLower(r.body), "falcon") || strings.Contains(text, "ships") {
			t.Fatalf("pieces of %d: text %q finish %q\n%s", n, text, finish, r.body)
		}
	}
}

// toolCallStream streams a tool call whose arguments arrive in pieces of
// n bytes, as Azure streams function calling.
func toolCallStream(args string, n int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		chunk := func(delta, finish string) {
			fmt.Fprintf(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":%s,\"finish_reason\":%s}]}\n\n", delta, finish)
		}
		chunk(`{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"charge","arguments":""}}]}`, "null")
		for i := 0; i < len(args); i += n {
			chunk(fmt.Sprintf(`{"tool_calls":[{"index":0,"function":{"arguments":%q}}]}`, args[i:min(i+n, len(args))]), "null")
		}
		chunk(`{}`, `"tool_calls"`)
		fmt.Fprint(w, "data: [DONE]\n\n")
	}
}

// streamedArgs joins the streamed arguments of tool call 0.
func streamedArgs(t *testing.T, body string) (args, finish string) {
	t.Helper()
	for _, ev := range events(body) {
		if ev == "[DONE]" {
			continue
		}
		r := gjson.Parse(ev)
		r.Get("choices.0.delta.tool_calls").ForEach(func(_, tc gjson.Result) bool {
			if tc.Get("index").Int() == 0 {
				args += tc.Get("function.arguments").Str
			}
			return true
		})
		if f := r.Get("choices.0.finish_reason"); f.Type == gjson.String {
			finish = f.Str
		}
	}
	return args, finish
}

// Tool-call arguments pass the output filters like content does: whole,
// and streamed however the arguments are split.
func TestOutputFiltersOnToolCallArguments(t *testing.T) {
	const args = `{"card":"4111 1111 1111 1111","note":"thanks"}`
	const want = `{"card":"[REDACTED:credit_card]","note":"thanks"}`
	g, main := filteredGateway(t, outputPolicy, outputFilters)
	main.handler = func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"c","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"charge","arguments":%q}}]}}],"usage":{"prompt_tokens":5,"completion_tokens":9,"total_tokens":14}}`, args)
	}
	r := do(t, g, "POST", "/v1/chat/completions", chatBody)
	if got := gjson.Get(r.body, "choices.0.message.tool_calls.0.function.arguments").Str; got != want {
		t.Fatalf("arguments %q in %s", got, r.body)
	}
	for n := 1; n <= len(args); n++ {
		main.handler = toolCallStream(args, n)
		r := do(t, g, "POST", "/v1/chat/completions", `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
		got, finish := streamedArgs(t, r.body)
		if got != want || finish != "tool_calls" || strings.Contains(r.body, "4111") {
			t.Fatalf("pieces of %d: arguments %q (finish %q)\n%s", n, got, finish, r.body)
		}
	}
	// A blocked term in the arguments ends the choice.
	main.handler = toolCallStream(`{"project":"Project Falcon"}`, 4)
	r = do(t, g, "POST", "/v1/chat/completions", `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if _, finish := streamedArgs(t, r.body); finish != "content_filter" || strings.Contains(strings.ToLower(r.body), "falcon") {
		t.Fatalf("blocked arguments: %s", r.body)
	}
	// A redaction that would break the arguments' JSON blocks instead.
	main.handler = func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"c","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"charge","arguments":"{\"card\":4111111111111111}"}}]}}]}`)
	}
	r = do(t, g, "POST", "/v1/chat/completions", chatBody)
	if c := gjson.Get(r.body, "choices.0"); c.Get("finish_reason").Str != "content_filter" || c.Get("message.tool_calls").Exists() || strings.Contains(r.body, "4111") {
		t.Fatalf("bare card number in arguments: %s", r.body)
	}
}

// A streamed refusal passes the output filters like content.
func TestOutputFiltersOnStreamedRefusal(t *testing.T) {
	const refusal = "I cannot charge 4111 1111 1111 1111 for you."
	g, main := filteredGateway(t, outputPolicy, outputFilters)
	for _, n := range []int{1, 4, len(refusal)} {
		main.handler = func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			for i := 0; i < len(refusal); i += n {
				fmt.Fprintf(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"refusal\":%q},\"finish_reason\":null}]}\n\n", refusal[i:min(i+n, len(refusal))])
			}
			fmt.Fprint(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
		}
		r := do(t, g, "POST", "/v1/chat/completions", `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
		var got string
		for _, ev := range events(r.body) {
			got += gjson.Get(ev, "choices.0.delta.refusal").Str
		}
		if got != "I cannot charge [REDACTED:credit_card] for you." || strings.Contains(r.body, "4111") {
			t.Fatalf("pieces of %d: refusal %q\n%s", n, got, r.body)
		}
	}
}
