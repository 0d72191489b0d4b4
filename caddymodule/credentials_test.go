package caddymodule

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestEntraTokenFetchedCachedAndRefreshed(t *testing.T) {
	var issued atomic.Int64
	var form url.Values
	var mu sync.Mutex
	var idp *fakeUpstream
	idp = newFake(t, func(w http.ResponseWriter, r *http.Request) {
		_, body := idp.lastRequest()
		mu.Lock()
		form, _ = url.ParseQuery(string(body))
		mu.Unlock()
		n := issued.Add(1)
		_, _ = fmt.Fprintf(w, `{"token_type":"Bearer","expires_in":3599,"access_token":"tok-%d"}`, n)
	})
	up := newFake(t, okHandler)
	t.Setenv("GG_TEST_SECRET", "s3cret-value")
	uc := UpstreamConfig{Name: "entra", Endpoint: up.URL, Deployment: "gpt-4o", Entra: &EntraConfig{
		ClientID: "client-1", ClientSecret: "{env.GG_TEST_SECRET}", TokenURL: idp.URL + "/tenant/oauth2/v2.0/token",
	}}
	g := newGateway(t, nil, uc)

	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); do(t, g, "POST", "/v1/chat/completions", chatBody) }()
	}
	wg.Wait()
	if n := issued.Load(); n != 1 {
		t.Fatalf("token endpoint called %d times for 20 concurrent requests, want 1", n)
	}
	req, _ := up.lastRequest()
	if req.Header.Get("Authorization") != "Bearer tok-1" || req.Header.Get("api-key") != "" {
		t.Fatalf("upstream auth %q", req.Header.Get("Authorization"))
	}
	mu.Lock()
	if form.Get("grant_type") != "client_credentials" || form.Get("client_id") != "client-1" ||
		form.Get("client_secret") != "s3cret-value" || form.Get("scope") != "https://cognitiveservices.azure.com/.default" {
		t.Fatalf("token request form: %v", form)
	}
	mu.Unlock()

	// Near expiry the token is refreshed in the background while the
	// current one is still used; the next requests carry the new one.
	ts := g.pools["main"].upstreams[0].creds.(entraCreds).src
	ts.SetClock(func() time.Time { return time.Now().Add(3599*time.Second - 4*time.Minute) })
	deadline := time.Now().Add(3 * time.Second)
	for {
		do(t, g, "POST", "/v1/chat/completions", chatBody)
		req, _ = up.lastRequest()
		if req.Header.Get("Authorization") == "Bearer tok-2" {
			break
		}
		if req.Header.Get("Authorization") != "Bearer tok-1" || time.Now().After(deadline) {
			t.Fatalf("token not refreshed before expiry: %q", req.Header.Get("Authorization"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := issued.Load(); n != 2 {
		t.Fatalf("%d tokens issued, want 2 (one refresh)", n)
	}
	// Past expiry, a new token is fetched inline.
	ts.SetClock(func() time.Time { return time.Now().Add(2 * time.Hour) })
	do(t, g, "POST", "/v1/chat/completions", chatBody)
	req, _ = up.lastRequest()
	if req.Header.Get("Authorization") != "Bearer tok-3" {
		t.Fatalf("expired token not replaced inline: %q", req.Header.Get("Authorization"))
	}
}

func TestEntraFailureNamesNoSecret(t *testing.T) {
	idp := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(400)
		_, _ = io.WriteString(w, `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x"}`)
	})
	up := newFake(t, okHandler)
	g := newGateway(t, func(g *Gateway) { g.MaxAttempts = 1 }, UpstreamConfig{Name: "entra", Endpoint: up.URL, Deployment: "d",
		Entra: &EntraConfig{ClientID: "c", ClientSecret: "very-secret-value", TokenURL: idp.URL}})
	r := do(t, g, "POST", "/v1/chat/completions", chatBody)
	assertOpenAIError(t, r, 502, "upstream_error")
	if strings.Contains(r.body, "very-secret-value") || !strings.Contains(r.body, "credentials") {
		t.Fatalf("body: %s", r.body)
	}
	if up.calls.Load() != 0 {
		t.Fatal("upstream called without credentials")
	}
}

// loopback_api_key stands in for an empty api_key on a loopback endpoint
// only: a real endpoint never receives it, and a set key always wins.
func TestLoopbackAPIKey(t *testing.T) {
	up := newFake(t, okHandler) // on 127.0.0.1
	t.Setenv("GG_EMPTY_KEY", "")
	uc := UpstreamConfig{Name: "sim", Endpoint: up.URL, Deployment: "gpt-4o", APIKey: "{env.GG_EMPTY_KEY}", LoopbackAPIKey: "simulator-key"}
	g := newGateway(t, nil, uc)
	if r := do(t, g, "POST", "/v1/chat/completions", chatBody); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if req, _ := up.lastRequest(); req.Header.Get("api-key") != "simulator-key" {
		t.Fatalf("api-key sent: %q", req.Header.Get("api-key"))
	}

	t.Setenv("GG_EMPTY_KEY", "real-key")
	g = newGateway(t, nil, uc)
	do(t, g, "POST", "/v1/chat/completions", chatBody)
	if req, _ := up.lastRequest(); req.Header.Get("api-key") != "real-key" {
		t.Fatalf("api-key sent: %q", req.Header.Get("api-key"))
	}

	t.Setenv("GG_EMPTY_KEY", "")
	for _, endpoint := range []string{"https://contoso.openai.azure.com", "http://10.0.0.8:8081"} {
		uc.Endpoint = endpoint
		g := &Gateway{Models: []ModelConfig{{Alias: "gpt-4o", Pool: "main"}}, Pools: []PoolConfig{{Name: "main", Upstreams: []UpstreamConfig{uc}}}}
		err := g.provisionPools()
		if err == nil || !strings.Contains(err.Error(), "{env.GG_EMPTY_KEY} is empty") {
			t.Fatalf("%s: err = %v", endpoint, err)
		}
	}
}
