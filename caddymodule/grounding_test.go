package caddymodule

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/tidwall/gjson"

	_ "github.com/groundgate/groundgate/plugins/context/localindex"
	_ "github.com/groundgate/groundgate/plugins/context/records"
)

const groundedPolicy = `name: grounded
default: true
context:
  max_tokens: 1500
  records:
    entities: [incident, contact, account]
  articles:
    top: 3
meta_prompt:
  mode: prepend
  template: |
    Ground your answer.
    {{- if .Records}}
    Case records:
    {{.Records}}
    {{- end}}
    {{- if .Articles}}
    Articles:
    {{.Articles}}
    {{- end}}
`

func groundedGateway(t testing.TB, policy string, mod func(*Gateway)) (*Gateway, *fakeUpstream) {
	main, mini := newFake(t, okHandler), newFake(t, okHandler)
	dir := writePolicies(t, map[string]string{"p.yaml": policy})
	g := policyGateway(t, dir, func(g *Gateway) {
		g.ContextRaw = map[string]json.RawMessage{
			"crm":       json.RawMessage(`{"source":"records"}`),
			"knowledge": json.RawMessage(`{"source":"local_index","dir":` + jsonQuote(t.TempDir()) + `}`),
		}
		g.Keys[0].Scope = &KeyScope{BusinessUnits: []string{"Business Support"}}
		g.Keys[1].Scope = &KeyScope{Accounts: []string{"ACC-100232"}}
		if mod != nil {
			mod(g)
		}
	}, main, mini)
	return g, main
}

func jsonQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

func TestGroundingRecordsAndArticles(t *testing.T) {
	g, main := groundedGateway(t, groundedPolicy, nil)
	r := do(t, g, "POST", "/v1/chat/completions",
		`{"model":"gpt-4o","messages":[{"role":"user","content":"The TVs are stuck on the logo and keep restarting after the update. What should the hotel do?"}]}`,
		"x-groundgate-case", "CAS-01001-K7M2Q9")
	if r.status != 200 || r.header.Get("X-Groundgate-Context") != "ok" {
		t.Fatalf("%d %v %s", r.status, r.header, r.body)
	}
	_, sent := main.lastRequest()
	sys := gjson.GetBytes(sent, "messages.0.content").Str
	for _, want := range []string{"CAS-01001-K7M2Q9", "Hotel room TVs stuck on logo", "Fabrikam Hotels Group", "doc1", "doc3"} {
		if !strings.Contains(sys, want) {
			t.Errorf("system prompt lacks %q:\n%s", want, sys)
		}
	}
	// The case number also works from the message text.
	do(t, g, "POST", "/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"Any update on CAS-01001-K7M2Q9?"}]}`)
	_, sent = main.lastRequest()
	if !strings.Contains(gjson.GetBytes(sent, "messages.0.content").Str, "Hotel room TVs") {
		t.Fatal("case number in the message did not ground the request")
	}
}

func TestGroundingHonoursScope(t *testing.T) {
	g, main := groundedGateway(t, groundedPolicy, nil)
	before := testutil.ToFloat64(recordsDenied.WithLabelValues("grounded"))
	// "bill" may see account ACC-100232 only; CAS-01001 belongs to ACC-100231.
	r := do(t, g, "POST", "/v1/chat/completions",
		`{"model":"gpt-4o","messages":[{"role":"user","content":"Summarise CAS-01001-K7M2Q9"}]}`,
		"Authorization", "Bearer billing-key-123")
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	_, sent := main.lastRequest()
	sys := gjson.GetBytes(sent, "messages.0.content").Str
	if strings.Contains(sys, "CAS-01001") || strings.Contains(sys, "Fabrikam") || strings.Contains(sys, "Hotel room") {
		t.Fatalf("another customer's record reached the model:\n%s", sys)
	}
	if got := testutil.ToFloat64(recordsDenied.WithLabelValues("grounded")) - before; got < 1 {
		t.Fatalf("the withheld record was not counted (%v)", got)
	}
}

func TestGroundingSourceFailure(t *testing.T) {
	for _, mode := range []string{"proceed", "fail"} {
		t.Run(mode, func(t *testing.T) {
			policy := strings.Replace(groundedPolicy, "  max_tokens: 1500\n", "  max_tokens: 1500\n  on_error: "+mode+"\n  timeout: 1ns\n", 1)
			g, _ := groundedGateway(t, policy, nil)
			r := do(t, g, "POST", "/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"TV stuck on logo CAS-01001-K7M2Q9"}]}`)
			if mode == "proceed" && (r.status != 200 || r.header.Get("X-Groundgate-Context") != "degraded") {
				t.Fatalf("proceed: %d %v", r.status, r.header)
			}
			if mode == "fail" {
				assertOpenAIError(t, r, 503, "context_unavailable")
			}
		})
	}
}

func TestGroundingConfigErrors(t *testing.T) {
	for _, tc := range []struct{ sec, want string }{
		{"context:\n  records:\n    entities: [invoice]\n", `unknown entity "invoice"`},
		{"context:\n  on_error: maybe\n", `on_error must be proceed or fail`},
		{"context:\n  articles:\n    topp: 3\n", `topp`},
		{"context:\n  articles:\n    index: nowhere\n", `index "nowhere" is not configured`},
	} {
		dir := writePolicies(t, map[string]string{"p.yaml": "name: p\ndefault: true\n" + tc.sec})
		ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
		g := &Gateway{
			Models:     []ModelConfig{{Alias: "gpt-4o", Pool: "main"}},
			Pools:      []PoolConfig{{Name: "main", Upstreams: []UpstreamConfig{azure("a", "http://127.0.0.1:1", 0)}}},
			Policies:   []string{dir},
			ContextRaw: map[string]json.RawMessage{"crm": json.RawMessage(`{"source":"records"}`)},
		}
		err := g.Provision(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "p.yaml:") {
			t.Errorf("%q: err = %v", tc.sec, err)
		}
	}
}
