package caddymodule

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/tidwall/gjson"

	"github.com/groundgate/groundgate/tokens"
)

const generalPolicy = `name: general
default: true
vars:
  brand: Contoso
meta_prompt:
  mode: prepend
  template: "You help {{.Principal.Name}} of team {{.Principal.Team}} at {{.Vars.brand}}. VERSION-1"
`

const draftPolicy = `name: draft-email
feature: draft_email
match:
  route: chat.completions
  aliases: [copilot-draft-email]
teams:
  enabled: [support]
  disabled: [billing]
upstream:
  pool: mini
meta_prompt:
  mode: replace
  template: "Draft an email. Customer wrote: {{.User}}"
`

func writePolicies(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func policyGateway(t testing.TB, dir string, mod func(*Gateway), main, mini *fakeUpstream) *Gateway {
	return newGateway(t, func(g *Gateway) {
		g.Keys = append(g.Keys, KeyConfig{Name: "bill", Team: "billing", SHA256: keySum("billing-key-123")},
			KeyConfig{Name: "ops", Team: "platform", SHA256: keySum("ops-key-123456")})
		g.Pools = append(g.Pools, PoolConfig{Name: "mini", Upstreams: []UpstreamConfig{azure("mini", mini.URL, 0)}})
		g.Policies = []string{dir}
		g.Introspect = []string{"ops"}
		if mod != nil {
			mod(g)
		}
	}, azure("main", main.URL, 0))
}

func TestPolicyMetaPromptAndFeatures(t *testing.T) {
	main, mini := newFake(t, okHandler), newFake(t, okHandler)
	dir := writePolicies(t, map[string]string{"general.yaml": generalPolicy, "draft.yaml": draftPolicy})
	g := policyGateway(t, dir, nil, main, mini)

	// Default policy: meta prompt prepended before the client's system message.
	r := do(t, g, "POST", "/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"system","content":"client sys"},{"role":"user","content":"hi"}]}`)
	if r.status != 200 || r.header.Get("X-Groundgate-Policy") != "general" {
		t.Fatalf("%d %v %s", r.status, r.header, r.body)
	}
	_, sent := main.lastRequest()
	msgs := gjson.GetBytes(sent, "messages")
	if msgs.Get("#").Int() != 3 || msgs.Get("0.content").Str != "You help alice of team support at Contoso. VERSION-1" || msgs.Get("1.content").Str != "client sys" {
		t.Fatalf("upstream messages: %s", msgs.Raw)
	}

	// A feature selected by alias goes to the policy's pool, with the
	// client's system messages replaced.
	r = do(t, g, "POST", "/v1/chat/completions", `{"model":"copilot-draft-email","messages":[{"role":"system","content":"ignore me"},{"role":"user","content":"My order never arrived"}]}`)
	if r.status != 200 || r.ex["llm.upstream"] != "mini" {
		t.Fatalf("alias feature: %d %v %s", r.status, r.ex, r.body)
	}
	_, sent = mini.lastRequest()
	msgs = gjson.GetBytes(sent, "messages")
	if msgs.Get("#").Int() != 2 || !strings.HasPrefix(msgs.Get("0.content").Str, "Draft an email. Customer wrote: ") ||
		!strings.Contains(msgs.Get("0.content").Str, "My order never arrived") || strings.Contains(msgs.Raw, "ignore me") {
		t.Fatalf("feature messages: %s", msgs.Raw)
	}

	// The same feature by header, for a team it is disabled for: 403 that
	// names the feature and the reason.
	r = do(t, g, "POST", "/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}`,
		"Authorization", "Bearer billing-key-123", "x-groundgate-feature", "draft_email")
	assertOpenAIError(t, r, 403, "policy_denied")
	if msg := gjson.Get(r.body, "error.message").Str; !strings.Contains(msg, `feature "draft_email" is disabled for team "billing"`) {
		t.Fatalf("denial reason: %s", msg)
	}
	// An unknown feature is refused, not served by the default.
	r = do(t, g, "POST", "/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}`, "x-groundgate-feature", "summarise_everything")
	assertOpenAIError(t, r, 403, "policy_denied")
}

func TestNoMatchingPolicyIs403(t *testing.T) {
	main, mini := newFake(t, okHandler), newFake(t, okHandler)
	dir := writePolicies(t, map[string]string{"draft.yaml": draftPolicy})
	g := policyGateway(t, dir, nil, main, mini)
	r := do(t, g, "POST", "/v1/chat/completions", chatBody)
	assertOpenAIError(t, r, 403, "policy_denied")
	if main.calls.Load()+mini.calls.Load() != 0 {
		t.Fatal("a refused request reached an upstream")
	}
}

func TestPolicyNamesUnknownPool(t *testing.T) {
	dir := writePolicies(t, map[string]string{"p.yaml": strings.Replace(draftPolicy, "pool: mini", "pool: nowhere", 1)})
	ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
	defer cancel()
	g := &Gateway{Models: []ModelConfig{{Alias: "gpt-4o", Pool: "main"}},
		Pools:    []PoolConfig{{Name: "main", Upstreams: []UpstreamConfig{azure("a", "http://127.0.0.1:1", 0)}}},
		Policies: []string{dir}}
	err := g.Provision(ctx)
	if err == nil || !strings.Contains(err.Error(), `p.yaml:1: policy "draft-email": upstream pool "nowhere" is not defined`) {
		t.Fatalf("err = %v", err)
	}
}

func TestTokenCounterEndpoint(t *testing.T) {
	g := newGateway(t, nil, azure("a", "http://127.0.0.1:1", 0))
	body := `{"model":"gpt-4o","messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"How many tokens is this?","name":"bob"}]}`
	r := do(t, g, "POST", "/utils/token_counter", body)
	enc, _ := tokens.ForModel("gpt-4o")
	want, _ := enc.CountChat([]byte(body))
	if r.status != 200 || gjson.Get(r.body, "total_tokens").Int() != int64(want) || gjson.Get(r.body, "tokenizer_type").Str != "o200k_base" {
		t.Fatalf("%d %s (want %d)", r.status, r.body, want)
	}
	assertOpenAIError(t, do(t, g, "POST", "/utils/token_counter", body, "Authorization", ""), 401, "missing_api_key")
	assertOpenAIError(t, do(t, g, "POST", "/utils/token_counter", `{"model":"no-such-model","messages":[{"role":"user","content":"x"}]}`), 400, "model_not_found")
}

func TestIntrospection(t *testing.T) {
	main, mini := newFake(t, okHandler), newFake(t, okHandler)
	dir := writePolicies(t, map[string]string{"general.yaml": generalPolicy, "draft.yaml": draftPolicy})
	g := policyGateway(t, dir, nil, main, mini)

	assertOpenAIError(t, do(t, g, "GET", "/groundgate/policies", ""), 403, "operator_only")
	r := do(t, g, "GET", "/groundgate/policies", "", "Authorization", "Bearer ops-key-123456")
	if r.status != 200 || gjson.Get(r.body, "policies.#").Int() != 2 || gjson.Get(r.body, "hash").Str == "" ||
		gjson.Get(r.body, "policies.0.name").Str != "draft-email" || len(gjson.Get(r.body, "policies.0.hash").Str) != 64 {
		t.Fatalf("policies: %d %s", r.status, r.body)
	}

	r = do(t, g, "POST", "/groundgate/explain/v1/chat/completions?principal=alice",
		`{"model":"copilot-draft-email","stream":true,"messages":[{"role":"user","content":"Where is my parcel?"}]}`,
		"Authorization", "Bearer ops-key-123456")
	if r.status != 200 {
		t.Fatalf("explain: %d %s", r.status, r.body)
	}
	res := gjson.Parse(r.body)
	if res.Get("decision.policy").Str != "draft-email" || !res.Get("decision.by_alias").Bool() || res.Get("pool").Str != "mini" ||
		res.Get("decision.trace.#").Int() != 2 {
		t.Fatalf("explain decision: %s", r.body)
	}
	up := res.Get("upstream_requests.0")
	if !strings.HasSuffix(up.Get("url").Str, "/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21") ||
		!strings.Contains(up.Get("body.messages.0.content").Str, "Where is my parcel?") || !up.Get("body.stream_options.include_usage").Bool() {
		t.Fatalf("explain upstream request: %s", up.Raw)
	}
	if strings.Contains(r.body, "upstream-secret") {
		t.Fatal("explain leaks upstream credentials")
	}
	if main.calls.Load()+mini.calls.Load() != 0 {
		t.Fatal("explain sent a request upstream")
	}
	// Explain as a billing agent shows the refusal.
	r = do(t, g, "POST", "/groundgate/explain/v1/chat/completions?principal=bill", `{"model":"copilot-draft-email","messages":[{"role":"user","content":"x"}]}`,
		"Authorization", "Bearer ops-key-123456")
	if !gjson.Get(r.body, "decision.denied").Bool() || !strings.Contains(gjson.Get(r.body, "decision.reason").Str, "billing") {
		t.Fatalf("explain denial: %s", r.body)
	}
}

func TestPolicyWatchSwapsAndKeepsOldOnError(t *testing.T) {
	main, mini := newFake(t, okHandler), newFake(t, okHandler)
	dir := writePolicies(t, map[string]string{"general.yaml": generalPolicy})
	g := policyGateway(t, dir, func(g *Gateway) { g.Watch = caddy.Duration(20 * time.Millisecond) }, main, mini)

	sysPrompt := func() string {
		do(t, g, "POST", "/v1/chat/completions", chatBody)
		_, sent := main.lastRequest()
		return gjson.GetBytes(sent, "messages.0.content").Str
	}
	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for !strings.Contains(sysPrompt(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("policy never became %q", want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("VERSION-1")
	_ = os.WriteFile(filepath.Join(dir, "general.yaml"), []byte(strings.Replace(generalPolicy, "VERSION-1", "VERSION-2", 1)), 0o600)
	waitFor("VERSION-2")
	// An invalid file is refused; the previous policies keep serving.
	_ = os.WriteFile(filepath.Join(dir, "general.yaml"), []byte("name: general\ndefault: true\nmeta_prompt:\n  mode: sideways\n"), 0o600)
	time.Sleep(150 * time.Millisecond)
	if got := sysPrompt(); !strings.Contains(got, "VERSION-2") {
		t.Fatalf("after an invalid edit the gateway serves %q", got)
	}
}

func TestCaddyfilePoliciesValidatedAtAdapt(t *testing.T) {
	dir := writePolicies(t, map[string]string{"bad.yaml": "name: x\ndefault: true\nmeta_promt: {}\n"})
	err := new(Gateway).UnmarshalCaddyfile(caddyfileDispenser("llm_gateway {\n policies " + dir + "\n}"))
	if err == nil || !strings.Contains(err.Error(), "bad.yaml:3") || !strings.Contains(err.Error(), "meta_promt") {
		t.Fatalf("err = %v", err)
	}
}

func TestPolicyBudgetsPerRequest(t *testing.T) {
	main, mini := newFake(t, okHandler), newFake(t, okHandler)
	dir := writePolicies(t, map[string]string{"general.yaml": `name: general
default: true
budgets:
  prompt_tokens: 40
  completion_tokens: 100
`})
	g := policyGateway(t, dir, nil, main, mini)

	// No limit sent: the cap is set. A higher one is lowered; a lower one kept.
	for _, tc := range []struct {
		body, field string
		want        int64
	}{
		{`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, "max_tokens", 100},
		{`{"model":"gpt-4o","max_tokens":4000,"messages":[{"role":"user","content":"hi"}]}`, "max_tokens", 100},
		{`{"model":"gpt-4o","max_completion_tokens":50,"messages":[{"role":"user","content":"hi"}]}`, "max_completion_tokens", 50},
	} {
		if r := do(t, g, "POST", "/v1/chat/completions", tc.body); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		_, sent := main.lastRequest()
		if got := gjson.GetBytes(sent, tc.field).Int(); got != tc.want {
			t.Fatalf("%s: %s = %d, want %d (%s)", tc.body, tc.field, got, tc.want, sent)
		}
	}
	// A prompt over the policy's limit never reaches the upstream.
	before := main.calls.Load()
	long := `{"model":"gpt-4o","messages":[{"role":"user","content":"` + strings.Repeat("warranty ", 60) + `"}]}`
	r := do(t, g, "POST", "/v1/chat/completions", long)
	assertOpenAIError(t, r, 400, "context_length_exceeded")
	if !strings.Contains(r.body, "limited to 40 tokens by policy general") || main.calls.Load() != before {
		t.Fatalf("%s (upstream calls %d → %d)", r.body, before, main.calls.Load())
	}
}

func TestReasoningModelsGetMaxCompletionTokens(t *testing.T) {
	out, err := clampCompletion([]byte(`{"messages":[]}`), 64, "o3-mini")
	if err != nil || gjson.GetBytes(out, "max_completion_tokens").Int() != 64 || gjson.GetBytes(out, "max_tokens").Exists() {
		t.Fatalf("%s %v", out, err)
	}
}

func TestMisspeltBudgetIsRefused(t *testing.T) {
	dir := writePolicies(t, map[string]string{"p.yaml": "name: p\ndefault: true\nbudgets:\n  completion_tokns: 5\n"})
	if err := checkPolicyFiles([]string{dir}); err == nil || !strings.Contains(err.Error(), "p.yaml:4") || !strings.Contains(err.Error(), "completion_tokns") {
		t.Fatalf("misspelt budget: %v", err)
	}
}

// Copilot feature aliases are models for the keys that may use them.
func TestFeatureAliasesAreListedModels(t *testing.T) {
	main, mini := newFake(t, okHandler), newFake(t, okHandler)
	g := policyGateway(t, writePolicies(t, map[string]string{"general.yaml": generalPolicy, "draft.yaml": draftPolicy}), nil, main, mini)
	for _, p := range []string{"/v1/models", "/openai/v1/models", "/openai/models?api-version=2024-10-21"} {
		r := do(t, g, "GET", p, "")
		ids := gjson.Get(r.body, "data.#.id").String()
		if r.status != 200 || ids != `["gpt-4o","text-embedding-3-small","copilot-draft-email"]` {
			t.Fatalf("%s: %d %s", p, r.status, r.body)
		}
	}
	if r := do(t, g, "GET", "/v1/models/copilot-draft-email", ""); r.status != 200 || gjson.Get(r.body, "id").Str != "copilot-draft-email" {
		t.Fatalf("retrieve: %d %s", r.status, r.body)
	}
	// Team billing has the feature disabled: neither listed nor found.
	r := do(t, g, "GET", "/v1/models", "", "Authorization", "Bearer billing-key-123")
	if strings.Contains(r.body, "copilot-draft-email") {
		t.Fatalf("billing sees %s", r.body)
	}
	assertOpenAIError(t, do(t, g, "GET", "/v1/models/copilot-draft-email", "", "Authorization", "Bearer billing-key-123"), 404, "model_not_found")
}
