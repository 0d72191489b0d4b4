package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/tidwall/gjson"
	"go.uber.org/zap"
)

const testKey = "gg-test-key-0123456789"

func keySum(k string) string {
	s := sha256.Sum256([]byte(k))
	return hex.EncodeToString(s[:])
}

// fakeUpstream is an Azure OpenAI stand-in whose behaviour each test sets.
type fakeUpstream struct {
	*httptest.Server
	calls   atomic.Int64
	mu      sync.Mutex
	last    *http.Request
	body    []byte
	handler http.HandlerFunc
}

func newFake(t testing.TB, h http.HandlerFunc) *fakeUpstream {
	f := &fakeUpstream{handler: h}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.calls.Add(1)
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.last, f.body = r, b
		h := f.handler
		f.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeUpstream) lastRequest() (*http.Request, []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last, f.body
}

const completion = `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"Hello"}}],"usage":{"prompt_tokens":11,"completion_tokens":2,"total_tokens":13}}`

func okHandler(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, completion)
}

func statusHandler(code int, hdr ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Set(hdr[i], hdr[i+1])
		}
		w.WriteHeader(code)
		_, _ = fmt.Fprintf(w, `{"error":{"code":"%d","message":"upstream says %d"}}`, code, code)
	}
}

func azure(name, endpoint string, prio int) UpstreamConfig {
	return UpstreamConfig{Name: name, Endpoint: endpoint, Deployment: "gpt-4o-" + name, APIKey: "upstream-secret-" + name, Priority: prio}
}

// newGateway provisions a gateway like Caddy would, with one model
// "gpt-4o" served by the given upstreams.
func newGateway(t testing.TB, mod func(*Gateway), ups ...UpstreamConfig) *Gateway {
	t.Helper()
	g := &Gateway{
		Keys:   []KeyConfig{{Name: "alice", Team: "support", SHA256: keySum(testKey)}},
		Models: []ModelConfig{{Alias: "gpt-4o", Pool: "main"}, {Alias: "text-embedding-3-small", Pool: "main"}},
		Pools:  []PoolConfig{{Name: "main", Upstreams: ups}},
		// A unique breaker setting keeps tests from sharing upstream state.
		Breaker: &BreakerConfig{Failures: 3, OpenFor: caddy.Duration(time.Hour + time.Duration(time.Now().UnixNano()%1e6))},
	}
	if mod != nil {
		mod(g)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := g.Provision(ctx); err != nil {
		t.Fatalf("provision: %v", err)
	}
	if err := g.Validate(); err != nil {
		t.Fatalf("validate: %v", err)
	}
	// Tests assert on behaviour, not on the debug log of every request.
	g.logger = zap.NewNop()
	t.Cleanup(func() { _ = g.Cleanup() })
	return g
}

type result struct {
	status int
	header http.Header
	body   string
	ex     map[string]any
}

func newChatRequest(body string) *http.Request {
	req := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testKey)
	return req
}

func do(t *testing.T, g *Gateway, method, path, body string, hdr ...string) result {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testKey)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	repl := caddy.NewReplacer()
	req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, repl))
	rec := httptest.NewRecorder()
	if err := g.ServeHTTP(rec, req, nil); err != nil {
		t.Fatalf("ServeHTTP returned %v", err)
	}
	res := result{status: rec.Code, header: rec.Header(), body: rec.Body.String(), ex: map[string]any{}}
	for _, k := range []string{"llm.prompt_tokens", "llm.completion_tokens", "llm.upstream", "llm.attempts", "llm.model", "llm.principal", "llm.request_id", "llm.cost_usd"} {
		res.ex[k], _ = repl.Get(k)
	}
	return res
}

const chatBody = `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`

