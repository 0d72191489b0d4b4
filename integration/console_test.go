package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// Keys of the console tests: ops is an operator (team platform), billing
// a second team; demo (team support) is the SDK tests' key.
const (
	opsKey     = "ops-key"
	billingKey = "billing-key"
)

// consoleCaddyfile is the demo gateway with the example policies, a
// SQLite audit sink in dir and an operator key.
func consoleCaddyfile(dir string) string {
	pools := ""
	for _, name := range []string{"gpt-4o", "gpt-4o-mini"} {
		pools += fmt.Sprintf("pool %s {\n azure {\n endpoint http://127.0.0.1:%d\n deployment gpt-4o\n api_key {env.GG_SIM_KEY}\n }\n }\n", name, simPort)
	}
	return caddyfile(pools+`
key ops {
	sha256 2c69bc9111c27110a9b9a7974ba3f8ac0c053c16b23a0738115ee829fbc4d57b
	team platform
}
key billing-agent {
	sha256 1360cf85a9cad115d1274ab6188bd172ec443505e7be006c723e74bcacd284a0
	team billing
}
introspect ops
audit {
	sqlite `+dir+`/audit.db
}
post links records {
	format incident "[{number}](https://crm.example/{id})"
}
post citations citations
post disclaimer append {
	text "Check before sending."
}
filter pii pii {
	entities credit_card iban ssn
	input redact
	context redact
}
filter prompt_injection prompt_injection {
	input block
	context block
}
context crm records
context knowledge local_index {
	dir `+dir+`/index
}
policies ../policies/examples`, "")
}

