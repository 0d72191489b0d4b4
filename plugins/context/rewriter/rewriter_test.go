package rewriter

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/tidwall/gjson"

	"github.com/groundgate/groundgate/grounding"
	"github.com/groundgate/groundgate/plugins/simulator"
	"github.com/groundgate/groundgate/policies"
	"github.com/groundgate/groundgate/tokens"
)

const simKey = "sim-rewrite-key-never-shown"

// startSimulator serves the bundled Azure OpenAI simulator on loopback
// and keeps the bodies it received.
func startSimulator(t *testing.T) (*httptest.Server, *[]string) {
	t.Helper()
	sim := &simulator.Simulator{Deployments: []simulator.Deployment{{Name: "gpt-4o-mini"}}, APIKeys: []string{simKey}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := sim.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(b))
		if err := sim.ServeHTTP(w, r, nil); err != nil {
			t.Errorf("simulator: %v", err)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &bodies
}

func provision(t *testing.T, r *Rewriter) *Rewriter {
	t.Helper()
	b, _ := json.Marshal(r)
	r = new(Rewriter)
	json.Unmarshal(b, r)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := r.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	return r
}

var conv = []grounding.Turn{
	{Role: "user", Text: "I'm looking for a hotel called Avalon."},
	{Role: "assistant", Text: "The Avalon is in the north."},
	{Role: "user", Text: "Is there a big room available?"},
}

func TestRewriteWithSimulator(t *testing.T) {
	srv, bodies := startSimulator(t)
	t.Setenv("GG_TEST_REWRITE_KEY", simKey)
	r := provision(t, &Rewriter{Endpoint: srv.URL, Deployment: "gpt-4o-mini", APIKey: "{env.GG_TEST_REWRITE_KEY}"})
	out, err := r.Rewrite(context.Background(), conv, 40)
	if err != nil {
		t.Fatal(err)
	}
	// The simulator quotes the last user message it received: the
	// conversation, sent as one message.
	if !strings.Contains(out.Query, "Customer: I'm looking for a hotel called Avalon.") || out.Model == "" {
		t.Fatalf("%+v", out)
	}
	enc, _ := tokens.ForModel("gpt-4o-mini")
	if out.CompletionTokens != enc.Count(out.Query)+2 && out.CompletionTokens != enc.Count(out.Query) || out.CompletionTokens > 40 || out.PromptTokens < 40 {
		t.Fatalf("usage %+v", out)
	}
	sent := gjson.Parse((*bodies)[0])
	if sent.Get("max_tokens").Int() != 40 || sent.Get("temperature").Int() != 0 || sent.Get("messages.0.role").Str != "system" ||
		!strings.Contains(sent.Get("messages.1.content").Str, "Agent: The Avalon is in the north.\nCustomer: Is there a big room available?") {
		t.Fatalf("sent %s", sent.Raw)
	}
	// max_tokens bounds the rewrite.
	out, err = r.Rewrite(context.Background(), conv, 5)
	if err != nil || out.CompletionTokens != 5 {
		t.Fatalf("%+v %v", out, err)
	}

	// A wrong key: the error names the endpoint and status, never a key.
	bad := provision(t, &Rewriter{Endpoint: srv.URL, Deployment: "gpt-4o-mini", APIKey: "wrong-key-never-shown"})
	_, err = bad.Rewrite(context.Background(), conv, 40)
	if err == nil || !strings.Contains(err.Error(), "status 401") || strings.Contains(err.Error(), "never-shown") || !strings.Contains(err.Error(), "/openai/deployments/gpt-4o-mini/chat/completions") {
		t.Fatalf("err %v", err)
	}
	// An unknown deployment.
	missing := provision(t, &Rewriter{Endpoint: srv.URL, Deployment: "gpt-nope", APIKey: simKey, API: "azure"})
	if _, err := missing.Rewrite(context.Background(), conv, 40); err == nil || !strings.Contains(err.Error(), "status 404") {
		t.Fatalf("err %v", err)
	}
}

// Through grounding: the plan sends the newest messages that fit, and
// reports the rewrite's tokens.
func TestGroundWithSimulatorRewrite(t *testing.T) {
	srv, _ := startSimulator(t)
	r := provision(t, &Rewriter{Endpoint: srv.URL, Deployment: "gpt-4o-mini", APIKey: simKey})
	enc, _ := tokens.ForModel("gpt-4o")
	plan, err := grounding.Compile(grounding.ContextSpec{Articles: &grounding.ArticlesSpec{Query: rewriteQuery()}})
	if err != nil {
		t.Fatal(err)
	}
	idx := &recordingIndex{}
	body := `{"messages":[{"role":"user","content":"I'm looking for a hotel called Avalon."},{"role":"assistant","content":"The Avalon is in the north."},{"role":"user","content":"Is there a big room available?"}]}`
	res, err := plan.Ground(context.Background(), grounding.Sources{Index: idx, Rewriter: r}, grounding.Request{Body: []byte(body)}, nil, enc)
	if err != nil {
		t.Fatal(err)
	}
	if res.Rewrite == nil || res.Rewrite.PromptTokens == 0 || res.Rewrite.CompletionTokens == 0 || res.Rewrite.CompletionTokens > 16 ||
		!strings.HasPrefix(idx.q.Text, "Simulated answer to") || idx.q.Parts[0].Text != res.Rewrite.Query {
		t.Fatalf("rewrite %+v query %+v", res.Rewrite, idx.q)
	}
}

type recordingIndex struct{ q grounding.Query }

func (x *recordingIndex) Search(context.Context, string, int, grounding.Filter) ([]grounding.Hit, error) {
	return nil, nil
}

func (x *recordingIndex) SearchQuery(_ context.Context, q grounding.Query, _ int, _ grounding.Filter) ([]grounding.Hit, error) {
	x.q = q
	return nil, nil
}

func TestCaddyfile(t *testing.T) {
	r := new(Rewriter)
	err := r.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`query_rewriter {
		endpoint https://res.openai.azure.com
		deployment gpt-4o-mini
		api_version 2024-10-21
		api_key {env.AOAI_KEY}
		api azure
		instructions "Write a search query."
		timeout 2s
	}`))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(r)
	want := `{"endpoint":"https://res.openai.azure.com","deployment":"gpt-4o-mini","api_version":"2024-10-21","api_key":"{env.AOAI_KEY}","api":"azure","instructions":"Write a search query.","timeout":2000000000}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	for in, msg := range map[string]string{
		"query_rewriter {\n api grpc\n}":   "expected azure or openai",
		"query_rewriter {\n colour red\n}": "unrecognized query_rewriter subdirective",
		"query_rewriter extra":             "wrong argument count",
	} {
		if err := new(Rewriter).UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: %v", in, err)
		}
	}
	for _, r := range []*Rewriter{{}, {Endpoint: "https://x"}, {Endpoint: "https://x", Deployment: "d", API: "x"}} {
		if r.Validate() == nil {
			t.Errorf("%+v validated", r)
		}
	}
	if err := (&Rewriter{Endpoint: "http://example.com", Deployment: "d"}).Provision(caddy.Context{}); err == nil {
		t.Error("plain http to a remote host accepted")
	}
}

func rewriteQuery() *policies.ArticleQuery {
	return &policies.ArticleQuery{Rewrite: &policies.QueryRewrite{MaxTokens: 16}}
}