func assertOpenAIError(t *testing.T, r result, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	e := gjson.Get(r.body, "error")
	for _, k := range []string{"message", "type", "param", "code"} {
		if !e.Get(k).Exists() {
			t.Fatalf("error lacks %q: %s", k, r.body)
		}
	}
	if code != "" && e.Get("code").Str != code {
		t.Fatalf("code %q, want %q: %s", e.Get("code").Str, code, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("content-type %q", ct)
	}
}

func TestRoutesAndShapes(t *testing.T) {
	up := newFake(t, okHandler)
	g := newGateway(t, nil, azure("a", up.URL, 0))

	for _, path := range []string{"/v1/chat/completions", "/openai/v1/chat/completions", "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"} {
		r := do(t, g, "POST", path, chatBody)
		if r.status != 200 || r.body != completion {
			t.Fatalf("%s: %d %s", path, r.status, r.body)
		}
		if r.header.Get("X-Request-Id") == "" || r.ex["llm.request_id"] != r.header.Get("X-Request-Id") {
			t.Fatalf("%s: request id header %q vs placeholder %v", path, r.header.Get("X-Request-Id"), r.ex["llm.request_id"])
		}
		req, _ := up.lastRequest()
		if req.URL.Path != "/openai/deployments/gpt-4o-a/chat/completions" || req.URL.Query().Get("api-version") != "2024-10-21" {
			t.Fatalf("%s: upstream got %s", path, req.URL)
		}
	}
	// The Azure path takes the deployment from the URL, not the body.
	r := do(t, g, "POST", "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", `{"messages":[{"role":"user","content":"x"}]}`)
	if r.status != 200 {
		t.Fatalf("azure without model: %d %s", r.status, r.body)
	}

	assertOpenAIError(t, do(t, g, "POST", "/v1/nope", chatBody), 404, "")
	assertOpenAIError(t, do(t, g, "GET", "/", ""), 404, "")
	r = do(t, g, "GET", "/v1/chat/completions", "")
	assertOpenAIError(t, r, 405, "method_not_allowed")
	if r.header.Get("Allow") != "POST" {
		t.Fatalf("405 without Allow: %v", r.header)
	}
	assertOpenAIError(t, do(t, g, "POST", "/openai/deployments/gpt-4o/chat/completions", chatBody), 400, "missing_required_parameter")
	assertOpenAIError(t, do(t, g, "POST", "/v1/chat/completions", `{"model":"gpt-5","messages":[{"role":"user","content":"x"}]}`), 404, "model_not_found")
	assertOpenAIError(t, do(t, g, "POST", "/openai/deployments/nope/chat/completions?api-version=2024-10-21", chatBody), 404, "DeploymentNotFound")
	assertOpenAIError(t, do(t, g, "POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}]}`), 400, "missing_required_parameter")

	r = do(t, g, "POST", "/v1/chat/completions", "{\n \"model\": \"gpt-4o\",\n \"messages\": [,]\n}")
	assertOpenAIError(t, r, 400, "invalid_json")
	if !strings.Contains(r.body, "line 3, column 15") {
		t.Fatalf("syntax error position missing: %s", r.body)
	}
}

func TestModelsList(t *testing.T) {
	g := newGateway(t, nil, azure("a", "http://127.0.0.1:1", 0))
	for _, p := range []string{"/v1/models", "/openai/v1/models", "/openai/models?api-version=2024-10-21"} {
		r := do(t, g, "GET", p, "")
		ids := gjson.Get(r.body, "data.#.id").Array()
		if r.status != 200 || gjson.Get(r.body, "object").Str != "list" || len(ids) != 2 || ids[0].Str != "gpt-4o" {
			t.Fatalf("%s: %d %s", p, r.status, r.body)
		}
	}
	r := do(t, g, "GET", "/v1/models/gpt-4o", "")
	if r.status != 200 || gjson.Get(r.body, "id").Str != "gpt-4o" || gjson.Get(r.body, "object").Str != "model" {
		t.Fatalf("model: %d %s", r.status, r.body)
	}
	assertOpenAIError(t, do(t, g, "GET", "/v1/models/nope", ""), 404, "model_not_found")
	assertOpenAIError(t, do(t, g, "GET", "/v1/models", "", "Authorization", ""), 401, "missing_api_key")
}

func TestAuthAndCredentials(t *testing.T) {
	up := newFake(t, okHandler)
	oai := newFake(t, okHandler)
	g := newGateway(t, nil, azure("a", up.URL, 0))

	assertOpenAIError(t, do(t, g, "POST", "/v1/chat/completions", chatBody, "Authorization", ""), 401, "missing_api_key")
	r := do(t, g, "POST", "/v1/chat/completions", chatBody, "Authorization", "Bearer wrong-key-123456")
	assertOpenAIError(t, r, 401, "invalid_api_key")
	if strings.Contains(r.body, "wrong-key-123456") {
		t.Fatalf("401 echoes the whole key: %s", r.body)
	}
	if up.calls.Load() != 0 {
		t.Fatal("an unauthenticated request reached the upstream")
	}
	req := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(chatBody))
	req.Header.Set("api-key", testKey)
	rec := httptest.NewRecorder()
	_ = g.ServeHTTP(rec, req, nil)
	if rec.Code != 200 {
		t.Fatalf("api-key header: %d %s", rec.Code, rec.Body)
	}
	req, _ = up.lastRequest()
	if req.Header.Get("api-key") != "upstream-secret-a" || req.Header.Get("Authorization") != "" {
		t.Fatalf("azure upstream auth headers: api-key=%q authorization=%q", req.Header.Get("api-key"), req.Header.Get("Authorization"))
	}

	// OpenAI-compatible upstream: Bearer with its own key, model rewritten.
	g2 := newGateway(t, nil, UpstreamConfig{Type: "openai", Endpoint: oai.URL + "/v1", Deployment: "gpt-4o-2024-08-06", APIKey: "sk-upstream"})
	do(t, g2, "POST", "/v1/chat/completions", chatBody)
	req, body := oai.lastRequest()
	if req.URL.Path != "/v1/chat/completions" || req.Header.Get("Authorization") != "Bearer sk-upstream" || req.Header.Get("api-key") != "" {
		t.Fatalf("openai upstream got %s auth=%q", req.URL.Path, req.Header.Get("Authorization"))
	}
	if gjson.GetBytes(body, "model").Str != "gpt-4o-2024-08-06" {
		t.Fatalf("model not rewritten: %s", body)
	}
	if strings.Contains(req.Header.Get("Authorization"), testKey) {
		t.Fatal("client key forwarded upstream")
	}
}

func TestKeyFromEnv(t *testing.T) {
	t.Setenv("GG_TEST_KEY", "env-key-abcdef")
	g := newGateway(t, func(g *Gateway) {
		g.Keys = append(g.Keys, KeyConfig{Name: "bob", Team: "billing", Env: "GG_TEST_KEY"})
	}, azure("a", newFake(t, okHandler).URL, 0))
	r := do(t, g, "POST", "/v1/chat/completions", chatBody, "Authorization", "Bearer env-key-abcdef")
	if r.status != 200 || r.ex["llm.principal"] != "bob" {
		t.Fatalf("env key: %d %v", r.status, r.ex)
	}
}

func TestProvisionErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		g    Gateway
		want string
	}{
		{"env unset", Gateway{Keys: []KeyConfig{{Name: "x", Env: "GG_UNSET_VAR_X"}}}, "GG_UNSET_VAR_X is empty or unset"},
		{"bad sha", Gateway{Keys: []KeyConfig{{Name: "x", SHA256: "abc"}}}, "64 hex digits"},
		{"unknown pool", Gateway{Models: []ModelConfig{{Alias: "m", Pool: "p"}}}, `unknown pool "p"`},
		{"bad endpoint", Gateway{Pools: []PoolConfig{{Name: "p", Upstreams: []UpstreamConfig{{Endpoint: "ftp://x", Deployment: "d", APIKey: "k"}}}}}, "must be an http(s) URL"},
		{"no key", Gateway{Pools: []PoolConfig{{Name: "p", Upstreams: []UpstreamConfig{{Endpoint: "http://x", Deployment: "d"}}}}}, "api_key or entra is required"},
		{"empty env key", Gateway{Pools: []PoolConfig{{Name: "p", Upstreams: []UpstreamConfig{{Endpoint: "http://x", Deployment: "d", APIKey: "{env.GG_UNSET_VAR_Y}"}}}}}, "api_key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			err := tc.g.Provision(ctx)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestBodyLimit(t *testing.T) {
	g := newGateway(t, func(g *Gateway) { g.MaxRequestBody = 100 }, azure("a", newFake(t, okHandler).URL, 0))
	big := `{"model":"gpt-4o","messages":[{"role":"user","content":"` + strings.Repeat("x", 200) + `"}]}`
	assertOpenAIError(t, do(t, g, "POST", "/v1/chat/completions", big), 413, "request_too_large")
	// Without Content-Length (chunked), the limit still holds.
	req := httptest.NewRequest("POST", "/v1/chat/completions", io.MultiReader(strings.NewReader(big)))
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer "+testKey)
	rec := httptest.NewRecorder()
	_ = g.ServeHTTP(rec, req, nil)
	if rec.Code != 413 {
		t.Fatalf("chunked over limit: %d", rec.Code)
	}
}

func TestUpstream4xxPassesThrough(t *testing.T) {
	body := `{"error":{"message":"This model's maximum context length is 128000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}`
	up := newFake(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		_, _ = io.WriteString(w, body)
	})
	up2 := newFake(t, okHandler)
	g := newGateway(t, nil, azure("a", up.URL, 0), azure("b", up2.URL, 1))
	r := do(t, g, "POST", "/v1/chat/completions", chatBody)
	if r.status != 400 || r.body != body {
		t.Fatalf("4xx changed: %d %s", r.status, r.body)
	}
	if up2.calls.Load() != 0 {
		t.Fatal("a 400 must not fail over")
	}
}

func TestFailoverOn500(t *testing.T) {
	bad := newFake(t, statusHandler(500))
	good := newFake(t, okHandler)
	g := newGateway(t, nil, azure("bad", bad.URL, 0), azure("good", good.URL, 1))
	r := do(t, g, "POST", "/v1/chat/completions", chatBody)
	if r.status != 200 || r.ex["llm.upstream"] != "good" || fmt.Sprint(r.ex["llm.attempts"]) != "2" {
		t.Fatalf("failover: %d %v %s", r.status, r.ex, r.body)
	}
	if fmt.Sprint(r.ex["llm.prompt_tokens"]) != "11" || fmt.Sprint(r.ex["llm.completion_tokens"]) != "2" {
		t.Fatalf("usage not recorded: %v", r.ex)
	}
}

func TestRetryAfterMsCoolsDeployment(t *testing.T) {
	throttled := newFake(t, statusHandler(429, "retry-after-ms", "5000", "retry-after", "5"))
	good := newFake(t, okHandler)
	g := newGateway(t, nil, azure("throttled", throttled.URL, 0), azure("good", good.URL, 1))
	for i := 0; i < 3; i++ {
		if r := do(t, g, "POST", "/v1/chat/completions", chatBody); r.status != 200 || r.ex["llm.upstream"] != "good" {
			t.Fatalf("request %d: %d %v", i, r.status, r.ex)
		}
	}
	if n := throttled.calls.Load(); n != 1 {
		t.Fatalf("throttled deployment called %d times during its retry-after, want 1", n)
	}
}

func TestAllThrottledIs503WithRetryAfter(t *testing.T) {
	a := newFake(t, statusHandler(429, "retry-after", "30"))
	b := newFake(t, statusHandler(429, "retry-after-ms", "20000"))
	g := newGateway(t, nil, azure("a", a.URL, 0), azure("b", b.URL, 0))
	start := time.Now()
	r := do(t, g, "POST", "/v1/chat/completions", chatBody)
	assertOpenAIError(t, r, 503, "no_healthy_upstream")
	if ra := r.header.Get("Retry-After"); ra != "20" {
		t.Fatalf("retry-after %q, want 20 (the earliest)", ra)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("waited for a retry-after longer than max_retry_wait")
	}
	if strings.Contains(r.body, "upstream-secret") || strings.Contains(r.body, a.URL) {
		t.Fatalf("error leaks upstream details: %s", r.body)
	}
}

func TestShortRetryAfterIsWaitedFor(t *testing.T) {
	var n atomic.Int64
	up := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			statusHandler(429, "retry-after-ms", "150")(w, r)
			return
		}
		okHandler(w, r)
	})
	g := newGateway(t, nil, azure("only", up.URL, 0))
	start := time.Now()
	r := do(t, g, "POST", "/v1/chat/completions", chatBody)
	if r.status != 200 || fmt.Sprint(r.ex["llm.attempts"]) != "2" {
		t.Fatalf("%d %v %s", r.status, r.ex, r.body)
	}
	if el := time.Since(start); el < 140*time.Millisecond {
		t.Fatalf("retried after %v, before retry-after-ms 150", el)
	}
}

