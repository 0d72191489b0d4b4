package caddymodule

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestTracingCaddyfile(t *testing.T) {
	var g Gateway
	if err := g.UnmarshalCaddyfile(caddyfile.NewTestDispenser("llm_gateway {\n tracing\n}")); err != nil || g.Tracing == nil {
		t.Fatalf("tracing: %v %v", g.Tracing, err)
	}
	for in, want := range map[string]string{
		"tracing otlp":              "wrong argument count",
		"tracing {\n endpoint x\n}": `tracing: unrecognized subdirective "endpoint"`,
	} {
		var g Gateway
		err := g.UnmarshalCaddyfile(caddyfile.NewTestDispenser("llm_gateway {\n" + in + "\n}"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}

// With tracing off, the client's W3C trace context still reaches the
// upstream unchanged; without one, none is made up.
func TestTraceparentPassedThroughWhenOff(t *testing.T) {
	up := newFake(t, okHandler)
	g := newGateway(t, nil, azure("a", up.URL, 0))
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	r := do(t, g, "POST", "/v1/chat/completions", chatBody, "traceparent", tp, "tracestate", "congo=t61rcWkgMzE")
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	req, _ := up.lastRequest()
	if req.Header.Get("traceparent") != tp || req.Header.Get("tracestate") != "congo=t61rcWkgMzE" {
		t.Fatalf("upstream trace headers %q %q", req.Header.Get("traceparent"), req.Header.Get("tracestate"))
	}
	do(t, g, "POST", "/v1/chat/completions", chatBody)
	if req, _ = up.lastRequest(); req.Header.Get("traceparent") != "" {
		t.Fatalf("traceparent made up: %q", req.Header.Get("traceparent"))
	}
}

// A policy's tracing section is decoded strictly.
func TestPolicyTracingSection(t *testing.T) {
	dir := writePolicies(t, map[string]string{"p.yaml": generalPolicy + "tracing:\n  contnet: true\n"})
	ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
	defer cancel()
	g := &Gateway{Models: []ModelConfig{{Alias: "gpt-4o", Pool: "main"}},
		Pools:    []PoolConfig{{Name: "main", Upstreams: []UpstreamConfig{azure("a", "http://127.0.0.1:1", 0)}}},
		Policies: []string{dir}}
	err := g.Provision(ctx)
	if err == nil || !strings.Contains(err.Error(), "contnet") {
		t.Fatalf("err = %v", err)
	}
}
