package entra

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	testClient = "client-1"
	testSecret = "s3cret-value-0123"
	testScope  = "https://org.crm.dynamics.com/.default"
)

// fakeIDP is an Entra ID token endpoint (client credentials), as
// documented: a form POST, a JSON answer, AADSTS errors on a bad secret.
type fakeIDP struct {
	*httptest.Server
	t     *testing.T
	calls atomic.Int64
	gate  chan struct{} // when set, token requests wait for it
}

func newFakeIDP(t *testing.T) *fakeIDP {
	f := &fakeIDP{t: t}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeIDP) tokenURL() string { return f.URL + "/tenant-1/oauth2/v2.0/token" }

func (f *fakeIDP) serve(w http.ResponseWriter, r *http.Request) {
	n := f.calls.Add(1)
	if f.gate != nil {
		<-f.gate
	}
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		f.t.Errorf("token request %s with Content-Type %q", r.Method, r.Header.Get("Content-Type"))
	}
	if err := r.ParseForm(); err != nil {
		f.t.Error(err)
	}
	if r.PostForm.Get("grant_type") != "client_credentials" || r.PostForm.Get("client_id") != testClient ||
		r.PostForm.Get("scope") != testScope {
		f.t.Errorf("token form %v", r.PostForm)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if r.PostForm.Get("client_secret") != testSecret {
		w.WriteHeader(401)
		io.WriteString(w, `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value.\r\nTrace ID: 1\r\nCorrelation ID: 2","error_codes":[7000215]}`)
		return
	}
	fmt.Fprintf(w, `{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0eXAi.token-%d"}`, n)
}

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

func newTestSource(f *fakeIDP, secret string) (*Source, *fakeClock) {
	ts := New(f.tokenURL(), testClient, secret, testScope, &http.Client{})
	clk := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	ts.SetClock(clk.now)
	return ts, clk
}

// TestTokenLifecycle: a token is cached; after 80% of its life it is
// still served while a background refresh fetches the next one; once
// expired it is fetched inline.
func TestTokenLifecycle(t *testing.T) {
	f := newFakeIDP(t)
	ts, clk := newTestSource(f, testSecret)
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
	if f.calls.Load() != 1 {
		t.Fatalf("%d token requests", f.calls.Load())
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
	if tok2 == tok1 || f.calls.Load() != 2 {
		t.Errorf("after refresh: %q (%d requests)", tok2, f.calls.Load())
	}

	// Expired: fetched inline.
	clk.add(4000 * time.Second)
	tok3, err := ts.Token(ctx)
	if err != nil || tok3 == tok2 || f.calls.Load() != 3 {
		t.Errorf("after expiry: %q %v (%d requests)", tok3, err, f.calls.Load())
	}

	// Invalidated (the API refused it): the next call fetches a new one.
	ts.Invalidate(tok3)
	if tok4, err := ts.Token(ctx); err != nil || tok4 == tok3 || f.calls.Load() != 4 {
		t.Errorf("after Invalidate: %q %v (%d requests)", tok4, err, f.calls.Load())
	}
}

// TestTokenSingleFlight: concurrent callers share one token request.
func TestTokenSingleFlight(t *testing.T) {
	f := newFakeIDP(t)
	f.gate = make(chan struct{})
	ts, _ := newTestSource(f, testSecret)
	var wg sync.WaitGroup
	toks := make([]string, 20)
	for i := range toks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			toks[i], _ = ts.Token(context.Background())
		}()
	}
	waitFor(t, func() bool { return f.calls.Load() == 1 })
	time.Sleep(20 * time.Millisecond) // let the others pile up behind it
	close(f.gate)
	wg.Wait()
	for _, tok := range toks {
		if tok == "" || tok != toks[0] {
			t.Fatalf("tokens %v", toks)
		}
	}
	if n := f.calls.Load(); n != 1 {
		t.Errorf("%d token requests", n)
	}
}

// TestTokenWaitHonoursContext: a caller whose context ends stops
// waiting; the fetch goes on for the others.
func TestTokenWaitHonoursContext(t *testing.T) {
	f := newFakeIDP(t)
	f.gate = make(chan struct{})
	ts, _ := newTestSource(f, testSecret)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := ts.Token(ctx); err == nil {
		t.Fatal("no error")
	}
	close(f.gate)
	if tok, err := ts.Token(context.Background()); err != nil || tok == "" {
		t.Errorf("%q %v", tok, err)
	}
	if n := f.calls.Load(); n != 1 {
		t.Errorf("%d token requests", n)
	}
}

// TestTokenError: the token endpoint's error and description are
// reported; the secret is not.
func TestTokenError(t *testing.T) {
	f := newFakeIDP(t)
	ts, _ := newTestSource(f, "wrong-secret-value")
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

// TestShared: one Source per identity while any config holds it; the key
// does not hold the secret; it is gone after the last Release.
func TestShared(t *testing.T) {
	f := newFakeIDP(t)
	client := func() *http.Client { return &http.Client{} }
	a, key := Shared(f.tokenURL(), testClient, testSecret, testScope, client)
	b, key2 := Shared(f.tokenURL(), testClient, testSecret, testScope, client)
	other, key3 := Shared(f.tokenURL(), testClient, "another-secret", testScope, client)
	if a != b || key != key2 || other == a || key3 == key {
		t.Fatal("sources not shared by identity")
	}
	if strings.Contains(key, testSecret) {
		t.Error("the pool key holds the secret")
	}
	if n, ok := References(key); !ok || n != 2 {
		t.Errorf("%d references, %v", n, ok)
	}
	for _, k := range []string{key, key2, key3} {
		if err := Release(k); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := References(key); ok {
		t.Error("source still pooled")
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
