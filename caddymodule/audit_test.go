package caddymodule

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/tidwall/gjson"

	_ "github.com/groundgate/groundgate/plugins/post/audit"
)

// Every interaction leaves one audit record with its principal, policy
// version, records and articles used, tokens and cost; none is lost when
// the config is cleaned up (reload or shutdown).
func TestAuditRecordsEveryInteraction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	main, mini := newFake(t, okHandler), newFake(t, okHandler)
	dir := writePolicies(t, map[string]string{"p.yaml": groundedPolicy})
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	g := &Gateway{
		Keys:     []KeyConfig{{Name: "alice", Team: "support", SHA256: keySum(testKey), Scope: &KeyScope{All: true}}},
		Models:   []ModelConfig{{Alias: "gpt-4o", Pool: "main"}},
		Pools:    []PoolConfig{{Name: "main", Upstreams: []UpstreamConfig{azure("main", main.URL, 0)}}, {Name: "mini", Upstreams: []UpstreamConfig{azure("mini", mini.URL, 0)}}},
		Policies: []string{dir},
		Prices:   map[string]Price{"gpt-4o": {Input: 2.5, Output: 10}},
		ContextRaw: map[string]json.RawMessage{
			"crm":       json.RawMessage(`{"source":"records"}`),
			"knowledge": json.RawMessage(`{"source":"local_index","dir":` + jsonQuote(t.TempDir()) + `}`),
		},
		AuditRaw: json.RawMessage(`{"post":"audit","jsonl":{"path":` + jsonQuote(path) + `}}`),
	}
	if err := g.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 50
	for i := 0; i < n; i++ {
		if r := do(t, g, "POST", "/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"TV stuck on logo, CAS-01001-K7M2Q9"}]}`); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	}
	// Cleanup runs on reload and shutdown: the queue is drained first.
	_ = g.Cleanup()
	cancel()

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	lines := 0
	for sc.Scan() {
		rec := gjson.Parse(sc.Text())
		lines++
		if rec.Get("principal").Str != "alice" || rec.Get("policy").Str != "grounded" || len(rec.Get("policy_version").Str) != 64 ||
			rec.Get("prompt_tokens").Int() != 11 || rec.Get("completion_tokens").Int() != 2 || rec.Get("cost").Float() <= 0 ||
			rec.Get("status").Int() != 200 || rec.Get("upstream").Str != "main" ||
			rec.Get("records.0.number").Str != "CAS-01001-K7M2Q9" || rec.Get("articles.#").Int() == 0 {
			t.Fatalf("audit record: %s", sc.Text())
		}
	}
	if lines != n {
		t.Fatalf("%d audit records for %d requests", lines, n)
	}
}
