package caddymodule

import (
	"net/http/httptest"
	"strings"
	"testing"
)

const cachedPolicy = "name: cached\ndefault: true\ncache:\n  ttl: 10m\n"

func TestResponseCacheScopedByPrincipal(t *testing.T) {
	main, mini := newFake(t, okHandler), newFake(t, okHandler)
	dir := writePolicies(t, map[string]string{"p.yaml": cachedPolicy})
	g := policyGateway(t, dir, nil, main, mini)

	r1 := do(t, g, "POST", "/v1/chat/completions", chatBody)
	if r1.status != 200 || r1.header.Get("X-Groundgate-Cache") != "miss" {
		t.Fatalf("first: %d %v", r1.status, r1.header)
	}
	// Same request with keys reordered and spaces: a hit, no upstream call.
	r2 := do(t, g, "POST", "/v1/chat/completions", `{ "messages": [{"content":"hi","role":"user"}], "model": "gpt-4o" }`)
	if r2.header.Get("X-Groundgate-Cache") != "hit" || r2.body != r1.body || main.calls.Load() != 1 {
		t.Fatalf("second: %v, upstream calls %d", r2.header, main.calls.Load())
	}
	// Another principal never sees the first one's answer.
	r3 := do(t, g, "POST", "/v1/chat/completions", chatBody, "Authorization", "Bearer ops-key-123456")
	if r3.header.Get("X-Groundgate-Cache") != "miss" || main.calls.Load() != 2 {
		t.Fatalf("other principal: %v, upstream calls %d", r3.header, main.calls.Load())
	}
	// A different request is a miss.
	r4 := do(t, g, "POST", "/v1/chat/completions", strings.Replace(chatBody, "hi", "hello", 1))
	if r4.header.Get("X-Groundgate-Cache") != "miss" {
		t.Fatalf("different request: %v", r4.header)
	}
}

func TestResponseCacheStreams(t *testing.T) {
	main, mini := newFake(t, streamHandler(azureStream, true, 0)), newFake(t, okHandler)
	dir := writePolicies(t, map[string]string{"p.yaml": cachedPolicy})
	g := policyGateway(t, dir, nil, main, mini)
	body := `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	r1 := do(t, g, "POST", "/v1/chat/completions", body)
	r2 := do(t, g, "POST", "/v1/chat/completions", body)
	if r2.header.Get("X-Groundgate-Cache") != "hit" || r2.body != r1.body || main.calls.Load() != 1 ||
		!strings.HasPrefix(r2.header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream replay: %v, upstream calls %d\n%q\n%q", r2.header, main.calls.Load(), r1.body, r2.body)
	}
	// The non-streamed form of the same question is a different entry.
	r3 := do(t, g, "POST", "/v1/chat/completions", strings.Replace(body, `"stream":true,`, "", 1))
	if r3.header.Get("X-Groundgate-Cache") != "miss" {
		t.Fatalf("stream and non-stream shared an entry: %v", r3.header)
	}
}

func TestResponseCacheKeyedOnPolicyVersion(t *testing.T) {
	main, mini := newFake(t, okHandler), newFake(t, okHandler)
	dir := writePolicies(t, map[string]string{"p.yaml": cachedPolicy})
	g1 := policyGateway(t, dir, nil, main, mini)
	do(t, g1, "POST", "/v1/chat/completions", chatBody)
	dir2 := writePolicies(t, map[string]string{"p.yaml": cachedPolicy + "vars:\n  v: two\n"})
	g2 := policyGateway(t, dir2, nil, main, mini)
	if r := do(t, g2, "POST", "/v1/chat/completions", chatBody); r.header.Get("X-Groundgate-Cache") != "miss" {
		t.Fatalf("a changed policy served the old policy's answer: %v", r.header)
	}
}

func TestCacheTTLValidated(t *testing.T) {
	dir := writePolicies(t, map[string]string{"p.yaml": "name: p\ndefault: true\ncache:\n  ttl: soon\n"})
	if err := checkPolicyFiles([]string{dir}); err == nil || !strings.Contains(err.Error(), `cache.ttl "soon"`) {
		t.Fatalf("err = %v", err)
	}
}

// nestedBomb is the body that took the gateway out of memory when the
// cache key pretty-printed it with sorted keys: 64 KB of nested arrays.
func nestedBomb() string {
	const depth = 32 * 1024
	return `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"x":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}`
}

// On a cache policy, the 64 KB nested body is refused at parse with a
// bounded allocation: a few copies of the body, nothing quadratic.
func TestNestedBodyRefusedWithBoundedMemory(t *testing.T) {
	main, mini := newFake(t, okHandler), newFake(t, okHandler)
	g := policyGateway(t, writePolicies(t, map[string]string{"p.yaml": cachedPolicy}), nil, main, mini)
	body := nestedBomb()
	res := testing.Benchmark(func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			req := newChatRequest(body)
			rec := httptest.NewRecorder()
			_ = g.ServeHTTP(rec, req, nil)
			if rec.Code != 400 || !strings.Contains(rec.Body.String(), "nesting_too_deep") {
				b.Fatalf("%d %s", rec.Code, rec.Body)
			}
		}
	})
	if per := res.AllocedBytesPerOp(); per > 1<<20 {
		t.Fatalf("refusing a %d-byte body allocated %d bytes per request", len(body), per)
	}
	if main.calls.Load() != 0 {
		t.Fatal("the body reached the upstream")
	}
}

func BenchmarkNestedBodyRefused(b *testing.B) {
	up := newFake(b, okHandler)
	g := policyGateway(b, writePolicies(b, map[string]string{"p.yaml": cachedPolicy}), nil, up, up)
	body := nestedBomb()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		_ = g.ServeHTTP(rec, newChatRequest(body), nil)
	}
}