func TestAllFailingIs502(t *testing.T) {
	a := newFake(t, statusHandler(500))
	g := newGateway(t, func(g *Gateway) { g.MaxAttempts = 2 }, azure("a", a.URL, 0))
	r := do(t, g, "POST", "/v1/chat/completions", chatBody)
	assertOpenAIError(t, r, 502, "upstream_error")
	if r.header.Get("Retry-After") == "" {
		t.Fatal("502 without retry-after")
	}
	if a.calls.Load() != 2 {
		t.Fatalf("calls = %d, want max_attempts 2", a.calls.Load())
	}
}

func TestConnectionErrorFailsOver(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	good := newFake(t, okHandler)
	g := newGateway(t, nil, azure("dead", dead.URL, 0), azure("good", good.URL, 1))
	if r := do(t, g, "POST", "/v1/chat/completions", chatBody); r.status != 200 || r.ex["llm.upstream"] != "good" {
		t.Fatalf("%d %v", r.status, r.ex)
	}
}

func TestAttemptTimeoutFailsOver(t *testing.T) {
	slow := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	good := newFake(t, okHandler)
	g := newGateway(t, func(g *Gateway) { g.AttemptTimeout = caddy.Duration(100 * time.Millisecond) },
		azure("slow", slow.URL, 0), azure("good", good.URL, 1))
	start := time.Now()
	r := do(t, g, "POST", "/v1/chat/completions", chatBody)
	if r.status != 200 || r.ex["llm.upstream"] != "good" || time.Since(start) > 2*time.Second {
		t.Fatalf("%d %v after %v", r.status, r.ex, time.Since(start))
	}
}

