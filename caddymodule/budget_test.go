package caddymodule

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/groundgate/groundgate/budgets"
)

func budgetPolicy(limits string) string {
	return "name: general\ndefault: true\nbudgets:\n  completion_tokens: 20\n" + limits
}

// uniqueName keeps tests from sharing in-process counters.
func uniqueName(t *testing.T) string { return strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")) }

func TestRateLimitReserveAndSettle(t *testing.T) {
	main, mini := newFake(t, okHandler), newFake(t, okHandler)
	dir := writePolicies(t, map[string]string{"p.yaml": budgetPolicy(`  limits:
    - per: key
      name: ` + uniqueName(t) + `
      tokens_per_minute: 100
      requests_per_minute: 50
`)})
	g := policyGateway(t, dir, nil, main, mini)

	r := do(t, g, "POST", "/v1/chat/completions", chatBody)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	// The headers show the reservation (estimate = prompt + 20); the
	// counter then holds the actual usage (13 tokens, from the upstream).
	est := 100 - mustInt(t, r.header.Get("X-Ratelimit-Remaining-Tokens"))
	if r.header.Get("X-Ratelimit-Limit-Tokens") != "100" || est < 21 || r.header.Get("X-Ratelimit-Remaining-Requests") != "49" {
		t.Fatalf("headers: %v", r.header)
	}
	r = do(t, g, "POST", "/v1/chat/completions", chatBody)
	if got := 100 - mustInt(t, r.header.Get("X-Ratelimit-Remaining-Tokens")); got != 13+est {
		t.Fatalf("after settle the first request counts %d tokens, want 13 (second reserved %d)", got-est, est)
	}
	// Requests continue until the next estimate no longer fits: 429.
	var last result
	for i := 0; i < 10; i++ {
		if last = do(t, g, "POST", "/v1/chat/completions", chatBody); last.status != 200 {
			break
		}
	}
	assertOpenAIError(t, last, 429, "rate_limit_exceeded")
	if last.header.Get("Retry-After") == "" || last.header.Get("Retry-After-Ms") == "" || last.header.Get("X-Ratelimit-Remaining-Tokens") == "" {
		t.Fatalf("429 headers: %v", last.header)
	}
}

func TestQuotaSpentIs403(t *testing.T) {
	main, mini := newFake(t, okHandler), newFake(t, okHandler)
	dir := writePolicies(t, map[string]string{"p.yaml": budgetPolicy(`  limits:
    - per: team
      name: ` + uniqueName(t) + `
      requests_per_day: 2
`)})
	g := policyGateway(t, dir, nil, main, mini)
	for i := 0; i < 2; i++ {
		if r := do(t, g, "POST", "/v1/chat/completions", chatBody); r.status != 200 {
			t.Fatalf("request %d: %d", i, r.status)
		}
	}
	r := do(t, g, "POST", "/v1/chat/completions", chatBody)
	assertOpenAIError(t, r, 403, "insufficient_quota")
	if r.header.Get("X-Ratelimit-Remaining-Requests-Day") != "0" {
		t.Fatalf("quota headers: %v", r.header)
	}
	// Another team has its own counter.
	if r := do(t, g, "POST", "/v1/chat/completions", chatBody, "Authorization", "Bearer ops-key-123456"); r.status != 200 {
		t.Fatalf("other team: %d", r.status)
	}
}

func TestFailedUpstreamReleasesReservation(t *testing.T) {
	bad, mini := newFake(t, statusHandler(500)), newFake(t, okHandler)
	dir := writePolicies(t, map[string]string{"p.yaml": budgetPolicy(`  limits:
    - per: key
      name: ` + uniqueName(t) + `
      requests_per_minute: 100
      tokens_per_minute: 1000
`)})
	g := policyGateway(t, dir, func(g *Gateway) { g.MaxAttempts = 1 }, bad, mini)
	do(t, g, "POST", "/v1/chat/completions", chatBody)
	bad.handler = okHandler
	r := do(t, g, "POST", "/v1/chat/completions", chatBody)
	if r.header.Get("X-Ratelimit-Remaining-Requests") != "99" {
		t.Fatalf("a request that never got an answer still counts: %v", r.header)
	}
}

// 64 concurrent clients against one limit: the tokens admitted never
// exceed the limit by more than one request's estimate.
func TestBudgetHoldsUnderConcurrency(t *testing.T) {
	main, mini := newFake(t, okHandler), newFake(t, okHandler)
	dir := writePolicies(t, map[string]string{"p.yaml": budgetPolicy(`  limits:
    - per: global
      name: ` + uniqueName(t) + `
      tokens_per_minute: 2000
`)})
	g := policyGateway(t, dir, nil, main, mini)
	var admitted, refused atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				r := do(t, g, "POST", "/v1/chat/completions", chatBody)
				switch r.status {
				case 200:
					admitted.Add(13) // the upstream's usage per request
				case 429:
					refused.Add(1)
				default:
					t.Errorf("status %d", r.status)
				}
			}
		}()
	}
	wg.Wait()
	const estimate = 9 + 20 // prompt of chatBody + completion cap
	if admitted.Load() > 2000+estimate {
		t.Fatalf("admitted %d tokens against a limit of 2000", admitted.Load())
	}
	if refused.Load() == 0 || admitted.Load() < 2000-2*estimate {
		t.Fatalf("admitted %d, refused %d: the limit was not used up", admitted.Load(), refused.Load())
	}
	t.Logf("admitted %d tokens of 2000 (%d refused)", admitted.Load(), refused.Load())
}

