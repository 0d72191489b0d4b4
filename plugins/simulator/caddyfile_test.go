package simulator

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func adapt(t *testing.T, input string) (string, error) {
	t.Helper()
	adapter := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}
	out, _, err := adapter.Adapt([]byte(input), nil)
	if err != nil {
		return "", err
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, out, "", "\t"); err != nil {
		t.Fatal(err)
	}
	return pretty.String(), nil
}

func TestCaddyfileAdapt(t *testing.T) {
	got, err := adapt(t, `:8443 {
	aoai_simulator {
		deployment gpt-4o gpt-4o-2024-08-06
		deployment text-embedding-3-large
		dimensions text-embedding-3-large 1024
		api_key {env.SIM_KEY} second-key
		latency 0
		time_to_first_token 50ms
		tokens_per_second 200
		error_rate 0.01
		rate_limit_rate 0
		drop_rate 0.005
		retry_after 2s
		tokens_per_minute 100000
		requests_per_minute 600
		blocked_terms "forbidden phrase" other
		blocked_output_terms secret
		filter_category hate
		async_filter
		seed 42
		region "Sweden Central"
		max_request_body_size 1048576
	}
}`)
	if err != nil {
		t.Fatal(err)
	}
	want := `{
	"apps": {
		"http": {
			"servers": {
				"srv0": {
					"listen": [
						":8443"
					],
					"routes": [
						{
							"handle": [
								{
									"api_keys": [
										"{env.SIM_KEY}",
										"second-key"
									],
									"async_filter": true,
									"blocked_output_terms": [
										"secret"
									],
									"blocked_terms": [
										"forbidden phrase",
										"other"
									],
									"deployments": [
										{
											"model": "gpt-4o-2024-08-06",
											"name": "gpt-4o"
										},
										{
											"dimensions": 1024,
											"name": "text-embedding-3-large"
										}
									],
									"drop_rate": 0.005,
									"error_rate": 0.01,
									"filter_category": "hate",
									"handler": "aoai_simulator",
									"max_request_body_size": 1048576,
									"region": "Sweden Central",
									"requests_per_minute": 600,
									"retry_after": 2000000000,
									"seed": 42,
									"time_to_first_token": 50000000,
									"tokens_per_minute": 100000,
									"tokens_per_second": 200
								}
							]
						}
					]
				}
			}
		}
	}
}`
	if got != want {
		t.Fatalf("adapted config:\n%s", got)
	}
}

// Without a global `order`, the directive sorts before respond and works
// inside route-less site blocks alongside other handlers.
func TestCaddyfileOrder(t *testing.T) {
	got, err := adapt(t, `:8443 {
	respond /health "ok"
	aoai_simulator
}`)
	if err != nil {
		t.Fatal(err)
	}
	if i, j := strings.Index(got, `"handler": "aoai_simulator"`), strings.Index(got, `"handler": "static_response"`); i < 0 || j < 0 || i > j {
		t.Fatalf("aoai_simulator not ordered before respond:\n%s", got)
	}
}

func TestCaddyfileErrors(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"aoai_simulator {\n\tdeplyment gpt-4o\n}", `unrecognized subdirective "deplyment"`},
		{"aoai_simulator {\n\tlatency soon\n}", `latency: invalid duration "soon"`},
		{"aoai_simulator {\n\terror_rate high\n}", `error_rate: invalid number "high"`},
		{"aoai_simulator {\n\tdeployment\n}", "wrong argument count"},
		{"aoai_simulator {\n\tdeployment a b c\n}", "wrong argument count"},
		{"aoai_simulator {\n\tseed -1\n}", `seed: invalid unsigned integer "-1"`},
		{"aoai_simulator {\n\tdimensions nope 10\n}", `deployment "nope" is not declared before`},
		{"aoai_simulator extra", "wrong argument count"},
		{"aoai_simulator {\n\tasync_filter maybe\n}", `async_filter: invalid boolean "maybe"`},
	} {
		_, err := adapt(t, ":8443 {\n"+tc.body+"\n}")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to contain %q", tc.body, err, tc.want)
		}
	}
}