func TestBreakerOpensAndHalfOpens(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	flaky := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			statusHandler(500)(w, r)
			return
		}
		okHandler(w, r)
	})
	good := newFake(t, okHandler)
	g := newGateway(t, func(g *Gateway) {
		g.Breaker = &BreakerConfig{Failures: 2, OpenFor: caddy.Duration(200*time.Millisecond + time.Duration(time.Now().UnixNano()%1000))}
	}, azure("flaky", flaky.URL, 0), azure("good", good.URL, 1))

	for i := 0; i < 5; i++ {
		if r := do(t, g, "POST", "/v1/chat/completions", chatBody); r.status != 200 {
			t.Fatalf("request %d: %d", i, r.status)
		}
	}
	if n := flaky.calls.Load(); n != 2 {
		t.Fatalf("flaky called %d times; the breaker should open after 2 failures", n)
	}
	// After open_for, one trial request goes through (half-open) and,
	// succeeding, closes the breaker.
	failing.Store(false)
	time.Sleep(250 * time.Millisecond)
	if r := do(t, g, "POST", "/v1/chat/completions", chatBody); r.ex["llm.upstream"] != "flaky" {
		t.Fatalf("half-open trial went to %v", r.ex["llm.upstream"])
	}
	if r := do(t, g, "POST", "/v1/chat/completions", chatBody); r.ex["llm.upstream"] != "flaky" {
		t.Fatalf("closed breaker: request went to %v", r.ex["llm.upstream"])
	}
}

