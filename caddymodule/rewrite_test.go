package caddymodule

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	_ "github.com/groundgate/groundgate/plugins/context/rewriter"
	"github.com/groundgate/groundgate/plugins/simulator"
)

const rewritePolicy = `name: grounded
default: true
context:
  articles:
    top: 3
    query:
      turns: 2
      rewrite:
        source: mini
        max_tokens: 12
meta_prompt:
  mode: prepend
  template: |
    {{.Articles}}
`

// simulatorServer is the bundled Azure OpenAI simulator on loopback.
func simulatorServer(t *testing.T, key string) *httptest.Server {
	t.Helper()
	sim := &simulator.Simulator{Deployments: []simulator.Deployment{{Name: "gpt-4o-mini"}}, APIKeys: []string{key}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := sim.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := sim.ServeHTTP(w, r, nil); err != nil {
			t.Errorf("simulator: %v", err)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// A policy that enables the query rewrite: the small deployment (the
// simulator) writes the query, its tokens are reported with the answer.
func TestGroundingQueryRewrite(t *testing.T) {
	sim := simulatorServer(t, "rewrite-key-123")
	g, main := groundedGateway(t, rewritePolicy, func(g *Gateway) {
		g.ContextRaw["mini"] = json.RawMessage(`{"source":"query_rewriter","endpoint":` + jsonQuote(sim.URL) + `,"deployment":"gpt-4o-mini","api_key":"rewrite-key-123"}`)
	})
	r := do(t, g, "POST", "/v1/chat/completions",
		`{"model":"gpt-4o","messages":[{"role":"user","content":"My Vista TV froze after an update."},{"role":"assistant","content":"Which model?"},{"role":"user","content":"QX55. What now?"}]}`)
	if r.status != 200 || r.header.Get("X-Groundgate-Context") != "ok" {
		t.Fatalf("%d %v %s", r.status, r.header, r.body)
	}
	n, err := strconv.Atoi(r.header.Get("X-Groundgate-Rewrite-Tokens"))
	if err != nil || n <= 12 {
		t.Fatalf("rewrite tokens %q", r.header.Get("X-Groundgate-Rewrite-Tokens"))
	}
	if _, sent := main.lastRequest(); !strings.Contains(string(sent), "doc1") {
		t.Fatalf("no articles reached the model: %s", sent)
	}

	// A failing rewriter: the conversation's own query, degraded.
	bad, _ := groundedGateway(t, rewritePolicy, func(g *Gateway) {
		g.ContextRaw["mini"] = json.RawMessage(`{"source":"query_rewriter","endpoint":` + jsonQuote(sim.URL) + `,"deployment":"gpt-4o-mini","api_key":"wrong-key-1234"}`)
	})
	r = do(t, bad, "POST", "/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"TV frozen after update"}]}`)
	if r.status != 200 || r.header.Get("X-Groundgate-Context") != "degraded" || r.header.Get("X-Groundgate-Rewrite-Tokens") != "" {
		t.Fatalf("%d %v", r.status, r.header)
	}
}

// A policy that asks for a rewriter the gateway does not have fails to
// load, naming the section.
func TestGroundingQueryRewriteMissing(t *testing.T) {
	main, mini := newFake(t, okHandler), newFake(t, okHandler)
	dir := writePolicies(t, map[string]string{"p.yaml": rewritePolicy})
	g := &Gateway{
		Keys:     []KeyConfig{{Name: "alice", Team: "support", SHA256: keySum(testKey)}},
		Models:   []ModelConfig{{Alias: "gpt-4o", Pool: "main"}},
		Pools:    []PoolConfig{{Name: "main", Upstreams: []UpstreamConfig{azure("main", main.URL, 0)}}, {Name: "mini", Upstreams: []UpstreamConfig{azure("mini", mini.URL, 0)}}},
		Policies: []string{dir},
		ContextRaw: map[string]json.RawMessage{
			"knowledge": json.RawMessage(`{"source":"local_index","dir":` + jsonQuote(t.TempDir()) + `}`),
		},
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	err := g.Provision(ctx)
	if err == nil || !strings.Contains(err.Error(), "context.articles.query.rewrite") || !strings.Contains(err.Error(), `query rewriter "mini" is not configured`) {
		t.Fatalf("err %v", err)
	}
	g.Cleanup()
}

// The rewrite's tokens are settled against the policy's token budget
// with the answer's.
func TestQueryRewriteTokensAreBudgeted(t *testing.T) {
	sim := simulatorServer(t, "rewrite-key-123")
	policy := `name: grounded
default: true
budgets:
  completion_tokens: 20
  limits:
    - per: key
      name: ` + uniqueName(t) + `
      tokens_per_minute: 100000
context:
  articles:
    query:
      rewrite: {source: mini, max_tokens: 12}
`
	g, _ := groundedGateway(t, policy, func(g *Gateway) {
		g.ContextRaw["mini"] = json.RawMessage(`{"source":"query_rewriter","endpoint":` + jsonQuote(sim.URL) + `,"deployment":"gpt-4o-mini","api_key":"rewrite-key-123"}`)
	})
	r := do(t, g, "POST", "/v1/chat/completions", chatBody)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	rw := mustInt(t, r.header.Get("X-Groundgate-Rewrite-Tokens"))
	est := 100000 - mustInt(t, r.header.Get("X-Ratelimit-Remaining-Tokens"))
	r = do(t, g, "POST", "/v1/chat/completions", chatBody)
	// The first request now counts the upstream's 13 tokens and the
	// rewrite's; the second holds its estimate.
	if got := 100000 - mustInt(t, r.header.Get("X-Ratelimit-Remaining-Tokens")); got != 13+rw+est {
		t.Fatalf("counted %d, want 13 + %d (rewrite) + %d (estimate)", got, rw, est)
	}
}
