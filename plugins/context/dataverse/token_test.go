package dataverse

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func caddyDuration(d time.Duration) caddy.Duration { return caddy.Duration(d) }

// fakeClock is a settable time source.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestTokenSource(f *fakeDataverse, secret string) (*tokenSource, *fakeClock) {
	ts := newTokenSource(f.tokenURL(), testClient, secret, f.URL+"/.default", &http.Client{})
	clk := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	ts.now = clk.now
	return ts, clk
}

// TestTokenLifecycle: a token is cached; after 80% of its life it is
// still served while a background refresh fetches the next one; once
// expired it is fetched inline.
func TestTokenLifecycle(t *testing.T) {
	f := newFakeDataverse(t)
	ts, clk := newTestTokenSource(f, testSecret)
	ctx := context.Background()
	tok1, err := ts.Token(ctx)
	if err != nil || tok1 == "" {
		t.Fatal(tok1, err)
	}
	for range 5 {
		if tok, _ := ts.Token(ctx); tok != tok1 {
			t.Fatal("token not cached")
		}
	}
	if f.tokenCalls.Load() != 1 {
		t.Fatalf("%d token requests", f.tokenCalls.Load())
	}

	// 3599s tokens: past 80% (2879s) a background refresh starts, and
	// the old token is still handed out meanwhile.
	clk.add(2900 * time.Second)
	if tok, _ := ts.Token(ctx); tok != tok1 {
		t.Errorf("got %q during the refresh, want the cached token", tok)
	}
	waitFor(t, func() bool {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		return ts.tok != tok1 && ts.inflight == nil
	})
	tok2, _ := ts.Token(ctx)
	if tok2 == tok1 || f.tokenCalls.Load() != 2 {
		t.Errorf("after refresh: %q (%d requests)", tok2, f.tokenCalls.Load())
	}

	// Expired: fetched inline.
	clk.add(4000 * time.Second)
	tok3, err := ts.Token(ctx)
	if err != nil || tok3 == tok2 || f.tokenCalls.Load() != 3 {
		t.Errorf("after expiry: %q %v (%d requests)", tok3, err, f.tokenCalls.Load())
	}
}

// TestTokenSingleFlight: concurrent callers share one token request.
func TestTokenSingleFlight(t *testing.T) {
	f := newFakeDataverse(t)
	f.tokenGate = make(chan struct{})
	ts, _ := newTestTokenSource(f, testSecret)
	var wg sync.WaitGroup
	toks := make([]string, 20)
	for i := range toks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			toks[i], _ = ts.Token(context.Background())
		}()
	}
	waitFor(t, func() bool { return f.tokenCalls.Load() == 1 })
	time.Sleep(20 * time.Millisecond) // let the others pile up behind it
	close(f.tokenGate)
	wg.Wait()
	for _, tok := range toks {
		if tok == "" || tok != toks[0] {
			t.Fatalf("tokens %v", toks)
		}
	}
	if n := f.tokenCalls.Load(); n != 1 {
		t.Errorf("%d token requests", n)
	}
}

// TestTokenWaitHonoursContext: a caller whose context ends stops
// waiting; the fetch goes on for the others.
func TestTokenWaitHonoursContext(t *testing.T) {
	f := newFakeDataverse(t)
	f.tokenGate = make(chan struct{})
	ts, _ := newTestTokenSource(f, testSecret)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := ts.Token(ctx); err == nil {
		t.Fatal("no error")
	}
	close(f.tokenGate)
	if tok, err := ts.Token(context.Background()); err != nil || tok == "" {
		t.Errorf("%q %v", tok, err)
	}
	if n := f.tokenCalls.Load(); n != 1 {
		t.Errorf("%d token requests", n)
	}
}

// TestTokenError: the token endpoint's error and description are
// reported; the secret is not.
func TestTokenError(t *testing.T) {
	f := newFakeDataverse(t)
	ts, _ := newTestTokenSource(f, "wrong-secret-value")
	_, err := ts.Token(context.Background())
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{"answered 401", "invalid_client", "AADSTS7000215"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "wrong-secret-value") || strings.Contains(msg, "Trace ID") {
		t.Errorf("error %q", msg)
	}
}

// TestTokenSharedAcrossReloads: two provisions with the same identity
// share the token source (a reload keeps the token); after both are
// cleaned up it is gone from the pool.
func TestTokenSharedAcrossReloads(t *testing.T) {
	f := newFakeDataverse(t)
	d1 := provisionDV(t, f, nil)
	d2 := provisionDV(t, f, nil)
	if d1.c.tokens != d2.c.tokens {
		t.Fatal("token sources not shared")
	}
	for _, d := range []*Dataverse{d1, d2} {
		if _, _, err := d.Lookup(context.Background(), nil, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Articles(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.tokenCalls.Load(); n != 1 {
		t.Errorf("%d token requests for two configs", n)
	}
	key := d1.poolKey
	if strings.Contains(key, testSecret) {
		t.Error("the pool key holds the secret")
	}
	d1.Cleanup()
	if refs, ok := tokenPool.References(key); !ok || refs != 1 {
		t.Errorf("after one cleanup: %d refs, %v", refs, ok)
	}
	d2.Cleanup()
	if _, ok := tokenPool.References(key); ok {
		t.Error("token source still pooled")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(2 * time.Millisecond)
	}
}