func TestBreakerStateSurvivesReload(t *testing.T) {
	bad := newFake(t, statusHandler(500))
	good := newFake(t, okHandler)
	br := &BreakerConfig{Failures: 1, OpenFor: caddy.Duration(time.Hour + 7*time.Millisecond)}
	ups := []UpstreamConfig{azure("bad", bad.URL, 0), azure("good", good.URL, 1)}
	g1 := newGateway(t, func(g *Gateway) { g.Breaker = br }, ups...)
	do(t, g1, "POST", "/v1/chat/completions", chatBody)
	// A new config (a reload) is provisioned before the old one is cleaned up.
	g2 := newGateway(t, func(g *Gateway) { g.Breaker = &BreakerConfig{Failures: 1, OpenFor: br.OpenFor} }, ups...)
	_ = g1.Cleanup()
	do(t, g2, "POST", "/v1/chat/completions", chatBody)
	if n := bad.calls.Load(); n != 1 {
		t.Fatalf("bad upstream called %d times; its open breaker should have survived the reload", n)
	}
}

func TestWeightsSpreadLoad(t *testing.T) {
	a := newFake(t, okHandler)
	b := newFake(t, okHandler)
	ua, ub := azure("a", a.URL, 0), azure("b", b.URL, 0)
	ua.Weight, ub.Weight = 3, 1
	g := newGateway(t, nil, ua, ub)
	for i := 0; i < 400; i++ {
		do(t, g, "POST", "/v1/chat/completions", chatBody)
	}
	ratio := float64(a.calls.Load()) / float64(b.calls.Load())
	if ratio < 2 || ratio > 4.5 {
		t.Fatalf("weights 3:1 gave %d:%d", a.calls.Load(), b.calls.Load())
	}
}

