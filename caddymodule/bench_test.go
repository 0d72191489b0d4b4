package caddymodule

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/groundgate/groundgate/plugins/post/audit"
)

// The gateway's cost per request is the difference between
// BenchmarkGatewayChat and BenchmarkDirectChat: both call the same
// loopback upstream, one through ServeHTTP, one with a plain client.

const benchBody = `{"model":"gpt-4o","messages":[{"role":"system","content":"You are a support agent for Contoso Electronics. Answer briefly and cite articles."},{"role":"user","content":"My soundbar stopped producing sound after the firmware update. What can I do?"}],"max_tokens":300}`

func BenchmarkDirectChat(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(okHandler))
	defer up.Close()
	client := &http.Client{Transport: newTransport()}
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest("POST", up.URL+"/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", strings.NewReader(benchBody))
		req.Header.Set("Api-Key", "k")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

func BenchmarkGatewayChat(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(okHandler))
	defer up.Close()
	g := newGateway(&testing.T{}, nil, azure("a", up.URL, 0))
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(benchBody))
		req.Header.Set("Authorization", "Bearer "+testKey)
		rec := httptest.NewRecorder()
		_ = g.ServeHTTP(rec, req, nil)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}

func BenchmarkGatewayStream(b *testing.B) {
	up := httptest.NewServer(streamHandler(azureStream, true, 0))
	defer up.Close()
	g := newGateway(&testing.T{}, nil, azure("a", up.URL, 0))
	body := strings.Replace(benchBody, `"max_tokens":300`, `"stream":true`, 1)
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testKey)
		rec := httptest.NewRecorder()
		_ = g.ServeHTTP(rec, req, nil)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}

// fullPolicy is the load harness's policy (cmd/loadgen): meta prompt, the
// case record and three knowledge chunks, budgets, PII in and out,
// prompt-injection checks, citations; the gateway adds the audit record.
const fullPolicy = `name: full
default: true
budgets:
  prompt_tokens: 6000
  completion_tokens: 700
  limits:
    - per: key
      tokens_per_minute: 1000000000
      requests_per_minute: 100000000
context:
  records:
    entities: [incident, contact, account]
  articles:
    top: 3
filters: [pii, prompt_injection]
post: [citations]
meta_prompt:
  mode: prepend
  template: |
    You are the Contoso Electronics support assistant. Base every statement on the articles below and cite them as [doc1], [doc2].
    {{- if .Records}}

    The customer's records:
    {{.Records}}
    {{- end}}
    {{- if .Articles}}

    Knowledge articles:
    {{.Articles}}
    {{- end}}
`

// BenchmarkGatewayFullPolicy is BenchmarkGatewayChat with the full policy:
// the cost of grounding, counting, filtering and post-processing on top
// of the gateway's own.
func BenchmarkGatewayFullPolicy(b *testing.B) {
	g, main := groundedGateway(b, fullPolicy, func(g *Gateway) {
		g.FiltersRaw = map[string]json.RawMessage{
			"pii":              json.RawMessage(`{"filter":"pii","entities":["credit_card","iban","ssn"],"actions":{"input":"redact","context":"redact","output":"redact"}}`),
			"prompt_injection": json.RawMessage(`{"filter":"prompt_injection","actions":{"input":"block","context":"block"}}`),
		}
		g.PostRaw = map[string]json.RawMessage{"citations": json.RawMessage(`{"post":"citations","format":"[{number}]({url})"}`)}
		g.AuditRaw = json.RawMessage(`{"post":"audit","jsonl":{"path":` + jsonQuote(filepath.Join(b.TempDir(), "audit.jsonl")) + `}}`)
	})
	main.handler = answerHandler("Unplug the soundbar for 30 seconds, then update it again [doc1]. If that fails, reset it [doc2].")
	questions := []string{
		"My soundbar stopped producing sound after the firmware update. What can I do?",
		"the little red light under the screen flashes 5 times and then stops, what does that mean",
		"my headphones will not pair with my laptop over bluetooth",
		"how long is the warranty on a refurbished phone?",
	}
	bodies := make([]string, len(questions))
	for i, q := range questions {
		bodies[i] = `{"model":"gpt-4o","messages":[{"role":"system","content":"You are a support agent."},{"role":"user","content":"` + q + `"}],"max_tokens":300}`
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		req := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(bodies[i%len(bodies)]))
		i++
		req.Header.Set("Authorization", "Bearer "+testKey)
		rec := httptest.NewRecorder()
		_ = g.ServeHTTP(rec, req, nil)
		if rec.Code != 200 {
			b.Fatal(rec.Code, rec.Body.String())
		}
	}
}

// BenchmarkGatewayResponses is BenchmarkGatewayChat for the Responses
// API: the same question as input items, the answer as a response object.
func BenchmarkGatewayResponses(b *testing.B) {
	up := httptest.NewServer(responseHandler("resp_bench", messageOutput("Hold the power button for ten seconds.")))
	defer up.Close()
	g := newGateway(&testing.T{}, nil, azure("a", up.URL, 0))
	body := `{"model":"gpt-4o","instructions":"You are a support agent for Contoso Electronics. Answer briefly and cite articles.","input":[{"role":"user","content":"My soundbar stopped producing sound after the firmware update. What can I do?"}],"max_output_tokens":300}`
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/v1/responses", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testKey)
		rec := httptest.NewRecorder()
		_ = g.ServeHTTP(rec, req, nil)
		if rec.Code != 200 {
			b.Fatal(rec.Code, rec.Body.String())
		}
	}
}
