package simulator

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/tidwall/gjson"
)

const testKey = "test-key"

// newSim provisions and validates a simulator for a test. The default
// configuration has a chat and an embeddings deployment and one key.
func newSim(t testing.TB, mutate func(*Simulator)) *Simulator {
	t.Helper()
	seed := uint64(42)
	s := &Simulator{
		Deployments: []Deployment{
			{Name: "gpt-4o", Model: "gpt-4o-2024-08-06"},
			{Name: "gpt-35-turbo"},
			{Name: "text-embedding-3-small"},
		},
		APIKeys: []string{testKey},
		Seed:    &seed,
	}
	if mutate != nil {
		mutate(s)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
	t.Cleanup(cancel)
	if err := s.Provision(ctx); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	return s
}

// call runs one request through ServeHTTP with the test key.
func call(t testing.TB, s *Simulator, method, target, body string) *httptest.ResponseRecorder {
	t.Helper()
	return callWith(t, s, method, target, body, map[string]string{"api-key": testKey})
}

func callWith(t testing.TB, s *Simulator, method, target, body string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequestWithContext(t.Context(), method, target, rd)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	if err := s.ServeHTTP(w, req, nil); err != nil {
		t.Fatalf("ServeHTTP returned %v", err)
	}
	return w
}

const (
	chatPath  = "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
	embedPath = "/openai/deployments/text-embedding-3-small/embeddings?api-version=2024-10-21"
	simpleReq = `{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello there"}]}`

	want401 = `{"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}}`
	want404 = `{"error":{"code":"404","message":"Resource not found"}}`
	wantDNF = `{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again."}}`
)

func expectBody(t *testing.T, w *httptest.ResponseRecorder, status int, body string) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status = %d, want %d (body %s)", w.Code, status, w.Body)
	}
	if got := w.Body.String(); got != body {
		t.Fatalf("body =\n%s\nwant\n%s", got, body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q", ct)
	}
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestRoutes(t *testing.T) {
	s := newSim(t, nil)
	embed := `{"input":"hello","model":"text-embedding-3-small"}`
	chatV1 := `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`
	for _, tc := range []struct {
		method, path, body, check string
	}{
		{"POST", chatPath, simpleReq, "chat.completion"},
		{"POST", "/openai/deployments/gpt-35-turbo/chat/completions?api-version=2024-06-01", simpleReq, "chat.completion"},
		{"POST", "/openai/v1/chat/completions", chatV1, "chat.completion"},
		{"POST", "/v1/chat/completions", chatV1, "chat.completion"},
		{"POST", embedPath, embed, "list"},
		{"POST", "/openai/v1/embeddings", embed, "list"},
		{"POST", "/v1/embeddings", embed, "list"},
		{"GET", "/openai/v1/models", "", "list"},
		{"GET", "/v1/models", "", "list"},
		{"GET", "/openai/models?api-version=2024-10-21", "", "list"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			w := call(t, s, tc.method, tc.path, tc.body)
			if w.Code != 200 {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			if got := gjson.Get(w.Body.String(), "object").Str; got != tc.check {
				t.Fatalf("object = %q, want %q: %s", got, tc.check, w.Body)
			}
			h := w.Header()
			if !uuidRE.MatchString(h.Get("apim-request-id")) || !uuidRE.MatchString(h.Get("x-request-id")) {
				t.Fatalf("request ids: %q %q", h.Get("apim-request-id"), h.Get("x-request-id"))
			}
			if h.Get("x-ms-region") != "Simulated" {
				t.Fatalf("x-ms-region = %q", h.Get("x-ms-region"))
			}
			if tc.method == "POST" && (h.Get("x-ratelimit-remaining-requests") == "" || h.Get("x-ratelimit-remaining-tokens") == "") {
				t.Fatalf("missing x-ratelimit-remaining-* headers: %v", h)
			}
		})
	}
}

func TestModelsList(t *testing.T) {
	s := newSim(t, nil)
	w := call(t, s, "GET", "/v1/models", "")
	want := `{"object":"list","data":[` +
		`{"id":"gpt-4o","object":"model","created":1715558400,"owned_by":"system"},` +
		`{"id":"gpt-35-turbo","object":"model","created":1715558400,"owned_by":"system"},` +
		`{"id":"text-embedding-3-small","object":"model","created":1715558400,"owned_by":"system"}]}`
	expectBody(t, w, 200, want)
}

func TestNotFound(t *testing.T) {
	s := newSim(t, nil)
	for _, tc := range []struct{ method, path string }{
		{"POST", "/openai/deployments/gpt-4o/chat/completions"}, // api-version missing
		{"POST", "/openai/deployments/gpt-4o/embeddings"},
		{"POST", "/openai/deployments/gpt-4o/completions?api-version=2024-10-21"},
		{"POST", "/openai/deployments//chat/completions?api-version=2024-10-21"},
		{"GET", chatPath},
		{"POST", "/openai/v1/models"},
		{"GET", "/openai/models"},
		{"GET", "/"},
		{"POST", "/v2/chat/completions"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			expectBody(t, call(t, s, tc.method, tc.path, simpleReq), 404, want404)
		})
	}
}