func TestClientDisconnectCancelsUpstream(t *testing.T) {
	cancelled := make(chan struct{})
	up := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			close(cancelled)
		case <-time.After(5 * time.Second):
		}
	})
	g := newGateway(t, nil, azure("a", up.URL, 0))
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(chatBody)).WithContext(ctx)
	req.Header.Set("Authorization", "Bearer "+testKey)
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	_ = g.ServeHTTP(httptest.NewRecorder(), req, nil)
	select {
	case <-cancelled:
	case <-time.After(2 * time.Second):
		t.Fatal("upstream call not cancelled when the client left")
	}
}

func TestEmbeddings(t *testing.T) {
	up := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1]}],"model":"e","usage":{"prompt_tokens":3,"total_tokens":3}}`)
	})
	g := newGateway(t, nil, azure("a", up.URL, 0))
	for _, p := range []string{"/v1/embeddings", "/openai/v1/embeddings", "/openai/deployments/text-embedding-3-small/embeddings?api-version=2024-10-21"} {
		r := do(t, g, "POST", p, `{"model":"text-embedding-3-small","input":"hello"}`)
		if r.status != 200 || fmt.Sprint(r.ex["llm.prompt_tokens"]) != "3" {
			t.Fatalf("%s: %d %s", p, r.status, r.body)
		}
		req, _ := up.lastRequest()
		if !strings.HasSuffix(req.URL.Path, "/embeddings") {
			t.Fatalf("upstream path %s", req.URL.Path)
		}
	}
	assertOpenAIError(t, do(t, g, "POST", "/v1/embeddings", `{"model":"text-embedding-3-small"}`), 400, "missing_required_parameter")
}

func TestRetryAfterParsing(t *testing.T) {
	for _, tc := range []struct {
		h    http.Header
		want time.Duration
		ok   bool
	}{
		{http.Header{"Retry-After-Ms": {"1500"}, "Retry-After": {"9"}}, 1500 * time.Millisecond, true},
		{http.Header{"Retry-After": {"2"}}, 2 * time.Second, true},
		{http.Header{"Retry-After": {"nonsense"}}, 0, false},
		{http.Header{}, 0, false},
	} {
		got, ok := retryAfter(tc.h)
		if got != tc.want || ok != tc.ok {
			t.Errorf("retryAfter(%v) = %v %v", tc.h, got, ok)
		}
	}
	d, ok := retryAfter(http.Header{"Retry-After": {time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat)}})
	if !ok || d < time.Second || d > 3*time.Second {
		t.Errorf("http-date retry-after = %v %v", d, ok)
	}
}
