package console

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/groundgate/groundgate/analytics"
	"github.com/groundgate/groundgate/analytics/auditgen"
	"github.com/groundgate/groundgate/policies"
	"github.com/groundgate/groundgate/post"
	"github.com/groundgate/groundgate/toggles"
	"github.com/groundgate/groundgate/wire"
)

// fakeGateway is a gateway with three keys (ops is the operator) and two
// feature policies.
type fakeGateway struct{ set *policies.Set }

var keys = map[string]Principal{"ops-key": {"ops", "platform"}, "sup-key": {"sup", "support"}, "bil-key": {"bil", "billing"}}

func (f fakeGateway) Authenticate(r *http.Request) (Principal, error) {
	k := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if p, ok := keys[k]; ok {
		return p, nil
	}
	return Principal{}, &wire.Error{Status: 401, Type: wire.TypeInvalidRequest, Code: "invalid_api_key", Message: "Incorrect API key provided."}
}
func (fakeGateway) Principals() []Principal {
	return []Principal{keys["bil-key"], keys["ops-key"], keys["sup-key"]}
}
func (fakeGateway) SessionKey(name string) ([]byte, bool) {
	return []byte("secret-of-" + name), name == "ops"
}
func (f fakeGateway) Policies() *policies.Set { return f.set }
func (fakeGateway) Pools() []Pool {
	return []Pool{{Name: "main", Upstreams: []Upstream{{Name: "east", Kind: "azure", Deployment: "gpt-4o", URL: "https://east.example/", Priority: 1, Weight: 1, Breaker: "open", CoolingFor: 3 * time.Second}}}}
}
func (fakeGateway) Budgets(context.Context) []Budget {
	return []Budget{{Policy: "ask", Per: "team", Subject: "support", Window: "day", Unit: "tokens", Max: 1000, Remaining: 250, Reset: time.Hour}}
}
func (fakeGateway) Explain(_ context.Context, operator, principal, path, feature string, body []byte) (int, []byte) {
	return 200, []byte(`{"decision":{"denied":false,"policy":"ask","feature":"ask_question","trace":["#1 ask: matches; selected"]},"pool":"main",` +
		`"upstream_requests":[{"upstream":"east","url":"https://east.example/","breaker":"closed","body":{"messages":[{"role":"system","content":"grounded for ` + principal + `"}]}}]}`)
}

type harness struct {
	c   *Console
	srv *httptest.Server
	db  *analytics.DB
}

func newHarness(t *testing.T, withDB bool) *harness {
	t.Helper()
	set, err := policies.Parse(map[string][]byte{
		"p/ask.yaml":   []byte("name: ask\nfeature: ask_question\nteams:\n  enabled: [support]\nmeta_prompt:\n  mode: prepend\n  template: Be brief.\n"),
		"p/draft.yaml": []byte("name: draft\nfeature: draft_email\n"),
		"p/def.yaml":   []byte("name: general\ndefault: true\n"),
	})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{}
	dbf := func() (analytics.Backend, error) { return nil, nil }
	if withDB {
		p := filepath.Join(t.TempDir(), "audit.db")
		if err := auditgen.Generate(context.Background(), auditgen.Options{Path: p, Rows: 2000, Days: 10, Seed: 3}); err != nil {
			t.Fatal(err)
		}
		if h.db, err = analytics.Open(context.Background(), p, ""); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.db.Close() })
		dbf = func() (analytics.Backend, error) { return h.db, nil }
	}
	tv := toggles.NewView(context.Background(), new(toggles.Memory), time.Hour, nil)
	h.c, err = New(fakeGateway{set}, tv, dbf, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	h.srv = httptest.NewServer(h.c)
	t.Cleanup(h.srv.Close)
	return h
}

