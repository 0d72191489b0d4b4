package caddymodule

import (
	"context"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// A policy that counts tokens on an alias without a known tokenizer is a
// config error naming both, not a 500 on every request.
func TestUnknownTokenizerRefusedAtLoad(t *testing.T) {
	for name, policy := range map[string]string{
		"budgets": "name: capped\ndefault: true\nbudgets:\n  prompt_tokens: 1000\n",
		"limits":  "name: capped\ndefault: true\nbudgets:\n  limits:\n    - per: key\n      tokens_per_minute: 1000\n",
	} {
		t.Run(name, func(t *testing.T) {
			dir := writePolicies(t, map[string]string{"p.yaml": policy})
			g := &Gateway{
				Keys:     []KeyConfig{{Name: "alice", SHA256: keySum(testKey)}},
				Models:   []ModelConfig{{Alias: "gpt-4o", Pool: "main"}, {Alias: "house-llm", Pool: "main"}},
				Pools:    []PoolConfig{{Name: "main", Upstreams: []UpstreamConfig{azure("main", "http://127.0.0.1:9", 0)}}},
				Policies: []string{dir},
			}
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			err := g.Provision(ctx)
			defer g.Cleanup()
			if err == nil || !strings.Contains(err.Error(), `"house-llm"`) || !strings.Contains(err.Error(), `policy "capped"`) {
				t.Fatalf("err = %v", err)
			}
		})
	}
	// With a tokenizer named for the alias, the same config loads.
	dir := writePolicies(t, map[string]string{"p.yaml": "name: capped\ndefault: true\nbudgets:\n  prompt_tokens: 1000\n"})
	newGateway(t, func(g *Gateway) {
		g.Models = append(g.Models, ModelConfig{Alias: "house-llm", Pool: "main", Tokenizer: "gpt-4o-mini"})
		g.Policies = []string{dir}
	}, azure("main", "http://127.0.0.1:9", 0))
	// A policy that matches other models only does not care.
	dir = writePolicies(t, map[string]string{"p.yaml": "name: capped\nmatch:\n  model: [gpt-*]\nbudgets:\n  prompt_tokens: 1000\n"})
	newGateway(t, func(g *Gateway) {
		g.Models = append(g.Models, ModelConfig{Alias: "house-llm", Pool: "main"})
		g.Policies = []string{dir}
	}, azure("main", "http://127.0.0.1:9", 0))
}
