package caddymodule

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/tidwall/gjson"
)

// h2Upstream is an upstream that speaks HTTP/2, over TLS (as Azure does)
// or in clear text with prior knowledge (h2c), and counts the
// connections it accepts and the protocol of each request.
type h2Upstream struct {
	*httptest.Server
	conns  atomic.Int64
	http1  atomic.Int64 // requests that did not arrive over HTTP/2
	handle atomic.Pointer[http.HandlerFunc]
}

func newH2Upstream(t *testing.T, h2c bool, handle http.HandlerFunc) *h2Upstream {
	u := &h2Upstream{}
	u.handle.Store(&handle)
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			u.http1.Add(1)
		}
		(*u.handle.Load())(w, r)
	}))
	u.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			u.conns.Add(1)
		}
	}
	if h2c {
		u.Config.Protocols = new(http.Protocols)
		u.Config.Protocols.SetUnencryptedHTTP2(true)
		u.Start()
	} else {
		u.EnableHTTP2 = true
		u.StartTLS()
	}
	t.Cleanup(u.Close)
	return u
}

// trustUpstreams makes the gateway's transport trust httptest's TLS
// certificate (every httptest server has the same one).
func trustUpstreams(g *Gateway, u *h2Upstream) {
	pool := x509.NewCertPool()
	pool.AddCert(u.Certificate())
	g.transport.TLSClientConfig = &tls.Config{RootCAs: pool}
}

// heldStream answers a chat stream's first token, waits for release (or
// the request's end, which it reports on reset), then finishes.
func heldStream(release <-chan struct{}, arrived, reset func()) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for _, e := range azureStream[:3] {
			fmt.Fprintf(w, "data: %s\n\n", e)
		}
		_ = rc.Flush()
		arrived()
		select {
		case <-release:
		case <-r.Context().Done():
			reset()
			return
		}
		for _, e := range azureStream[3:] {
			fmt.Fprintf(w, "data: %s\n\n", e)
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
	}
}

