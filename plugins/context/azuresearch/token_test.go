package azuresearch

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestTokenLifecycle: cached, refreshed in the background after 80% of
// its life, fetched inline once expired, one fetch for many callers.
func TestTokenLifecycle(t *testing.T) {
	f := newFakeSearch(t)
	ts := newTokenSource(f.URL+"/t/oauth2/v2.0/token", testClient, testSecret, DefaultScope, &http.Client{})
	var mu sync.Mutex
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	ts.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	var wg sync.WaitGroup
	toks := make([]string, 10)
	for i := range toks {
		wg.Add(1)
		go func() { defer wg.Done(); toks[i], _ = ts.Token(context.Background()) }()
	}
	wg.Wait()
	for _, tok := range toks {
		if tok == "" || tok != toks[0] {
			t.Fatalf("tokens %v", toks)
		}
	}
	if n := f.tokenCalls.Load(); n != 1 {
		t.Fatalf("%d token requests", n)
	}
	advance(2900 * time.Second)
	if tok, _ := ts.Token(context.Background()); tok != toks[0] {
		t.Error("the cached token was not served during the refresh")
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.tokenCalls.Load() != 2 || func() bool { ts.mu.Lock(); defer ts.mu.Unlock(); return ts.inflight != nil }() {
		if time.Now().After(deadline) {
			t.Fatal("no background refresh")
		}
		time.Sleep(2 * time.Millisecond)
	}
	tok2, _ := ts.Token(context.Background())
	advance(4000 * time.Second)
	tok3, err := ts.Token(context.Background())
	if tok2 == toks[0] || tok3 == tok2 || err != nil || f.tokenCalls.Load() != 3 {
		t.Errorf("%q %q %v, %d requests", tok2, tok3, err, f.tokenCalls.Load())
	}
}

// TestTokenSharedAcrossReloads: two configs with the same identity share
// one token source until both are cleaned up.
func TestTokenSharedAcrossReloads(t *testing.T) {
	f := newFakeSearch(t)
	entra := func(s *AzureSearch) {
		s.APIKey = ""
		s.Entra = &Entra{ClientID: testClient, ClientSecret: "{env." + secretEnv + "}", TokenURL: f.URL + "/t/oauth2/v2.0/token"}
	}
	s1 := provisionAS(t, f, entra)
	s2 := provisionAS(t, f, entra)
	if s1.creds.(tokenCreds).ts != s2.creds.(tokenCreds).ts {
		t.Fatal("not shared")
	}
	key := s1.poolKey
	s1.Cleanup()
	s2.Cleanup()
	if _, ok := tokenPool.References(key); ok {
		t.Error("still pooled")
	}
}