// consoleClient signs in to the console with key and returns a client
// holding the session cookie.
func consoleClient(t *testing.T, key string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	resp, err := c.PostForm(gatewayURL("/groundgate/console/login"), url.Values{"key": {key}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "Features and teams") {
		t.Fatalf("sign in: %d %s", resp.StatusCode, body)
	}
	return c
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func getPage(t *testing.T, c *http.Client, path string) (int, string) {
	t.Helper()
	resp, err := c.Get(gatewayURL(path))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func postForm(t *testing.T, c *http.Client, path string, form url.Values) (int, string) {
	t.Helper()
	_, page := getPage(t, c, "/groundgate/console/features")
	m := csrfRe.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no csrf token in the page:\n%s", page)
	}
	form.Set("csrf", m[1])
	resp, err := c.PostForm(gatewayURL(path), form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func askQuestion(ctx context.Context, key string) (*openai.ChatCompletion, error) {
	c := openaiClient(option.WithAPIKey(key), option.WithHeader("x-groundgate-feature", "ask_question"))
	return c.Chat.Completions.New(ctx, chatParams("How do I reset a phone?"))
}

// TestConsoleTogglesAndFeedback drives the console over HTTP: sign-in,
// a toggle that refuses the next request at once, its audit log and
// YAML export, validation and conflict errors, and agent feedback.
func TestConsoleTogglesAndFeedback(t *testing.T) {
	dir := t.TempDir()
	load(t, consoleCaddyfile(dir))
	ctx := t.Context()

	// Only operators get in.
	if resp, err := plainClient.PostForm(gatewayURL("/groundgate/console/login"), url.Values{"key": {demoKey}}); err != nil || resp.StatusCode != 401 {
		t.Fatalf("non-operator sign-in: %v %v", resp, err)
	}
	req, _ := http.NewRequest("GET", gatewayURL("/groundgate/console/features"), nil)
	req.Header.Set("Authorization", "Bearer "+demoKey)
	if resp, err := plainClient.Do(req); err != nil || resp.StatusCode != 403 {
		t.Fatalf("non-operator key: %v %v", resp, err)
	}
	ops := consoleClient(t, opsKey)

	// support may ask questions (the policy file enables it)...
	if _, err := askQuestion(ctx, demoKey); err != nil {
		t.Fatalf("before the toggle: %v", err)
	}
	// ...until an operator switches it off for support.
	status, page := postForm(t, ops, "/groundgate/console/features", url.Values{
		"feature": {"ask_question"}, "team": {"support"}, "state": {"off"}, "before": {"inherit"}})
	if status != 200 || !strings.Contains(page, "ask_question for team support: switched off") {
		t.Fatalf("toggle: %d\n%s", status, page)
	}
	_, err := askQuestion(ctx, demoKey)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 403 || !strings.Contains(apiErr.Message, "switched off for team \"support\" in the admin console") {
		t.Fatalf("after the toggle: %v", err)
	}
	// Other teams are untouched.
	if _, err := askQuestion(ctx, billingKey); err != nil {
		t.Fatalf("billing after the toggle: %v", err)
	}

	// The change is logged and exported as the YAML to commit.
	_, page = getPage(t, ops, "/groundgate/console/features")
	if !strings.Contains(page, "<td>ops</td><td>ask_question</td><td>support</td><td>inherit</td><td>off</td>") {
		t.Errorf("change log row missing:\n%s", page)
	}
	_, export := getPage(t, ops, "/groundgate/console/features/export")
	if !strings.Contains(export, "ask_question.yaml (policy ask-question") || !strings.Contains(export, "enabled: [escalations, billing]") {
		t.Errorf("export:\n%s", export)
	}

	// A stale form (someone changed the cell meanwhile) is a conflict;
	// an unknown feature a validation error; neither changes anything.
	status, page = postForm(t, ops, "/groundgate/console/features", url.Values{
		"feature": {"ask_question"}, "team": {"support"}, "state": {"on"}, "before": {"inherit"}})
	if status != 409 || !strings.Contains(page, "you saw inherit, it is now off") {
		t.Errorf("conflict: %d", status)
	}
	status, page = postForm(t, ops, "/groundgate/console/features", url.Values{
		"feature": {"nope"}, "team": {"support"}, "state": {"on"}})
	if status != 400 || !strings.Contains(page, "no policy defines feature") {
		t.Errorf("validation: %d", status)
	}
	if _, err := askQuestion(ctx, demoKey); err == nil {
		t.Fatal("a refused change was applied")
	}
	// A form without its CSRF token is refused.
	resp, err := ops.PostForm(gatewayURL("/groundgate/console/features"), url.Values{"feature": {"ask_question"}, "team": {"support"}, "state": {"on"}})
	if err != nil || resp.StatusCode != 403 {
		t.Fatalf("no csrf: %v %v", resp, err)
	}
	resp.Body.Close()
	// Back to the file's say.
	if status, _ = postForm(t, ops, "/groundgate/console/features", url.Values{
		"feature": {"ask_question"}, "team": {"support"}, "state": {"inherit"}, "before": {"off"}}); status != 200 {
		t.Fatalf("clear: %d", status)
	}
	answer, err := askQuestion(ctx, demoKey)
	if err != nil {
		t.Fatalf("after clearing: %v", err)
	}

	// Feedback: only the principal who got the answer may rate it.
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
	if st, out := fb(demoKey, map[string]any{"response_id": "chatcmpl-unknown", "rating": "up"}); st != 404 || !strings.Contains(out, `"code":"response_not_found"`) {
		t.Errorf("unknown answer: %d %s", st, out)
	}
	if st, out := fb(demoKey, map[string]any{"response_id": answer.ID, "rating": "sideways"}); st != 400 || !strings.Contains(out, `"param":"rating"`) {
		t.Errorf("bad rating: %d %s", st, out)
	}
	if st, out := fb(demoKey, map[string]any{"response_id": answer.ID, "rating": "down", "score": 0.2, "comment": "The reset steps are for another model."}); st != 201 || !strings.Contains(out, `"object":"feedback"`) {
		t.Fatalf("feedback: %d %s", st, out)
	}

	// The audit log finds the answer by its response id, and its story
	// shows the feedback; the feedback page sums it by feature and team.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, page = getPage(t, ops, "/groundgate/console/audit?id="+url.QueryEscape(answer.ID))
		if strings.Contains(page, "ask-question") || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(page, "ask-question") {
		t.Fatalf("audit log by response id:\n%s", page)
	}
	_, page = getPage(t, ops, "/groundgate/console/audit/"+url.PathEscape(answer.ID))
	if !strings.Contains(page, "The reset steps are for another model.") || !strings.Contains(page, "Only demo, who got this answer, may rate it.") {
		t.Errorf("story:\n%s", page)
	}
	_, page = getPage(t, ops, "/groundgate/console/feedback")
	if !regexp.MustCompile(`<th scope="row">ask_question</th><td>support</td><td>1</td><td>0</td><td>1</td>`).MatchString(page) {
		t.Errorf("feedback summary:\n%s", page)
	}
	// The refused request counts as a refusal on the usage page.
	_, page = getPage(t, ops, "/groundgate/console/usage?team=support")
	if !strings.Contains(page, "Refusals") || !regexp.MustCompile(`<span class="k">Refusals</span><span class="v">[1-9]`).MatchString(page) {
		t.Errorf("usage:\n%s", page)
	}
}
