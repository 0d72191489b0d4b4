package caddymodule

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tidwall/gjson"
)

func TestCaddyfileAdapt(t *testing.T) {
	input := `:8080 {
	llm_gateway {
		key demo {
			sha256 ` + keySum("demo-key") + `
			team support
		}
		key ci {
			env GG_CI_KEY
		}
		model gpt-4o main
		model text-embedding-3-small {
			pool emb
			tokenizer text-embedding-3-small
		}
		pool main {
			azure east {
				endpoint https://east.openai.azure.com
				deployment gpt-4o
				api_version 2024-10-21
				api_key {env.AZURE_OPENAI_API_KEY}
				loopback_api_key simulator-key
				priority 1
				weight 3
			}
			azure west {
				endpoint https://west.openai.azure.com
				deployment gpt-4o
				entra {
					tenant_id t
					client_id c
					client_secret {env.SECRET}
				}
			}
			openai backup {
				endpoint https://api.openai.com/v1
				model gpt-4o-2024-08-06
				api_key {env.OPENAI_API_KEY}
				priority 2
			}
		}
		pool emb {
			azure {
				endpoint https://east.openai.azure.com
				deployment text-embedding-3-small
				api_key {env.AZURE_OPENAI_API_KEY}
			}
		}
		max_request_body 8MB
		timeout 90s
		attempt_timeout 30s
		stream_idle_timeout 45s
		max_attempts 4
		max_retry_wait 5s
		breaker {
			failures 3
			open_for 20s
			half_open_requests 2
		}
	}
}`
	adapter := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}
	out, warnings, err := adapter.Adapt([]byte(input), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range warnings {
		if !strings.Contains(w.Message, "not formatted") {
			t.Fatalf("warning: %v", w)
		}
	}
	h := gjson.GetBytes(out, "apps.http.servers.srv0.routes.0.handle.0")
	if h.Get("handler").Str != "llm_gateway" {
		t.Fatalf("handler not found in %s", out)
	}
	want := map[string]string{
		"keys.0.name":                             "demo",
		"keys.0.team":                             "support",
		"keys.1.env":                              "GG_CI_KEY",
		"models.0.pool":                           "main",
		"models.1.tokenizer":                      "text-embedding-3-small",
		"pools.0.upstreams.0.name":                "east",
		"pools.0.upstreams.0.type":                "azure",
		"pools.0.upstreams.0.api_key":             "{env.AZURE_OPENAI_API_KEY}",
		"pools.0.upstreams.0.loopback_api_key":    "simulator-key",
		"pools.0.upstreams.0.weight":              "3",
		"pools.0.upstreams.1.entra.client_id":     "c",
		"pools.0.upstreams.2.type":                "openai",
		"pools.0.upstreams.2.deployment":          "gpt-4o-2024-08-06",
		"pools.0.upstreams.2.priority":            "2",
		"max_request_body":                        "8000000",
		"timeout":                                 "90000000000",
		"max_attempts":                            "4",
		"breaker.failures":                        "3",
		"breaker.half_open_requests":              "2",
		"breaker.open_for":                        "20000000000",
		"stream_idle_timeout":                     "45000000000",
		"pools.1.upstreams.0.deployment":          "text-embedding-3-small",
		"pools.0.upstreams.1.entra.client_secret": "{env.SECRET}",
	}
	for path, v := range want {
		if got := h.Get(path).String(); got != v {
			t.Errorf("%s = %q, want %q", path, got, v)
		}
	}
	// The JSON round-trips into the handler's config struct.
	var g Gateway
	if err := json.Unmarshal([]byte(h.Raw), &g); err != nil {
		t.Fatal(err)
	}
}

func caddyfileDispenser(s string) *caddyfile.Dispenser { return caddyfile.NewTestDispenser(s) }

func TestCaddyfileStrict(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`llm_gateway { modle gpt-4o main }`, `unrecognized llm_gateway subdirective "modle"`},
		{`llm_gateway { key k { sha265 x } }`, `unrecognized subdirective "sha265"`},
		{`llm_gateway { pool p { bedrock x } }`, `unrecognized subdirective "bedrock"`},
		{`llm_gateway { pool p { azure { endpont x } } }`, `unrecognized subdirective "endpont"`},
		{`llm_gateway { timeout soon }`, `"soon" is not a duration`},
		{`llm_gateway { max_attempts -1 }`, `not a non-negative integer`},
		{`llm_gateway { max_request_body lots }`, `not a size`},
		{`llm_gateway { breaker { trips 3 } }`, `unrecognized subdirective "trips"`},
		{`llm_gateway extra`, `wrong argument count`},
	} {
		d := caddyfile.NewTestDispenser(strings.NewReplacer("{ ", "{\n", " }", "\n}").Replace(tc.in))
		err := new(Gateway).UnmarshalCaddyfile(d)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.in, err, tc.want)
		}
	}
}

// Two configs (a reload) register the same collectors on two registries
// without panicking, and both expose them.
func TestMetricsSurviveReload(t *testing.T) {
	r1, r2 := prometheus.NewPedanticRegistry(), prometheus.NewPedanticRegistry()
	for _, r := range []*prometheus.Registry{r1, r2, r2} {
		if err := registerMetrics(r); err != nil {
			t.Fatal(err)
		}
	}
	requestsTotal.WithLabelValues("chat.completions", "gpt-4o", "200").Inc()
	for _, r := range []*prometheus.Registry{r1, r2} {
		mfs, err := r.Gather()
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, mf := range mfs {
			if mf.GetName() == "groundgate_requests_total" {
				found = true
			}
		}
		if !found {
			t.Fatal("groundgate_requests_total not exposed on a config's registry")
		}
	}
}