func TestAuth(t *testing.T) {
	t.Setenv("SIM_TEST_KEY", "from-env")
	s := newSim(t, func(s *Simulator) { s.APIKeys = []string{testKey, "{env.SIM_TEST_KEY}"} })
	for _, tc := range []struct {
		name string
		hdr  map[string]string
		ok   bool
	}{
		{"none", nil, false},
		{"api-key", map[string]string{"api-key": testKey}, true},
		{"env placeholder", map[string]string{"api-key": "from-env"}, true},
		{"literal placeholder", map[string]string{"api-key": "{env.SIM_TEST_KEY}"}, false},
		{"bearer", map[string]string{"Authorization": "Bearer " + testKey}, true},
		{"bearer lower", map[string]string{"Authorization": "bearer " + testKey}, true},
		{"wrong key", map[string]string{"api-key": "nope"}, false},
		{"prefix of key", map[string]string{"api-key": "test"}, false},
		{"wrong bearer", map[string]string{"Authorization": "Bearer nope"}, false},
		{"basic", map[string]string{"Authorization": "Basic " + testKey}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{chatPath, "/v1/chat/completions"} {
				body := `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`
				w := callWith(t, s, "POST", path, body, tc.hdr)
				if tc.ok {
					if w.Code != 200 {
						t.Fatalf("%s: status %d: %s", path, w.Code, w.Body)
					}
				} else {
					expectBody(t, w, 401, want401)
					if w.Header().Get("apim-request-id") == "" {
						t.Fatal("401 without apim-request-id")
					}
				}
			}
		})
	}

	t.Run("any key when none configured", func(t *testing.T) {
		open := newSim(t, func(s *Simulator) { s.APIKeys = nil })
		if w := callWith(t, open, "POST", chatPath, simpleReq, map[string]string{"api-key": "whatever"}); w.Code != 200 {
			t.Fatalf("status %d", w.Code)
		}
		expectBody(t, callWith(t, open, "POST", chatPath, simpleReq, nil), 401, want401)
		expectBody(t, callWith(t, open, "GET", "/v1/models", "", map[string]string{"Authorization": "Bearer "}), 401, want401)
	})

	t.Run("empty placeholder fails provisioning", func(t *testing.T) {
		s := &Simulator{APIKeys: []string{"{env.SIM_TEST_UNSET_KEY}"}}
		ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
		defer cancel()
		if err := s.Provision(ctx); err == nil || !strings.Contains(err.Error(), "api_keys[0]") {
			t.Fatalf("Provision error = %v", err)
		}
	})
}

func TestDeploymentNotFound(t *testing.T) {
	s := newSim(t, nil)
	expectBody(t, call(t, s, "POST", "/openai/deployments/nope/chat/completions?api-version=2024-10-21", simpleReq), 404, wantDNF)
	expectBody(t, call(t, s, "POST", "/openai/deployments/nope/embeddings?api-version=2024-10-21", `{"input":"x"}`), 404, wantDNF)
	expectBody(t, call(t, s, "POST", "/v1/chat/completions", `{"model":"nope","messages":[{"role":"user","content":"x"}]}`), 404, wantDNF)
	expectBody(t, call(t, s, "POST", "/openai/v1/embeddings", `{"model":"nope","input":"x"}`), 404, wantDNF)

	// Without configured deployments any name is accepted, model = name.
	open := newSim(t, func(s *Simulator) { s.Deployments = nil })
	w := call(t, open, "POST", "/openai/deployments/my-gpt/chat/completions?api-version=2024-10-21", simpleReq)
	if w.Code != 200 || gjson.Get(w.Body.String(), "model").Str != "my-gpt" {
		t.Fatalf("open mode: %d %s", w.Code, w.Body)
	}
	if w := call(t, open, "GET", "/v1/models", ""); w.Body.String() != `{"object":"list","data":[]}` {
		t.Fatalf("open models = %s", w.Body)
	}
}

