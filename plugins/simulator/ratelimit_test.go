package simulator

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

// fakeClock is an injectable clock for the rate-limit window.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestRateLimiterRequests(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_750_000_000, 0)}
	s := newSim(t, func(s *Simulator) { s.RequestsPerMinute = 3; s.now = clock.now })
	for i := range 3 {
		w := call(t, s, "POST", chatPath, simpleReq)
		if w.Code != 200 || w.Header().Get("x-ratelimit-remaining-requests") != strconv.Itoa(2-i) {
			t.Fatalf("request %d: %d remaining=%q", i, w.Code, w.Header().Get("x-ratelimit-remaining-requests"))
		}
		clock.advance(10 * time.Second)
	}
	// 30 s into the window: 30 s until it resets.
	w := call(t, s, "POST", chatPath, simpleReq)
	if w.Code != 429 || w.Header().Get("retry-after") != "30" || w.Header().Get("retry-after-ms") != "30000" ||
		w.Header().Get("x-ratelimit-remaining-requests") != "0" ||
		!strings.Contains(gjson.Get(w.Body.String(), "error.message").Str, "have exceeded call rate limit of your current OpenAI S0 pricing tier. Please retry after 30 seconds.") ||
		gjson.Get(w.Body.String(), "error.code").Str != "429" {
		t.Fatalf("%d %v %s", w.Code, w.Header(), w.Body)
	}
	// Other deployments have their own window.
	if w := call(t, s, "POST", "/openai/deployments/gpt-35-turbo/chat/completions?api-version=2024-10-21", simpleReq); w.Code != 200 {
		t.Fatalf("other deployment: %d", w.Code)
	}
	clock.advance(29500 * time.Millisecond)
	if w := call(t, s, "POST", chatPath, simpleReq); w.Code != 429 || w.Header().Get("retry-after-ms") != "500" || w.Header().Get("retry-after") != "1" {
		t.Fatalf("%d %v", w.Code, w.Header())
	}
	clock.advance(500 * time.Millisecond)
	if w := call(t, s, "POST", chatPath, simpleReq); w.Code != 200 || w.Header().Get("x-ratelimit-remaining-requests") != "2" {
		t.Fatalf("after the window: %d %v", w.Code, w.Header())
	}
}

func TestRateLimiterTokens(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_750_000_000, 0)}
	s := newSim(t, func(s *Simulator) { s.TokensPerMinute = 1000; s.now = clock.now })
	body := `{"messages":[{"role":"user","content":"[[sim:tokens=400]]"}]}`
	first := call(t, s, "POST", chatPath, body)
	total := gjson.Get(first.Body.String(), "usage.total_tokens").Int()
	if first.Code != 200 || total <= 400 || first.Header().Get("x-ratelimit-remaining-tokens") != strconv.FormatInt(1000-total, 10) {
		t.Fatalf("%d total=%d remaining=%s", first.Code, total, first.Header().Get("x-ratelimit-remaining-tokens"))
	}
	if first.Header().Get("x-ratelimit-remaining-requests") != strconv.Itoa(nominalRequests) {
		t.Fatalf("remaining requests without a request limit: %s", first.Header().Get("x-ratelimit-remaining-requests"))
	}
	call(t, s, "POST", chatPath, body) // 2 × total ≤ 1000
	clock.advance(45 * time.Second)
	w := call(t, s, "POST", chatPath, body)
	if w.Code != 429 || w.Header().Get("retry-after") != "15" ||
		!strings.Contains(w.Body.String(), "have exceeded token rate limit") {
		t.Fatalf("%d %v %s", w.Code, w.Header(), w.Body)
	}
	// A smaller request still fits.
	small := call(t, s, "POST", chatPath, simpleReq)
	if small.Code != 200 || small.Header().Get("x-ratelimit-remaining-tokens") !=
		strconv.FormatInt(1000-2*total-gjson.Get(small.Body.String(), "usage.total_tokens").Int(), 10) {
		t.Fatalf("small request: %d %v %s", small.Code, small.Header(), small.Body)
	}
	// Embeddings are charged their prompt tokens, in their own deployment's window.
	e := call(t, s, "POST", embedPath, `{"input":"one two three"}`)
	if e.Code != 200 || e.Header().Get("x-ratelimit-remaining-tokens") != strconv.FormatInt(1000-gjson.Get(e.Body.String(), "usage.prompt_tokens").Int(), 10) {
		t.Fatalf("embeddings: %d %v", e.Code, e.Header())
	}
}

func TestRateLimiterConcurrent(t *testing.T) {
	s := newSim(t, func(s *Simulator) { s.RequestsPerMinute = 50 })
	codes := make(chan int, 200)
	for range 4 {
		go func() {
			for range 50 {
				codes <- call(t, s, "POST", chatPath, simpleReq).Code
			}
		}()
	}
	ok := 0
	for range 200 {
		if <-codes == 200 {
			ok++
		}
	}
	if ok != 50 {
		t.Fatalf("%d of 200 concurrent requests admitted, limit 50", ok)
	}
}