func (h *harness) client(t *testing.T, key string) *http.Client {
	t.Helper()
	c := h.srv.Client()
	c.Jar = newJar()
	resp, err := c.PostForm(h.srv.URL+Prefix+"login", url.Values{"key": {key}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return c
}

func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestEveryPageRenders(t *testing.T) {
	h := newHarness(t, true)
	c := h.client(t, "ops-key")
	for _, page := range []string{"features", "features/export", "policies", "usage", "usage?days=7&team=support", "audit", "audit?outcome=refused&team=billing",
		"feedback", "pools", "budgets"} {
		st, body := get(t, c, h.srv.URL+Prefix+page)
		if st != 200 {
			t.Errorf("%s: %d\n%s", page, st, body)
		}
	}
	st, body := get(t, c, h.srv.URL+Prefix+"usage?from=2026-13-01&to=2026-01-01")
	if st != 400 || !strings.Contains(body, "2026-13-01") || !strings.Contains(body, "role=\"alert\"") {
		t.Errorf("bad date: %d", st)
	}
	st, _ = get(t, c, h.srv.URL+Prefix+"nope")
	if st != 404 {
		t.Errorf("unknown page: %d", st)
	}
}

func TestPagesWithoutAnalytics(t *testing.T) {
	h := newHarness(t, false)
	c := h.client(t, "ops-key")
	for _, page := range []string{"usage", "audit", "feedback"} {
		st, body := get(t, c, h.srv.URL+Prefix+page)
		if st != 200 || !strings.Contains(body, "SQLite sink") {
			t.Errorf("%s: %d\n%s", page, st, body)
		}
	}
}

func TestSignIn(t *testing.T) {
	h := newHarness(t, false)
	anon := h.srv.Client()
	anon.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := anon.Get(h.srv.URL + Prefix + "usage")
	if err != nil || resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "login?next=") {
		t.Fatalf("anonymous: %v %v", resp, err)
	}
	for key, want := range map[string]int{"sup-key": 401, "wrong": 401, "": 401} {
		resp, err := anon.PostForm(h.srv.URL+Prefix+"login", url.Values{"key": {key}})
		if err != nil || resp.StatusCode != want {
			t.Errorf("key %q: %v %v", key, resp.StatusCode, err)
		}
	}
	// A forged or tampered cookie is no session.
	req, _ := http.NewRequest("GET", h.srv.URL+Prefix+"features", nil)
	req.AddCookie(&http.Cookie{Name: cookieName, Value: "b3Bz.99999999999.deadbeef"})
	if resp, _ := anon.Do(req); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("forged cookie: %d", resp.StatusCode)
	}
	// A script may use an operator key directly; a non-operator key is 403.
	req, _ = http.NewRequest("GET", h.srv.URL+Prefix+"pools", nil)
	req.Header.Set("Authorization", "Bearer ops-key")
	if resp, _ := anon.Do(req); resp.StatusCode != 200 {
		t.Errorf("operator key header: %d", resp.StatusCode)
	}
	req.Header.Set("Authorization", "Bearer sup-key")
	if resp, _ := anon.Do(req); resp.StatusCode != 403 {
		t.Errorf("non-operator key header: %d", resp.StatusCode)
	}
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func TestToggleFormAndExport(t *testing.T) {
	h := newHarness(t, false)
	c := h.client(t, "ops-key")
	_, page := get(t, c, h.srv.URL+Prefix+"features")
	csrf := csrfRe.FindStringSubmatch(page)[1]
	if !strings.Contains(page, `data-testid="toggle-ask_question-billing"`) || !strings.Contains(page, `aria-pressed="false"`) {
		t.Fatalf("matrix:\n%s", page)
	}
	resp, err := c.PostForm(h.srv.URL+Prefix+"features", url.Values{"csrf": {csrf}, "feature": {"ask_question"}, "team": {"billing"}, "state": {"on"}, "before": {"inherit"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "switched on") {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	if on, set := h.c.toggles.Access("ask_question", "billing"); !on || !set {
		t.Fatal("toggle not applied")
	}
	_, export := get(t, c, h.srv.URL+Prefix+"features/export")
	if !strings.Contains(export, "enabled: [support, billing]") {
		t.Errorf("export:\n%s", export)
	}
}

func TestFeedbackAPI(t *testing.T) {
	h := newHarness(t, true)
	// An answer the audit sink has not written yet is found by the
	// recent-answers set.
	Remember(&post.Interaction{RequestID: "req_fresh", ResponseID: "chatcmpl-fresh", Principal: "sup", Team: "support", Feature: "ask_question", Status: 200})
	var written string
	h.db.SQL().QueryRow(`SELECT json_extract(record, '$.response_id') FROM audit WHERE principal = 'support-agent-1' AND status = 200 LIMIT 1`).Scan(&written)
	keys["agent-key"] = Principal{"support-agent-1", "support"}
	defer delete(keys, "agent-key")
	post := func(key, body string) (int, string) {
		req, _ := http.NewRequest("POST", h.srv.URL+FeedbackPath, strings.NewReader(body))
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := h.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	cases := []struct {
		key, body string
		status    int
		want      string
	}{
		{"", `{"response_id":"chatcmpl-fresh","rating":"up"}`, 401, "invalid_api_key"},
		{"sup-key", `{"response_id":"chatcmpl-fresh","rating":"up"}`, 201, `"request_id":"req_fresh"`},
		{"sup-key", `{"response_id":"req_fresh","score":0.75,"comment":"ok"}`, 201, `"score":0.75`},
		{"bil-key", `{"response_id":"chatcmpl-fresh","rating":"down"}`, 403, "not_your_answer"},
		{"ops-key", `{"response_id":"` + written + `","rating":"down"}`, 403, "not_your_answer"},
		{"agent-key", `{"response_id":"` + written + `","rating":"down","comment":"wrong part number"}`, 201, `"object":"feedback"`},
		{"sup-key", `{"response_id":"chatcmpl-none","rating":"up"}`, 404, "response_not_found"},
		{"sup-key", `{"response_id":"chatcmpl-fresh"}`, 400, "missing_required_parameter"},
		{"sup-key", `{"response_id":"chatcmpl-fresh","score":2}`, 400, `"param":"score"`},
		{"sup-key", `{"response_id":"chatcmpl-fresh","rating":"up","extra":1}`, 400, "unknown_parameter"},
		{"sup-key", `{"rating":"up"}`, 400, `"param":"response_id"`},
		{"sup-key", `[1]`, 400, "invalid_json"},
		{"sup-key", `{"response_id":"chatcmpl-fresh","rating":"up","comment":"` + strings.Repeat("x", 2001) + `"}`, 400, `"param":"comment"`},
	}
	for i, tc := range cases {
		st, body := post(tc.key, tc.body)
		if st != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("case %d: %d %s", i, st, body)
		}
		if st >= 400 && !strings.Contains(body, `"error":{"message":`) {
			t.Errorf("case %d: not an OpenAI-shaped error: %s", i, body)
		}
	}
	sum, err := h.db.FeedbackSummary(context.Background(), analytics.LastDays(2, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, s := range sum {
		n += s.Count
	}
	if n != 3 {
		t.Errorf("%d ratings stored, want 3: %+v", n, sum)
	}
	req, _ := http.NewRequest("GET", h.srv.URL+FeedbackPath, nil)
	if resp, _ := h.srv.Client().Do(req); resp.StatusCode != 405 {
		t.Errorf("GET feedback: %d", resp.StatusCode)
	}
	if !errors.Is(nil, nil) {
		t.Fatal()
	}
}
