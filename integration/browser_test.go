package integration

import (
	"context"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/groundgate/groundgate/analytics"
	"github.com/groundgate/groundgate/analytics/auditgen"
)

// browser starts headless Chromium (Debian's chromium package; the test
// script installs it) with a fresh profile, or skips the test when it is
// not installed.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("GROUNDGATE_REQUIRE_CHROMIUM") == "1" {
			t.Fatal("chromium is not installed, though scripts/test.sh installed it")
		}
		t.Skip("chromium is not installed: scripts/test.sh installs it (apt-get install chromium); skipping the browser tests")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1360, 900),
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// shot saves a full-page screenshot as GG_SCREENSHOTS/name.png when that
// variable names a directory (the README's pictures are made so).
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("GG_SCREENSHOTS")
	if dir == "" {
		return
	}
	capture := chromedp.FullScreenshot(100)
	if name == "policies" { // very long: its top (the playground) only
		capture = chromedp.CaptureScreenshot()
	}
	png, err := chromedp.Run(ctx, capture)
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// step runs browser actions with a time limit.
func step(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		loc, _ := chromedp.Run(dctx, chromedp.Location())
		body, _ := chromedp.Run(dctx, chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 3000) : ""`))
		t.Fatalf("%s: %v\npage %s:\n%s", what, err, loc, body)
	}
}

// submit runs the actions that submit a form and waits for the next page
// to load (a mark set on the old page is gone). An action cut short by
// the navigation it caused is fine.
func submit(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := chromedp.Run(sctx, chromedp.Evaluate[bool](`window.__ggOld = true`)); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if err := chromedp.Do(sctx, actions...); err != nil && !strings.Contains(err.Error(), "navigated or closed") {
		t.Fatalf("%s: %v", what, err)
	}
	for {
		done, err := chromedp.Run(sctx, chromedp.Evaluate[bool](`!window.__ggOld && document.readyState === "complete"`))
		if err == nil && done {
			return
		}
		if sctx.Err() != nil {
			t.Fatalf("%s: waiting for the next page: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	s, err := chromedp.Run(sctx, chromedp.Text(sel))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(sctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return v
}

// TestConsoleInBrowser drives the console in headless Chromium, with the
// keyboard where a user would: sign in, switch a feature off for a team
// and see that team's request refused, read the cost page, filter the
// audit log, and rate an answer.
func TestConsoleInBrowser(t *testing.T) {
	ctx := browser(t)
	dir := t.TempDir()
	// Ninety days of history to read, as the audit sink writes it.
	if err := auditgen.Generate(context.Background(), auditgen.Options{Path: dir + "/audit.db", Rows: 30000, Days: 90, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	// Build the analytics rollups now, as cmd/auditgen does, rather than
	// in the gateway's background on first use.
	db, err := analytics.Open(context.Background(), dir+"/audit.db", "")
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	load(t, consoleCaddyfile(dir))
	base := gatewayURL("/groundgate/console/")

	// Sign in: the console sends the browser to its sign-in page.
	step(t, ctx, "sign-in page", chromedp.Navigate(base+"usage"), chromedp.WaitVisible("#key"))
	shot(t, ctx, "login")
	step(t, ctx, "sign in", chromedp.SendKeys("#key", opsKey+"\r"), chromedp.WaitVisible(`nav[aria-label="Console"]`))
	// The gateway opens the audit database for analytics in the
	// background; the page says so until it is ready.
	for deadline := time.Now().Add(60 * time.Second); !eval[bool](t, ctx, `!!document.querySelector('[data-testid="total-cost"]')`); {
		if time.Now().After(deadline) {
			t.Fatalf("the cost page never showed figures: %s", text(t, ctx, "main"))
		}
		time.Sleep(500 * time.Millisecond)
		step(t, ctx, "reload", chromedp.Reload(), chromedp.WaitVisible("h1"))
	}

	// The cost page (we asked for it before signing in).
	cost := text(t, ctx, `[data-testid="total-cost"]`)
	if !strings.HasPrefix(cost, "$") || cost == "$0.00" {
		t.Errorf("total cost %q", cost)
	}
	teams := eval[int](t, ctx, `document.querySelectorAll('[data-testid="usage-team"] tbody tr').length`)
	days := eval[int](t, ctx, `document.querySelectorAll('[data-testid="usage-day"] tbody tr').length`)
	if teams < 5 || days < 28 {
		t.Errorf("cost page: %d teams, %d days", teams, days)
	}
	shot(t, ctx, "usage")

	// Features × teams: switch ask_question off for support with the
	// keyboard (focus the cell's button, press Enter).
	if _, err := askQuestion(t.Context(), demoKey); err != nil {
		t.Fatalf("before the toggle: %v", err)
	}
	toggle := `[data-testid="toggle-ask_question-support"]`
	step(t, ctx, "features page", chromedp.Navigate(base+"features"), chromedp.WaitVisible(toggle))
	if got := text(t, ctx, toggle); got != "On" {
		t.Fatalf("ask_question/support shows %q before the toggle", got)
	}
	shot(t, ctx, "features")
	// The overlay outlives configs (it is the process's memory store):
	// leave it as found.
	t.Cleanup(func() {
		postForm(t, consoleClient(t, opsKey), "/groundgate/console/features", url.Values{
			"feature": {"ask_question"}, "team": {"support"}, "state": {"inherit"}})
	})
	step(t, ctx, "focus the cell", chromedp.Focus(toggle))
	submit(t, ctx, "toggle", chromedp.KeyEvent("\r"))
	if got := text(t, ctx, ".flash"); !strings.Contains(got, "ask_question for team support: switched off") {
		t.Errorf("flash: %q", got)
	}
	if got := text(t, ctx, toggle); got != "Off" {
		t.Errorf("after the toggle the cell shows %q", got)
	}
	if focused := eval[string](t, ctx, `document.activeElement.getAttribute("data-testid") || ""`); focused != "toggle-ask_question-support" {
		t.Errorf("focus after the toggle is on %q, not the cell (page %s)", focused, eval[string](t, ctx, "location.href"))
	}
	_, err = askQuestion(t.Context(), demoKey)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 403 || !strings.Contains(apiErr.Message, "admin console") {
		t.Fatalf("support's request after the toggle: %v", err)
	}
	if exp := text(t, ctx, "#export"); !strings.Contains(exp, "enabled: [escalations, billing]") {
		t.Errorf("export: %q", exp)
	}
	step(t, ctx, "scroll", chromedp.ScrollIntoView(toggle))
	shot(t, ctx, "features-toggled")

	// The audit log, filtered to billing's refusals.
	step(t, ctx, "audit log", chromedp.Navigate(base+"audit"), chromedp.WaitVisible(`[data-testid="audit-rows"]`),
		chromedp.SetValue("#team", "billing"), chromedp.SetValue("#outcome", "refused"))
	submit(t, ctx, "filter", chromedp.Click(`form.filters button[type="submit"]`))
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	if !strings.Contains(loc, "team=billing") || !strings.Contains(loc, "outcome=refused") {
		t.Fatalf("filter did not apply: %s", loc)
	}
	rowTeams := eval[[]string](t, ctx, `[...document.querySelectorAll('[data-testid="audit-rows"] tbody td[data-col="team"]')].map(e => e.textContent)`)
	rowStatus := eval[[]string](t, ctx, `[...document.querySelectorAll('[data-testid="audit-rows"] tbody td[data-col="status"]')].map(e => e.textContent)`)
	if len(rowTeams) == 0 {
		t.Fatal("no billing refusals listed")
	}
	for i := range rowTeams {
		if rowTeams[i] != "billing" || rowStatus[i] != "403" {
			t.Fatalf("row %d: team %s status %s", i, rowTeams[i], rowStatus[i])
		}
	}
	shot(t, ctx, "audit")

	// Feedback: ops gets an answer, finds it in the log and rates it.
	c := openaiClient(option.WithAPIKey(opsKey))
	answer, err := c.Chat.Completions.New(t.Context(), chatParams("Which warranty covers a cracked X200 screen?"))
	if err != nil {
		t.Fatal(err)
	}
	story := base + "audit/" + url.PathEscape(answer.ID)
	deadline := time.Now().Add(10 * time.Second)
	for {
		step(t, ctx, "story", chromedp.Navigate(story), chromedp.WaitVisible("h1"))
		if eval[bool](t, ctx, `!!document.querySelector('input[name="rating"]')`) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	step(t, ctx, "rate", chromedp.Click(`input[name="rating"][value="down"]`),
		chromedp.SendKeys("#comment", "Cites the wrong warranty article."))
	submit(t, ctx, "send feedback", chromedp.Click(`form[aria-label="Rate this answer"] button[type="submit"]`))
	if fb := text(t, ctx, "ul.feedback"); !strings.Contains(fb, "ops") || !strings.Contains(fb, "Cites the wrong warranty article.") {
		t.Errorf("feedback list: %q", fb)
	}
	shot(t, ctx, "story")
	step(t, ctx, "feedback page", chromedp.Navigate(base+"feedback"), chromedp.WaitVisible(`[data-testid="feedback-rows"]`))
	if rows := text(t, ctx, `[data-testid="feedback-rows"] tbody`); !strings.Contains(rows, "platform") {
		t.Errorf("feedback by team: %q", rows)
	}
	shot(t, ctx, "feedback")

	// The other pages render.
	step(t, ctx, "policies", chromedp.Navigate(base+"policies"), chromedp.WaitVisible("#body"),
		chromedp.SetValue("#principal", "demo"), chromedp.SetValue("#feature", "ask_question"))
	submit(t, ctx, "explain", chromedp.Click(`#play-h ~ form button[type="submit"]`))
	if got := text(t, ctx, "#explained"); !strings.Contains(got, "switched off for team \"support\"") {
		t.Errorf("explain after the toggle: %q", got)
	}
	step(t, ctx, "choose billing", chromedp.SetValue("#principal", "billing-agent"))
	submit(t, ctx, "explain allowed", chromedp.Click(`#play-h ~ form button[type="submit"]`))
	if got := text(t, ctx, "#explained"); !strings.Contains(got, "Policy ask-question") || !strings.Contains(got, "Grounded prompt") {
		t.Errorf("explain: %q", got)
	}
	shot(t, ctx, "policies")
	step(t, ctx, "pools", chromedp.Navigate(base+"pools"), chromedp.WaitVisible(`[data-testid="pool-gpt-4o"]`))
	if got := text(t, ctx, `[data-testid="pool-gpt-4o"]`); !strings.Contains(got, "closed") {
		t.Errorf("pools: %q", got)
	}
	shot(t, ctx, "pools")
	step(t, ctx, "budgets", chromedp.Navigate(base+"budgets"), chromedp.WaitVisible("h1"))
	shot(t, ctx, "budgets")
}
