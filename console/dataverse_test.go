package console

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/groundgate/groundgate/analytics"
	"github.com/groundgate/groundgate/analytics/dvfake"
	"github.com/groundgate/groundgate/entra"
	"github.com/groundgate/groundgate/plugins/post/audit"
	"github.com/groundgate/groundgate/policies"
	"github.com/groundgate/groundgate/post"
	"github.com/groundgate/groundgate/toggles"
)

// The console on the Dataverse backend: interactions written by the
// Dataverse audit sink show on the usage page, the audit log and the
// story, and feedback is stored in the interaction's row for its owner
// only.
func TestConsoleOnDataverse(t *testing.T) {
	var cols []string
	for _, c := range strings.Fields(`name time principal team policy policyversion feature model upstream error status
		prompttokens completiontokens cost latencyms records articles deniedrecords filteractions details
		day responseid latencybucket cachehit refused failed filtercount
		feedbackrating feedbackscore feedbackcomment feedbackby feedbackon`) {
		cols = append(cols, "gg_"+c)
	}
	f := dvfake.New(t, "gg_audits", "gg_auditid", cols)
	now := time.Now().UTC()
	ins := []*post.Interaction{
		{RequestID: "req-dv-1", ResponseID: "chatcmpl-dv-1", Time: now.Add(-time.Hour), Principal: "sup", Team: "support", Feature: "ask_question",
			Model: "gpt-4o", Status: 200, PromptTokens: 1200, CompletionTokens: 300, Cost: 1.25, LatencyMS: 800},
		{RequestID: "req-dv-2", ResponseID: "chatcmpl-dv-2", Time: now.Add(-48 * time.Hour), Principal: "bil", Team: "billing", Feature: "draft_email",
			Model: "gpt-4o-mini", Status: 403, Cost: 0, LatencyMS: 3},
		{RequestID: "req-dv-3", ResponseID: "chatcmpl-dv-3", Time: now.Add(-2 * time.Hour), Principal: "sup", Team: "support", Feature: "ask_question",
			Model: "gpt-4o", Status: 200, PromptTokens: 800, CompletionTokens: 200, Cost: 2.5, LatencyMS: 1200, CacheHit: true},
	}
	cctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	sink := &audit.Audit{Dataverse: &audit.Dataverse{URL: f.URL, EntitySet: "gg_audits", ClientID: dvfake.ClientID,
		ClientSecret: dvfake.Secret, TokenURL: f.TokenURL(), Analytics: true}}
	if err := sink.Provision(cctx); err != nil {
		t.Fatal(err)
	}
	for _, in := range ins {
		sink.Record(in)
	}
	if err := sink.Cleanup(); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	dv, err := analytics.OpenDataverse(analytics.DataverseOptions{URL: f.URL, EntitySet: "gg_audits", Client: client,
		Token: entra.New(f.TokenURL(), dvfake.ClientID, dvfake.Secret, f.URL+"/.default", client)})
	if err != nil {
		t.Fatal(err)
	}
	set, err := policies.Parse(map[string][]byte{"p/def.yaml": []byte("name: general\ndefault: true\n")})
	if err != nil {
		t.Fatal(err)
	}
	tv := toggles.NewView(context.Background(), new(toggles.Memory), time.Hour, nil)
	c, err := New(fakeGateway{set}, tv, func() (analytics.Backend, error) { return dv, nil }, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{c: c, srv: httptest.NewServer(c)}
	defer h.srv.Close()
	ops := h.client(t, "ops-key")

	st, body := get(t, ops, h.srv.URL+Prefix+"usage?days=7")
	if st != 200 {
		t.Fatalf("usage: %d\n%s", st, body)
	}
	for _, want := range []string{`data-testid="total-cost">$3.75<`, `data-testid="usage-team"`, `scope="row">support<`, `scope="row">billing<`, `scope="row">gpt-4o-mini<`, `scope="row">draft_email<`} {
		if !strings.Contains(body, want) {
			t.Errorf("usage page lacks %q", want)
		}
	}
	st, body = get(t, ops, h.srv.URL+Prefix+"usage?days=1")
	if st != 200 || strings.Contains(body, `scope="row">billing<`) || !strings.Contains(body, `data-testid="total-cost">$3.75<`) {
		t.Errorf("usage of the last day: %d\n%s", st, body)
	}
	st, body = get(t, ops, h.srv.URL+Prefix+"audit?days=7&team=support")
	if st != 200 || !strings.Contains(body, "req-dv-1") || !strings.Contains(body, "req-dv-3") || strings.Contains(body, "req-dv-2") {
		t.Errorf("audit log: %d\n%s", st, body)
	}
	st, body = get(t, ops, h.srv.URL+Prefix+"audit/chatcmpl-dv-1")
	if st != 200 || !strings.Contains(body, "req-dv-1") {
		t.Errorf("story: %d", st)
	}

	feedback := func(key, body string) (int, string) {
		req, _ := http.NewRequest("POST", h.srv.URL+FeedbackPath, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := h.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, body := feedback("bil-key", `{"response_id":"chatcmpl-dv-1","rating":"down"}`); st != 403 || !strings.Contains(body, "not_your_answer") {
		t.Errorf("someone else's answer: %d %s", st, body)
	}
	if st, body := feedback("sup-key", `{"response_id":"chatcmpl-dv-1","rating":"up","comment":"spot on"}`); st != 201 || !strings.Contains(body, `"request_id":"req-dv-1"`) {
		t.Errorf("owner's feedback: %d %s", st, body)
	}
	var rated int
	for _, r := range f.Rows() {
		if r["gg_feedbackrating"] != nil {
			rated++
			if r["gg_name"] != "req-dv-1" || r["gg_feedbackrating"] != float64(1) || r["gg_feedbackcomment"] != "spot on" || r["gg_feedbackby"] != "sup" {
				t.Errorf("rated row %v", r)
			}
		}
	}
	if rated != 1 {
		t.Errorf("%d rated rows", rated)
	}
	st, body = get(t, ops, h.srv.URL+Prefix+"feedback?days=7")
	if st != 200 || !strings.Contains(body, "ask_question") {
		t.Errorf("feedback page: %d\n%s", st, body)
	}
	st, body = get(t, ops, h.srv.URL+Prefix+"audit/req-dv-1")
	if st != 200 || !strings.Contains(body, "spot on") {
		t.Errorf("story with feedback: %d", st)
	}
}
