package integration

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// A pool whose upstream has h2c, in a Caddyfile loaded into Caddy, calls
// the simulator (behind a listener that speaks only HTTP/2 in clear text)
// over HTTP/2, and concurrent streams come back whole.
func TestH2CUpstreamThroughCaddy(t *testing.T) {
	var overHTTP2, other atomic.Int64
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 {
			overHTTP2.Add(1)
		} else {
			other.Add(1)
		}
		simMu.Lock()
		h := simCurrent
		simMu.Unlock()
		h.ServeHTTP(w, r)
	})}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetUnencryptedHTTP2(true)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })

	load(t, caddyfile(fmt.Sprintf(`model gpt-4o-h2c h2c
		pool h2c {
			azure {
				endpoint http://127.0.0.1:%d
				deployment gpt-4o
				api_key {env.GG_SIM_KEY}
				h2c
			}
		}`, l.Addr().(*net.TCPAddr).Port), ""))

	const n = 8
	bodies := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := `{"model":"gpt-4o-h2c","stream":true,"messages":[{"role":"user","content":"How do I reset my soundbar?"}]}`
			req, _ := http.NewRequestWithContext(t.Context(), "POST", gatewayURL("/v1/chat/completions"), strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+demoKey)
			resp, err := plainClient.Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			bodies[i], errs[i] = fmt.Sprintf("%d %s", resp.StatusCode, b), err
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || !strings.HasPrefix(bodies[i], "200 ") || !strings.HasSuffix(bodies[i], "data: [DONE]\n\n") || !strings.Contains(bodies[i], `"content":"`) {
			t.Fatalf("stream %d: %v %q", i, errs[i], bodies[i])
		}
	}
	if overHTTP2.Load() != n || other.Load() != 0 {
		t.Fatalf("upstream saw %d requests over HTTP/2 and %d otherwise, want %d and 0", overHTTP2.Load(), other.Load(), n)
	}
}
