package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"gopkg.in/yaml.v3"
)

// adapt adapts a Caddyfile to Caddy's JSON, decoded.
func adapt(t *testing.T, src []byte) map[string]any {
	t.Helper()
	js, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(src, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, src)
	}
	var cfg map[string]any
	if err := json.Unmarshal(js, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// handlers are the route handlers of name in cfg, nested subroutes
// included, in order.
func handlers(cfg map[string]any, name string) []map[string]any {
	var out []map[string]any
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if v["handler"] == name {
				out = append(out, v)
			}
			for _, w := range v {
				walk(w)
			}
		case []any:
			for _, w := range v {
				walk(w)
			}
		}
	}
	walk(cfg["apps"])
	return out
}

// gatewayOf is the one llm_gateway handler in cfg.
func gatewayOf(t *testing.T, cfg map[string]any) map[string]any {
	t.Helper()
	gws := handlers(cfg, "llm_gateway")
	if len(gws) != 1 {
		t.Fatalf("%d llm_gateway handlers, want 1", len(gws))
	}
	return gws[0]
}

// accessLogs are the encoders of the access logs cfg defines.
func accessLogs(cfg map[string]any) []any {
	logging, _ := cfg["logging"].(map[string]any)
	logs, _ := logging["logs"].(map[string]any)
	var out []any
	for name, l := range logs {
		if name != "default" {
			out = append(out, l.(map[string]any)["encoder"])
		}
	}
	return out
}

func metricsOn(cfg map[string]any) bool {
	http, _ := cfg["apps"].(map[string]any)["http"].(map[string]any)
	_, ok := http["metrics"]
	return ok
}

// TestGatewayMirrorsDemo fails when the harness's gateway stops running
// what the demo runs: the demo's default policy file itself, the filter
// and post-processor modules the demo defines for the names it lists,
// the same context sources, an audit sink of the same kind and options,
// the same access log and metrics (and plain reverse_proxy the same log
// and metrics, so the comparison stays like for like).
func TestGatewayMirrorsDemo(t *testing.T) {
	t.Chdir("../..") // the demo's relative paths are the repository's
	demo := adapt(t, mustRead(t, "Caddyfile"))
	policy, err := policyPath(demoPolicy)
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{dir: t.TempDir(), p: ports{Simulator: 1001, SlowSimulator: 1002, Proxy: 1003, SlowProxy: 1004, Gateway: 1005}}
	gwSrc, err := renderConfig("gateway.Caddyfile", c.gatewayConfig("gateway", c.p.Gateway, 0, policy))
	if err != nil {
		t.Fatal(err)
	}
	harness := adapt(t, gwSrc)
	dg, hg := gatewayOf(t, demo), gatewayOf(t, harness)

	// The policy: the demo's default file, which the demo serves too.
	if got, want := hg["policies"], []any{policy}; !reflect.DeepEqual(got, want) {
		t.Errorf("harness policies = %v, want %v", got, want)
	}
	served := false
	for _, p := range dg["policies"].([]any) {
		if abs, _ := filepath.Abs(p.(string)); abs == policy || abs == filepath.Dir(policy) {
			served = true
		}
	}
	if !served {
		t.Errorf("the demo serves %v, not %s", dg["policies"], policy)
	}

	// The modules the policy names, as the demo defines them.
	var pol struct {
		Filters []string `yaml:"filters"`
		Post    []string `yaml:"post"`
	}
	if err := yaml.Unmarshal(mustRead(t, policy), &pol); err != nil {
		t.Fatal(err)
	}
	if len(pol.Filters) == 0 || len(pol.Post) == 0 {
		t.Fatalf("%s names no filters or no post-processors: %+v", demoPolicy, pol)
	}
	for field, names := range map[string][]string{"filters": pol.Filters, "post": pol.Post} {
		for _, n := range names {
			d, h := dg[field].(map[string]any)[n], hg[field].(map[string]any)[n]
			if d == nil || !reflect.DeepEqual(d, h) {
				t.Errorf("%s %q: demo %v, harness %v", field, n, d, h)
			}
		}
	}
	if !reflect.DeepEqual(dg["context"], hg["context"]) {
		t.Errorf("context: demo %v, harness %v", dg["context"], hg["context"])
	}
	if (dg["introspect"] == nil) != (hg["introspect"] == nil) {
		t.Errorf("introspect (the console): demo %v, harness %v", dg["introspect"], hg["introspect"])
	}

	// The audit sink: the same kind and options; only the file differs.
	if dg["audit"] == nil {
		t.Fatal("the demo records no audit")
	}
	if d, h := withoutPaths(dg["audit"]), withoutPaths(hg["audit"]); !reflect.DeepEqual(d, h) {
		t.Errorf("audit: demo %v, harness %v", dg["audit"], hg["audit"])
	}

	// The access log and its fields, and metrics.
	dl := accessLogs(demo)
	if len(dl) != 1 {
		t.Fatalf("the demo has %d access logs, want 1", len(dl))
	}
	if hl := accessLogs(harness); len(hl) != 1 || !reflect.DeepEqual(dl[0], hl[0]) {
		t.Errorf("access log: demo %v, harness %v", dl[0], hl)
	}
	if d, h := handlers(demo, "log_append"), handlers(harness, "log_append"); len(d) == 0 || !reflect.DeepEqual(d, h) {
		t.Errorf("log_append: demo %v, harness %v", d, h)
	}
	if metricsOn(demo) != metricsOn(harness) {
		t.Errorf("metrics: demo %v, harness %v", metricsOn(demo), metricsOn(harness))
	}

	// Plain reverse_proxy logs and counts alike.
	pxSrc, err := renderConfig("proxy.Caddyfile", proxyConfig{Port: 1003, SlowPort: 1004, Simulator: 1001, SlowSimulator: 1002, AccessLog: filepath.Join(c.dir, "proxy-access.log")})
	if err != nil {
		t.Fatal(err)
	}
	proxy := adapt(t, pxSrc)
	for _, l := range accessLogs(proxy) {
		if !reflect.DeepEqual(l, dl[0]) {
			t.Errorf("reverse_proxy's access log %v, the demo's %v", l, dl[0])
		}
	}
	if len(accessLogs(proxy)) == 0 || metricsOn(proxy) != metricsOn(demo) {
		t.Errorf("reverse_proxy: %d access logs, metrics %v", len(accessLogs(proxy)), metricsOn(proxy))
	}
}

// withoutPaths is v with every "path" member removed.
func withoutPaths(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, w := range v {
			if k != "path" {
				out[k] = withoutPaths(w)
			}
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, w := range v {
			out[i] = withoutPaths(w)
		}
		return out
	}
	return v
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
