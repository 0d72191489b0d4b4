package localindex

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/tidwall/gjson"

	"github.com/groundgate/groundgate/grounding"
	"github.com/groundgate/groundgate/plugins/simulator"
)

// provision provisions a LocalIndex from its JSON config, the way Caddy
// does, and cleans it up when the test ends.
func provision(t testing.TB, cfg string) *LocalIndex {
	t.Helper()
	li, err := tryProvision(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return li
}

func tryProvision(t testing.TB, cfg string) (*LocalIndex, error) {
	t.Helper()
	li := new(LocalIndex)
	if err := json.Unmarshal([]byte(cfg), li); err != nil {
		t.Fatalf("config: %v", err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := li.Provision(ctx); err != nil {
		return nil, err
	}
	if err := li.Validate(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { li.Cleanup() })
	return li, nil
}

// embedServer is an embeddings endpoint for tests: the repo's Azure OpenAI
// simulator (deterministic word-hash vectors) behind httptest on
// loopback, counting requests and embedded inputs.
type embedServer struct {
	*httptest.Server
	requests, inputs atomic.Int64
	fail             atomic.Bool // answer 500 while set
}

func startSimulator(t testing.TB) *embedServer {
	t.Helper()
	sim := &simulator.Simulator{
		Deployments: []simulator.Deployment{{Name: "text-embedding-3-small", Dimensions: 256}},
		APIKeys:     []string{"sim-test-key"},
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := sim.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	es := &embedServer{}
	es.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		es.requests.Add(1)
		in := gjson.GetBytes(body, "input")
		if in.IsArray() {
			es.inputs.Add(in.Get("#").Int())
		} else {
			es.inputs.Add(1)
		}
		if es.fail.Load() {
			http.Error(w, `{"error":{"code":"InternalServerError","message":"injected"}}`, 500)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		if err := sim.ServeHTTP(w, r, nil); err != nil {
			t.Errorf("simulator: %v", err)
		}
	}))
	t.Cleanup(es.Close)
	return es
}

func (es *embedServer) config() string {
	return `{"endpoint": "` + es.URL + `", "deployment": "text-embedding-3-small", "api_key": "sim-test-key"}`
}

// writeArticle writes a Markdown article with front matter.
func writeArticle(t testing.TB, dir, number, title, keywords, body string) string {
	t.Helper()
	p := filepath.Join(dir, number+".md")
	text := "---\narticlepublicnumber: " + number + "\ntitle: " + title + "\nkeywords: " + keywords + "\n---\n" + body + "\n"
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func numbers(hits []grounding.Hit) []string {
	var out []string
	for _, h := range hits {
		out = append(out, h.Number+"#"+h.ChunkID)
	}
	return out
}
