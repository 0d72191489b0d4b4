package integration

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/groundgate/groundgate/analytics/dvfake"
)

// The console on a gateway whose audit sink is Dataverse with analytics
// on: an answer's row reaches the (fake) Dataverse table, the usage page
// and the audit log read it back through the Web API, and feedback from
// the principal who got the answer is written into that row.
func TestConsoleOnDataverseSink(t *testing.T) {
	dir := t.TempDir()
	var cols []string
	for _, c := range strings.Fields(`name time principal team policy policyversion feature model upstream error status
		prompttokens completiontokens cost latencyms records articles deniedrecords filteractions details
		day responseid latencybucket cachehit refused failed filtercount
		feedbackrating feedbackscore feedbackcomment feedbackby feedbackon`) {
		cols = append(cols, "gg_"+c)
	}
	f := dvfake.New(t, "gg_audits", "gg_auditid", cols)
	cf := consoleCaddyfile(dir)
	sqlite := "sqlite " + dir + "/audit.db"
	if !strings.Contains(cf, sqlite) {
		t.Fatal("the console Caddyfile has no SQLite sink to replace")
	}
	load(t, strings.Replace(cf, sqlite, `dataverse `+f.URL+` {
		entity_set gg_audits
		client_id `+dvfake.ClientID+`
		client_secret `+dvfake.Secret+`
		token_url `+f.TokenURL()+`
		analytics
	}`, 1))
	ctx := t.Context()
	answer, err := askQuestion(ctx, demoKey)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(f.Rows()) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	rows := f.Rows()
	if len(rows) != 1 || rows[0]["gg_responseid"] != answer.ID || rows[0]["gg_day"] != time.Now().UTC().Format(time.DateOnly) {
		t.Fatalf("rows in Dataverse: %v", rows)
	}

	ops := consoleClient(t, opsKey)
	st, page := getPage(t, ops, "/groundgate/console/usage?days=1")
	if st != 200 || !strings.Contains(page, `data-testid="usage-team"`) || !strings.Contains(page, `scope="row">support<`) ||
		!strings.Contains(page, `scope="row">ask_question<`) {
		t.Errorf("usage page: %d\n%s", st, page)
	}
	st, page = getPage(t, ops, "/groundgate/console/audit?id="+url.QueryEscape(answer.ID))
	if st != 200 || !strings.Contains(page, "ask-question") {
		t.Errorf("audit log by response id: %d", st)
	}

	fb := func(key string, body any) (int, string) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", gatewayURL("/groundgate/feedback"), bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := plainClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
	if st, out := fb(opsKey, map[string]any{"response_id": answer.ID, "rating": "up"}); st != 403 || !strings.Contains(out, `"code":"not_your_answer"`) {
		t.Errorf("someone else's answer: %d %s", st, out)
	}
	if st, out := fb(demoKey, map[string]any{"response_id": answer.ID, "rating": "down", "comment": "Wrong model."}); st != 201 {
		t.Fatalf("feedback: %d %s", st, out)
	}
	if r := f.Rows()[0]; r["gg_feedbackrating"] != float64(-1) || r["gg_feedbackcomment"] != "Wrong model." {
		t.Errorf("row after feedback: %v", r)
	}
	if st, page = getPage(t, ops, "/groundgate/console/feedback?days=1"); st != 200 || !strings.Contains(page, "ask_question") {
		t.Errorf("feedback page: %d", st)
	}
}