type brokenStore struct{}

func (brokenStore) Reserve(context.Context, []budgets.Charge) (*budgets.Reservation, []budgets.Status, error) {
	return nil, nil, fmt.Errorf("%w: connection refused", budgets.ErrUnavailable)
}
func (brokenStore) Settle(context.Context, *budgets.Reservation, []int64) error { return nil }
func (brokenStore) Release(context.Context, *budgets.Reservation) error         { return nil }

func TestStoreUnavailableFailsAsPolicySays(t *testing.T) {
	for _, mode := range []string{"open", "closed"} {
		t.Run(mode, func(t *testing.T) {
			main, mini := newFake(t, okHandler), newFake(t, okHandler)
			dir := writePolicies(t, map[string]string{"p.yaml": budgetPolicy(`  on_store_error: ` + mode + `
  limits:
    - per: key
      tokens_per_minute: 1000
`)})
			g := policyGateway(t, dir, nil, main, mini)
			g.store = brokenStore{}
			r := do(t, g, "POST", "/v1/chat/completions", chatBody)
			if mode == "open" && r.status != 200 {
				t.Fatalf("fail open: %d %s", r.status, r.body)
			}
			if mode == "closed" {
				assertOpenAIError(t, r, 503, "budget_store_unavailable")
			}
		})
	}
}

func TestBudgetConfigErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"  limits:\n    - per: tenant\n      tokens_per_minute: 5\n", `per must be key, team, policy, model, deployment or global`},
		{"  limits:\n    - per: key\n", `no limit set`},
		{"  on_store_error: maybe\n", `on_store_error must be open or closed`},
		{"  limits:\n    - per: key\n      tokens_per_minut: 5\n", `tokens_per_minut`},
	} {
		dir := writePolicies(t, map[string]string{"p.yaml": budgetPolicy(tc.yaml)})
		if err := checkPolicyFiles([]string{dir}); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "p.yaml:") {
			t.Errorf("%q: err = %v", tc.yaml, err)
		}
	}
}

func mustInt(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}

func TestCostAndSpendQuota(t *testing.T) {
	main, mini := newFake(t, func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1000,"completion_tokens":500,"total_tokens":1500,"prompt_tokens_details":{"cached_tokens":400}}}`)
	}), newFake(t, okHandler)
	dir := writePolicies(t, map[string]string{"p.yaml": budgetPolicy(`  limits:
    - per: team
      name: ` + uniqueName(t) + `
      usd_per_day: 0.03
`)})
	g := policyGateway(t, dir, func(g *Gateway) {
		g.Prices = map[string]Price{"gpt-4o": {Input: 2.5, CachedInput: 1.25, Output: 10}}
	}, main, mini)
	r := do(t, g, "POST", "/v1/chat/completions", chatBody)
	// 600 × 2.5 + 400 × 1.25 + 500 × 10 = 7000 per million = $0.007
	if fmt.Sprint(r.ex["llm.cost_usd"]) != "0.007" {
		t.Fatalf("cost placeholder = %v", r.ex["llm.cost_usd"])
	}
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	for i := 0; i < 4; i++ {
		if r = do(t, g, "POST", "/v1/chat/completions", chatBody); r.status != 200 {
			t.Fatalf("request %d: %d %s", i+2, r.status, r.body)
		}
	}
	// $0.028 was spent after four requests and the fifth's estimate (its
	// 9 counted prompt tokens and 20 capped answer tokens) fitted; this
	// fake upstream bills far more than the request could, so $0.035 is
	// now spent and nothing fits.
	r = do(t, g, "POST", "/v1/chat/completions", chatBody)
	assertOpenAIError(t, r, 403, "insufficient_quota")
	if !strings.Contains(r.body, "$0.03") {
		t.Fatalf("spend refusal: %s", r.body)
	}
}

func TestPriceMicroUSD(t *testing.T) {
	p := Price{Input: 2.5, CachedInput: 1.25, Output: 10}
	if got := p.microUSD(1000, 400, 500); got != 7000 {
		t.Fatalf("cost = %d µUSD, want 7000", got)
	}
}

// A deployment whose budget is spent is skipped for another; when every
// deployment's budget is spent the client gets the 429.
func TestPerDeploymentBudgetFailsOver(t *testing.T) {
	a, b := newFake(t, okHandler), newFake(t, okHandler)
	dir := writePolicies(t, map[string]string{"p.yaml": budgetPolicy(`  limits:
    - per: deployment
      name: ` + uniqueName(t) + `
      requests_per_minute: 2
`)})
	g := newGateway(t, func(g *Gateway) {
		g.Policies = []string{dir}
	}, azure("a", a.URL, 0), azure("b", b.URL, 1))
	var ups []string
	for i := 0; i < 4; i++ {
		r := do(t, g, "POST", "/v1/chat/completions", chatBody)
		if r.status != 200 {
			t.Fatalf("request %d: %d %s", i, r.status, r.body)
		}
		ups = append(ups, fmt.Sprint(r.ex["llm.upstream"]))
	}
	if strings.Join(ups, ",") != "a,a,b,b" {
		t.Fatalf("deployments used: %v, want a,a,b,b", ups)
	}
	assertOpenAIError(t, do(t, g, "POST", "/v1/chat/completions", chatBody), 429, "rate_limit_exceeded")
}