func TestOperationNotSupported(t *testing.T) {
	s := newSim(t, nil)
	w := call(t, s, "POST", "/openai/deployments/gpt-4o/embeddings?api-version=2024-10-21", `{"input":"x"}`)
	if w.Code != 400 || gjson.Get(w.Body.String(), "error.code").Str != "OperationNotSupported" ||
		!strings.Contains(w.Body.String(), "The embeddings operation does not work with the specified model, gpt-4o-2024-08-06.") {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	w = call(t, s, "POST", "/openai/deployments/text-embedding-3-small/chat/completions?api-version=2024-10-21", simpleReq)
	if w.Code != 400 || gjson.Get(w.Body.String(), "error.code").Str != "OperationNotSupported" {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
}

func TestLatencyAndCancellation(t *testing.T) {
	s := newSim(t, func(s *Simulator) { s.Latency = caddy.Duration(150 * time.Millisecond) })
	start := time.Now()
	if w := call(t, s, "POST", chatPath, simpleReq); w.Code != 200 {
		t.Fatal(w.Code)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("answered after %v, want >= 150ms", d)
	}

	// delay_ms adds to latency
	start = time.Now()
	call(t, s, "POST", chatPath, `{"messages":[{"role":"user","content":"[[sim:delay_ms=100]] hi"}]}`)
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("answered after %v, want >= 250ms", d)
	}

	// A cancelled client stops the wait promptly and nothing is written.
	slow := newSim(t, func(s *Simulator) { s.Latency = caddy.Duration(time.Minute) })
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, "POST", chatPath, strings.NewReader(simpleReq))
	req.Header.Set("api-key", testKey)
	w := httptest.NewRecorder()
	start = time.Now()
	if err := slow.ServeHTTP(w, req, nil); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("cancelled request took %v", d)
	}
	if w.Body.Len() != 0 {
		t.Fatalf("wrote %q after cancellation", w.Body)
	}
}

func TestValidate(t *testing.T) {
	for name, s := range map[string]*Simulator{
		"error_rate":      {ErrorRate: 1.5},
		"drop_rate":       {DropRate: -0.1},
		"tps":             {TokensPerSecond: -1},
		"latency":         {Latency: -1},
		"tpm":             {TokensPerMinute: -1},
		"filter_category": {FilterCategory: "jailbreak"},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
			defer cancel()
			if err := s.Provision(ctx); err != nil {
				t.Fatal(err)
			}
			if err := s.Validate(); err == nil {
				t.Fatal("Validate accepted an invalid config")
			}
		})
	}
	dup := &Simulator{Deployments: []Deployment{{Name: "a"}, {Name: "a"}}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
	defer cancel()
	if err := dup.Provision(ctx); err == nil {
		t.Fatal("duplicate deployment accepted")
	}
}

func TestSeedReproducible(t *testing.T) {
	ids := func() []string {
		s := newSim(t, nil)
		var out []string
		for range 3 {
			w := call(t, s, "POST", chatPath, simpleReq)
			out = append(out, gjson.Get(w.Body.String(), "id").Str, w.Header().Get("apim-request-id"))
		}
		return out
	}
	a, b := ids(), ids()
	if strings.Join(a, ",") != strings.Join(b, ",") {
		t.Fatalf("same seed, different ids:\n%v\n%v", a, b)
	}
	if a[0] == a[2] {
		t.Fatal("two requests got the same id")
	}
}

// Echoed client request id, as Azure does.
func TestClientRequestID(t *testing.T) {
	s := newSim(t, nil)
	w := callWith(t, s, "POST", chatPath, simpleReq, map[string]string{"api-key": testKey, "x-ms-client-request-id": "abc-123"})
	if got := w.Header().Get("x-ms-client-request-id"); got != "abc-123" {
		t.Fatalf("x-ms-client-request-id = %q", got)
	}
}

var _ http.ResponseWriter = (*httptest.ResponseRecorder)(nil)