// streamThrough sends a chat stream through the gateway as a client with
// ctx would, returning what it received.
func streamThrough(ctx context.Context, g *Gateway, w http.ResponseWriter) error {
	req := httptest.NewRequestWithContext(ctx, "POST", "/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+testKey)
	return g.ServeHTTP(w, req, nil)
}

// completeStream reports whether body is a whole relayed stream.
func completeStream(body string) bool {
	return strings.Contains(body, `"content":"Hel"`) && strings.Contains(body, `"content":"lo"`) && strings.HasSuffix(body, "data: [DONE]\n\n")
}

// Over TLS the gateway speaks HTTP/2 to an upstream that offers it, and
// concurrent streams share one connection.
func TestUpstreamHTTP2OverTLSSharesOneConnection(t *testing.T) {
	testConcurrentStreamsShareConnection(t, false)
}

// h2c: the same in clear text, with prior knowledge.
func TestUpstreamH2CSharesOneConnection(t *testing.T) {
	testConcurrentStreamsShareConnection(t, true)
}

func testConcurrentStreamsShareConnection(t *testing.T, h2c bool) {
	const n = 20
	up := newH2Upstream(t, h2c, okHandler)
	cfg := azure("a", up.URL, 0)
	cfg.H2C = h2c
	g := newGateway(t, nil, cfg)
	if !h2c {
		trustUpstreams(g, up)
	}
	// A first request opens the connection (a burst on a cold upstream
	// dials a few, the transport keeps one).
	if r := do(t, g, "POST", "/v1/chat/completions", chatBody); r.status != 200 {
		t.Fatalf("first request: %d %s", r.status, r.body)
	}
	release := make(chan struct{})
	var arrived sync.WaitGroup
	arrived.Add(n)
	held := heldStream(release, arrived.Done, func() {})
	up.handle.Store(&held)
	recs := make([]*httptest.ResponseRecorder, n)
	var done sync.WaitGroup
	for i := range recs {
		recs[i] = httptest.NewRecorder()
		done.Add(1)
		go func() {
			defer done.Done()
			_ = streamThrough(context.Background(), g, recs[i])
		}()
	}
	arrived.Wait() // all n streams are open upstream at once
	close(release)
	done.Wait()
	for i, r := range recs {
		if r.Code != 200 || !completeStream(r.Body.String()) {
			t.Fatalf("stream %d: %d %q", i, r.Code, r.Body.String())
		}
	}
	if up.http1.Load() != 0 || up.conns.Load() != 1 {
		t.Fatalf("%d requests over HTTP/1, %d connections for %d concurrent streams", up.http1.Load(), up.conns.Load(), n)
	}
}

// A client that leaves resets its own HTTP/2 stream upstream; the stream
// sharing the connection goes on to its end, on the same connection.
func TestUpstreamHTTP2ClientAbortResetsOnlyItsStream(t *testing.T) {
	release := make(chan struct{})
	firsts, resets := make(chan struct{}, 2), make(chan struct{}, 2)
	up := newH2Upstream(t, false, heldStream(release, func() { firsts <- struct{}{} }, func() { resets <- struct{}{} }))
	g := newGateway(t, nil, azure("a", up.URL, 0))
	trustUpstreams(g, up)

	stay := httptest.NewRecorder()
	stayDone := make(chan struct{})
	go func() {
		defer close(stayDone)
		_ = streamThrough(context.Background(), g, stay)
	}()
	<-firsts
	ctx, leave := context.WithCancel(context.Background())
	gone := &watchWriter{ResponseRecorder: httptest.NewRecorder(), seen: `"content":"Hel"`, onSeen: leave}
	leftDone := make(chan struct{})
	go func() {
		defer close(leftDone)
		_ = streamThrough(ctx, g, gone)
	}()
	<-firsts
	select {
	case <-resets: // the leaving client's stream, reset upstream
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream never saw the left stream reset")
	}
	<-leftDone
	close(release)
	<-stayDone
	if stay.Code != 200 || !completeStream(stay.Body.String()) {
		t.Fatalf("the other stream: %d %q", stay.Code, stay.Body.String())
	}
	if len(resets) != 0 || up.conns.Load() != 1 || up.http1.Load() != 0 {
		t.Fatalf("%d more resets, %d connections, %d HTTP/1 requests", len(resets), up.conns.Load(), up.http1.Load())
	}
}

// Failover works over HTTP/2 as over HTTP/1: an error answer, and a
// stream reset before its first token, each move the request on.
func TestUpstreamHTTP2Failover(t *testing.T) {
	for name, fail := range map[string]http.HandlerFunc{
		"503": statusHandler(http.StatusServiceUnavailable),
		"reset before the first token": func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprintf(w, "data: %s\n\n", azureStream[0])
			_ = http.NewResponseController(w).Flush()
			panic(http.ErrAbortHandler) // RST_STREAM on this stream only
		},
	} {
		t.Run(name, func(t *testing.T) {
			bad := newH2Upstream(t, false, fail)
			good := newH2Upstream(t, false, streamHandler(azureStream, true, 0))
			g := newGateway(t, nil, azure("bad", bad.URL, 0), azure("good", good.URL, 1))
			trustUpstreams(g, bad)
			r := do(t, g, "POST", "/v1/chat/completions", `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
			if r.status != 200 || !completeStream(r.body) || r.ex["llm.upstream"] != "good" || r.ex["llm.attempts"] != 2 {
				t.Fatalf("%d upstream %v attempts %v: %q", r.status, r.ex["llm.upstream"], r.ex["llm.attempts"], r.body)
			}
			if bad.http1.Load()+good.http1.Load() != 0 {
				t.Fatal("a request went over HTTP/1")
			}
		})
	}
}

func TestH2CConfig(t *testing.T) {
	adapter := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}
	out, _, err := adapter.Adapt([]byte(`:8080 {
	llm_gateway {
		model gpt-4o main
		pool main {
			openai sidecar {
				endpoint http://127.0.0.1:9000/v1
				model gpt-4o
				api_key k
				h2c
			}
		}
	}
}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !gjson.GetBytes(out, "apps.http.servers.srv0.routes.0.handle.0.pools.0.upstreams.0.h2c").Bool() {
		t.Fatalf("h2c not in the adapted config: %s", out)
	}
	err = new(Gateway).UnmarshalCaddyfile(caddyfile.NewTestDispenser("llm_gateway {\npool p {\nazure {\nh2c yes\n}\n}\n}"))
	if err == nil || !strings.Contains(err.Error(), `h2c takes no arguments, got "yes"`) {
		t.Fatalf("h2c with an argument: %v", err)
	}
	cfg := azure("tls", "https://east.openai.azure.com", 0)
	cfg.H2C = true
	g := &Gateway{Models: []ModelConfig{{Alias: "gpt-4o", Pool: "main"}}, Pools: []PoolConfig{{Name: "main", Upstreams: []UpstreamConfig{cfg}}}}
	g.client = &http.Client{}
	if err := g.provisionPools(); err == nil || !strings.Contains(err.Error(), `tls: h2c is unencrypted HTTP/2 to an http:// endpoint`) {
		t.Fatalf("h2c with an https endpoint: %v", err)
	}
}
