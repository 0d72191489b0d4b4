package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/groundgate/groundgate/tokens"
)

// Budgets through the real Caddy and the simulator: requests asking for
// n answers reserve n answers, and streams that break, are abandoned or
// filtered are charged and audited for what was sent and delivered.

// budgetedConfig loads a gateway whose default policy has one daily token
// quota per key (counter name, limit), an optional store and a JSONL
// audit file, which it returns.
func budgetedConfig(t *testing.T, name string, limit int64, store, sim string) string {
	t.Helper()
	dir := t.TempDir()
	policy := fmt.Sprintf("name: budgeted\ndefault: true\nbudgets:\n  completion_estimate: 40\n  limits:\n    - per: key\n      name: %s\n      tokens_per_day: %d\n", name, limit)
	if err := os.WriteFile(filepath.Join(dir, "budgeted.yaml"), []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	load(t, caddyfile(fmt.Sprintf("policies %s\n\t\taudit {\n\t\t\tjsonl %s\n\t\t}\n\t\t%s", dir, audit, store), sim))
	return audit
}

func promptTokens(t *testing.T, body string) int64 {
	t.Helper()
	enc, _ := tokens.ForModel("gpt-4o")
	n, err := enc.CountChat([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return int64(n)
}

// sseAnswer is what a client read of a chat answer, stream or not.
type sseAnswer struct {
	status    int
	requestID string
	choices   map[int]string // text per choice index
	errCode   string         // an error event's (or body's) code
	total     int64          // usage.total_tokens, when reported
	remaining int64          // x-ratelimit-remaining-tokens-day
}

// post sends body to the chat route and reads the answer; stop, when not
// nil, ends the read early (the client leaves) once it returns true.
func postChat(ctx context.Context, t *testing.T, body string, stop func(*sseAnswer) bool) (a sseAnswer, err error) {
	req, _ := http.NewRequestWithContext(ctx, "POST", gatewayURL("/v1/chat/completions"), strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+demoKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := plainClient.Do(req)
	if err != nil {
		return a, err
	}
	defer resp.Body.Close()
	a = sseAnswer{status: resp.StatusCode, requestID: resp.Header.Get("X-Request-Id"), choices: map[int]string{}}
	a.remaining, _ = strconv.ParseInt(resp.Header.Get("X-Ratelimit-Remaining-Tokens-Day"), 10, 64)
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return a, err
		}
		a.errCode = gjson.GetBytes(b, "error.code").Str
		a.total = gjson.GetBytes(b, "usage.total_tokens").Int()
		gjson.GetBytes(b, "choices").ForEach(func(_, c gjson.Result) bool {
			a.choices[int(c.Get("index").Int())] += c.Get("message.content").Str
			return true
		})
		return a, nil
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		if e := gjson.Get(data, "error.code"); e.Exists() {
			a.errCode = e.Str
		}
		if u := gjson.Get(data, "usage.total_tokens"); u.Exists() {
			a.total = u.Int()
		}
		gjson.Get(data, "choices").ForEach(func(_, c gjson.Result) bool {
			a.choices[int(c.Get("index").Int())] += c.Get("delta.content").Str
			return true
		})
		if stop != nil && stop(&a) {
			return a, nil
		}
	}
	return a, sc.Err()
}

// completionOf counts the tokens of every choice's text, as the gateway
// counts delivered answers.
func completionOf(a sseAnswer) int64 {
	enc, _ := tokens.ForModel("gpt-4o")
	var n int64
	for _, s := range a.choices {
		n += int64(enc.Count(s))
	}
	return n
}

// auditRecord waits for the JSONL audit record of a request.
func auditRecord(t *testing.T, path, requestID string) gjson.Result {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(path)
		for _, line := range strings.Split(string(b), "\n") {
			if gjson.Get(line, "request_id").Str == requestID {
				return gjson.Parse(line)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no audit record for request %s in %s", requestID, path)
	return gjson.Result{}
}

// settledSoFar asks a probe request how much the quota counts: limit
// minus what remains after the probe's own reservation.
func settledSoFar(t *testing.T, limit int64) int64 {
	t.Helper()
	body := `{"model":"gpt-4o","max_tokens":5,"messages":[{"role":"user","content":"probe [[sim:tokens=5]]"}]}`
	a, err := postChat(t.Context(), t, body, nil)
	if err != nil || a.status != 200 {
		t.Fatalf("probe: %d %v", a.status, err)
	}
	return limit - a.remaining - (promptTokens(t, body) + 5)
}

// 64 concurrent clients ask for n=8 answers, streamed and not, against a
// daily token quota, on the memory store and on Redis: the tokens the
// upstream billed for the admitted requests never exceed the quota by
// more than one request's estimate (they reached 2.3 times it when the
// reservation counted one answer).
func TestHardeningBudgetCoversNAnswers(t *testing.T) {
	port, dir := freePort(), t.TempDir()
	stop := startRedis(t, port, dir)
	t.Cleanup(stop)
	for _, tc := range []struct{ name, store string }{
		{"memory", ""},
		{"redis", fmt.Sprintf("store redis {\n\t\t\taddress 127.0.0.1:%d\n\t\t\tprefix gg-hardening:\n\t\t}", port)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The simulator answers 40 tokens per choice; the policy caps
			// answers at completion_estimate (40): the estimate is exact.
			plain := `{"model":"gpt-4o","n":8,"messages":[{"role":"user","content":"Where is my order? [[sim:tokens=40]]"}]}`
			streamed := `{"model":"gpt-4o","n":8,"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Where is my order? [[sim:tokens=40]]"}]}`
			est := promptTokens(t, plain) + 8*40
			limit := 30 * est
			budgetedConfig(t, "hardening-n-"+tc.name, limit, tc.store, "")
			var admitted, refused, unavailable, requests atomic.Int64
			var wg sync.WaitGroup
			for w := range 64 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 3 {
						body := plain
						if (w+i)%2 == 0 {
							body = streamed
						}
						a, err := postChat(t.Context(), t, body, nil)
						requests.Add(1)
						switch {
						case err != nil:
							t.Errorf("request: %v", err)
						case a.status == 200 && len(a.choices) == 8 && a.total > 0:
							admitted.Add(a.total)
						case a.status == 403 && a.errCode == "insufficient_quota":
							refused.Add(1)
						case a.status == 503 && a.errCode == "budget_store_unavailable":
							// Redis did not answer in time on a loaded
							// machine: refused (fail closed), nothing admitted.
							unavailable.Add(1)
						default:
							t.Errorf("status %d, %d choices, %d tokens, error %q", a.status, len(a.choices), a.total, a.errCode)
						}
					}
				}()
			}
			wg.Wait()
			t.Logf("%s: %d requests, admitted %d tokens against a quota of %d (estimate %d), %d refused, %d store timeouts",
				tc.name, requests.Load(), admitted.Load(), limit, est, refused.Load(), unavailable.Load())
			if admitted.Load() > limit+est {
				t.Fatalf("admitted %d tokens against a quota of %d: more than one request's estimate (%d) over", admitted.Load(), limit, est)
			}
			if refused.Load() == 0 || admitted.Load() < limit-2*est {
				t.Fatalf("admitted %d of %d, %d refused: the quota was not used up", admitted.Load(), limit, refused.Load())
			}
			// n beyond what the quota can ever hold is refused up front.
			big := `{"model":"gpt-4o","n":128,"max_tokens":4000,"messages":[{"role":"user","content":"hi"}]}`
			if a, err := postChat(t.Context(), t, big, nil); err != nil || a.status != 403 {
				t.Fatalf("n=128 × 4000 against a spent quota: %d %v", a.status, err)
			}
		})
	}
}

// A stream the upstream cuts after some tokens (the simulator's
// drop_after) is charged the prompt it was sent and the tokens delivered
// to the client, every choice; its audit record says 502 and incomplete
// (upstream_error) with those counts, and the budget is settled to them.
func TestHardeningBrokenStreamIsCharged(t *testing.T) {
	const limit = 1_000_000
	audit := budgetedConfig(t, "hardening-broken", limit, "", "")
	body := `{"model":"gpt-4o","n":2,"stream":true,"messages":[{"role":"user","content":"Tell me about my order. [[sim:tokens=30]] [[sim:drop_after=9]]"}]}`
	a, err := postChat(t.Context(), t, body, nil)
	if err != nil || a.status != 200 || a.errCode != "upstream_stream_error" {
		t.Fatalf("stream: status %d, error %q, %v", a.status, a.errCode, err)
	}
	prompt, completion := promptTokens(t, body), completionOf(a)
	if completion < 9 || len(a.choices) != 2 {
		t.Fatalf("the client got %d tokens in %d choices before the break, want 9 in 2", completion, len(a.choices))
	}
	rec := auditRecord(t, audit, a.requestID)
	if rec.Get("status").Int() != 502 || rec.Get("prompt_tokens").Int() != prompt || rec.Get("completion_tokens").Int() != completion ||
		!rec.Get("incomplete").Bool() || rec.Get("incomplete_reason").Str != "upstream_error" {
		t.Fatalf("audit record %s; want status 502, %d prompt and %d completion tokens, incomplete upstream_error", rec.Raw, prompt, completion)
	}
	if got := settledSoFar(t, limit); got != prompt+completion {
		t.Fatalf("the budget counts %d tokens for the broken stream, want %d", got, prompt+completion)
	}
}

// A client that leaves a stream midway is charged the prompt and what the
// gateway forwarded; a client that leaves a non-streamed call while the
// upstream works is charged the prompt and the whole completion its
// reservation allowed (the upstream may finish and bill it). Both are
// audited as incomplete (client_disconnected).
func TestHardeningAbandonedRequestsAreCharged(t *testing.T) {
	const limit = 1_000_000
	t.Run("stream", func(t *testing.T) {
		audit := budgetedConfig(t, "hardening-abandoned-stream", limit, "", "tokens_per_second 100")
		body := `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Tell me everything. [[sim:tokens=300]]"}]}`
		ctx, cancel := context.WithCancel(t.Context())
		a, err := postChat(ctx, t, body, func(a *sseAnswer) bool { return completionOf(*a) >= 10 })
		cancel() // the client hangs up
		if err != nil || a.status != 200 {
			t.Fatalf("stream: %d %v", a.status, err)
		}
		rec := auditRecord(t, audit, a.requestID)
		prompt, got := promptTokens(t, body), rec.Get("completion_tokens").Int()
		if rec.Get("prompt_tokens").Int() != prompt || got < completionOf(a) || got >= 300 ||
			!rec.Get("incomplete").Bool() || rec.Get("incomplete_reason").Str != "client_disconnected" {
			t.Fatalf("audit record %s; want %d prompt tokens, at least the %d completion tokens read and fewer than 300, incomplete client_disconnected",
				rec.Raw, prompt, completionOf(a))
		}
		if settled := settledSoFar(t, limit); settled != prompt+got {
			t.Fatalf("the budget counts %d tokens for the abandoned stream, want %d", settled, prompt+got)
		}
	})
	t.Run("non_streamed", func(t *testing.T) {
		audit := budgetedConfig(t, "hardening-abandoned-call", limit, "", "")
		body := `{"model":"gpt-4o","n":3,"max_tokens":25,"messages":[{"role":"user","content":"Where is my order? [[sim:delay_ms=3000]]"}]}`
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		if _, err := postChat(ctx, t, body, nil); err == nil {
			t.Fatal("the call did not time out on the client")
		}
		// The record has no request id the client saw: find the 499.
		var rec gjson.Result
		deadline := time.Now().Add(10 * time.Second)
		for !rec.Exists() && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			b, _ := os.ReadFile(audit)
			for _, line := range strings.Split(string(b), "\n") {
				if gjson.Get(line, "status").Int() == 499 {
					rec = gjson.Parse(line)
				}
			}
		}
		prompt := promptTokens(t, body)
		if rec.Get("prompt_tokens").Int() != prompt || rec.Get("completion_tokens").Int() != 0 || rec.Get("incomplete_reason").Str != "client_disconnected" {
			t.Fatalf("audit record %q; want 499 with %d prompt tokens, incomplete client_disconnected", rec.Raw, prompt)
		}
		if settled := settledSoFar(t, limit); settled != prompt+3*25 {
			t.Fatalf("the budget counts %d tokens for the abandoned call, want the prompt and 3 × 25 (%d)", settled, prompt+3*25)
		}
	})
}

// A stream the upstream's content filter ends is audited as incomplete
// (content_filter) and charged its usage.
func TestHardeningFilteredStreamIsIncomplete(t *testing.T) {
	const limit = 1_000_000
	audit := budgetedConfig(t, "hardening-filtered", limit, "", "blocked_output_terms fox")
	body := `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Hi [[sim:tokens=20]]"}]}`
	a, err := postChat(t.Context(), t, body, nil)
	if err != nil || a.status != 200 {
		t.Fatalf("stream: %d %v", a.status, err)
	}
	rec := auditRecord(t, audit, a.requestID)
	if rec.Get("incomplete_reason").Str != "content_filter" || rec.Get("prompt_tokens").Int()+rec.Get("completion_tokens").Int() != a.total {
		t.Fatalf("audit record %s; want incomplete content_filter with the %d tokens reported", rec.Raw, a.total)
	}
	if settled := settledSoFar(t, limit); settled != a.total {
		t.Fatalf("the budget counts %d tokens, want %d", settled, a.total)
	}
}
