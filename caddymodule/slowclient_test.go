package caddymodule

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/tidwall/gjson"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

const streamChatBody = `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`

// bigChunk is one streamed content event of about size bytes.
func bigChunk(size int) []byte {
	return fmt.Appendf(nil, "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"finish_reason\":null,\"delta\":{\"content\":%q}}]}\n\n",
		strings.Repeat("word ", size/5))
}

// serverOpts shape the loopback server in front of the gateway.
type serverOpts struct {
	h2      bool   // HTTP/2 over TLS
	sndBuf  int    // the server sockets' send buffer (0: the system's)
	handled func() // runs when a request's handler has returned
}

// serveGateway runs the gateway behind a real loopback HTTP server, as
// Caddy would: writes reach a socket, so write deadlines apply.
func serveGateway(t *testing.T, g *Gateway, o serverOpts) *httptest.Server {
	t.Helper()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
		_ = g.ServeHTTP(w, r, nil)
		if o.handled != nil {
			o.handled()
		}
	})
	srv := httptest.NewUnstartedServer(h)
	if o.sndBuf > 0 {
		srv.Config.ConnState = func(c net.Conn, st http.ConnState) {
			if tc, ok := c.(*net.TCPConn); ok && st == http.StateNew {
				_ = tc.SetWriteBuffer(o.sndBuf)
			}
		}
	}
	if o.h2 {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv
}

// rawRequest is an HTTP/1.1 chat request as a client writes it.
func rawRequest(body string) string {
	return "POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer " + testKey +
		"\r\nContent-Type: application/json\r\nContent-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n" + body
}

// A client that sends a streamed request and never reads the answer:
// once the socket buffers are full, the gateway's write to it times out
// after client_write_timeout, the relay stops and the upstream request is
// cancelled, its connection closed.
func TestStuckClientReleasesUpstream(t *testing.T) {
	cancelled := make(chan time.Time, 1)
	var sent atomic.Int64
	up := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		ev := bigChunk(32 << 10)
		for r.Context().Err() == nil { // an endless answer
			if _, err := w.Write(ev); err != nil {
				break
			}
			if rc.Flush() != nil {
				break
			}
			sent.Add(int64(len(ev)))
		}
		<-r.Context().Done() // the gateway closed the upstream connection
		cancelled <- time.Now()
	})
	core, logs := observer.New(zapcore.DebugLevel)
	g := newGateway(t, func(g *Gateway) { g.ClientWriteTimeout = caddy.Duration(200 * time.Millisecond) }, azure("a", up.URL, 0))
	g.logger = zap.New(core)
	var handlerDone atomic.Bool
	srv := serveGateway(t, g, serverOpts{handled: func() { handlerDone.Store(true) }})

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() }) // runs before the servers close
	_ = conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	start := time.Now()
	if _, err := io.WriteString(conn, rawRequest(streamChatBody)); err != nil {
		t.Fatal(err)
	}
	// ... and never read.
	select {
	case at := <-cancelled:
		t.Logf("upstream request cancelled %v after the request, %d MB relayed into full buffers", at.Sub(start).Round(time.Millisecond), sent.Load()>>20)
	case <-time.After(10 * time.Second):
		t.Fatalf("upstream still streaming into a client that stopped reading (%d MB sent)", sent.Load()>>20)
	}
	deadline := time.Now().Add(2 * time.Second)
	for !handlerDone.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !handlerDone.Load() {
		t.Fatal("the gateway's handler is still running")
	}
	if logs.FilterMessage("client stopped reading; answer abandoned").Len() != 1 {
		t.Fatalf("the write timeout was not what ended the stream: %v", logs.All())
	}
}

// A client that reads slowly, pausing shorter than client_write_timeout,
// gets the whole of a stream that takes several timeouts to deliver:
// the deadline bounds each write, not the response.
func TestSlowReadingClientGetsWholeStream(t *testing.T) {
	const timeout = 300 * time.Millisecond
	const events = 128
	ev := bigChunk(32 << 10)
	up := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for range events {
			if _, err := w.Write(ev); err != nil {
				return
			}
		}
		_, _ = io.WriteString(w, `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"finish_reason":"stop","delta":{}}]}`+"\n\ndata: [DONE]\n\n")
	})
	g := newGateway(t, func(g *Gateway) { g.ClientWriteTimeout = caddy.Duration(timeout) }, azure("a", up.URL, 0))
	handlerDone := make(chan time.Time, 1)
	// Small socket buffers on both sides: the stream cannot sit in them, the
	// gateway's writes wait for the reader.
	srv := serveGateway(t, g, serverOpts{sndBuf: 64 << 10, handled: func() { handlerDone <- time.Now() }})

	conn := dialSmall(t, srv)
	start := time.Now()
	if _, err := io.WriteString(conn, rawRequest(streamChatBody)); err != nil {
		t.Fatal(err)
	}
	// Read 256 KiB, pause 100ms, and so on.
	paced := &pacedReader{r: conn, every: 256 << 10, pause: 100 * time.Millisecond}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReaderSize(paced, 64<<10), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("stream cut after %d bytes and %v: %v", len(body), time.Since(start), err)
	}
	took := time.Since(start)
	got := strings.Count(string(body), `"content":"word word`)
	if got != events || !strings.HasSuffix(string(body), "data: [DONE]\n\n") || strings.Contains(string(body), `"error"`) {
		t.Fatalf("got %d of %d content events in %d bytes; tail %q", got, events, len(body), body[max(0, len(body)-200):])
	}
	held := (<-handlerDone).Sub(start)
	t.Logf("%d MB streamed to a slow reader in %v, the gateway held back for %v (client_write_timeout %v)",
		len(body)>>20, took.Round(time.Millisecond), held.Round(time.Millisecond), timeout)
	// The gateway's writes waited for the reader longer than one timeout
	// in all: the deadline bounds each write, not the response.
	if held < 2*timeout {
		t.Fatalf("the gateway finished after %v: socket buffers took the stream, the test shows nothing", held)
	}
}

// dialSmall connects to srv with a small receive buffer, so the answer
// cannot sit in it. (Much smaller than loopback's 64 KiB segments makes TCP
// itself stall.)
func dialSmall(t *testing.T, srv *httptest.Server) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.(*net.TCPConn).SetReadBuffer(128 << 10)
	return conn
}

// pacedReader pauses after every `every` bytes read.
type pacedReader struct {
	r     io.Reader
	every int
	pause time.Duration
	since int
}

func (p *pacedReader) Read(b []byte) (int, error) {
	if p.since >= p.every {
		time.Sleep(p.pause)
		p.since = 0
	}
	n, err := p.r.Read(b[:min(len(b), p.every-p.since)])
	p.since += n
	return n, err
}

// An upstream pausing longer than client_write_timeout between events
// does not cut the stream of a client that reads: on HTTP/1, and on
// HTTP/2, where a deadline left armed between writes would reset the
// stream.
func TestUpstreamPausesLongerThanClientWriteTimeout(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "http1", true: "http2"}[h2], func(t *testing.T) {
			up := newFake(t, streamHandler(azureStream[1:6], true, 250*time.Millisecond))
			g := newGateway(t, func(g *Gateway) { g.ClientWriteTimeout = caddy.Duration(100 * time.Millisecond) }, azure("a", up.URL, 0))
			srv := serveGateway(t, g, serverOpts{h2: h2})
			req, _ := http.NewRequest("POST", srv.URL+"/v1/chat/completions", strings.NewReader(streamChatBody))
			req.Header.Set("Authorization", "Bearer "+testKey)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if want := map[bool]int{false: 1, true: 2}[h2]; resp.ProtoMajor != want {
				t.Fatalf("served over %s", resp.Proto)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("stream cut: %v after %q", err, body)
			}
			got := events(string(body))
			if len(got) != 6 || got[5] != "[DONE]" || gjson.Get(got[2], "choices.0.delta.content").Str != "lo" {
				t.Fatalf("events: %q", got)
			}
		})
	}
}

// A stream over HTTP/2 to a client that stops reading is abandoned too.
func TestStuckClientOverHTTP2(t *testing.T) {
	cancelled := make(chan struct{})
	up := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		ev := bigChunk(32 << 10)
		for r.Context().Err() == nil {
			if _, err := w.Write(ev); err != nil || rc.Flush() != nil {
				break
			}
		}
		<-r.Context().Done()
		close(cancelled)
	})
	g := newGateway(t, func(g *Gateway) { g.ClientWriteTimeout = caddy.Duration(200 * time.Millisecond) }, azure("a", up.URL, 0))
	srv := serveGateway(t, g, serverOpts{h2: true})
	req, _ := http.NewRequest("POST", srv.URL+"/v1/chat/completions", strings.NewReader(streamChatBody))
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("served over %s", resp.Proto)
	}
	// Never read: HTTP/2 flow control stops the gateway's writes.
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("upstream still streaming into an HTTP/2 client that stopped reading")
	}
}

// A large non-streamed answer reaches a client that reads it slowly:
// each piece of the body gets the deadline.
func TestSlowClientGetsLargeBody(t *testing.T) {
	content := strings.Repeat("y", 4<<20)
	up := newFake(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":%q}}],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}`, content)
	})
	g := newGateway(t, func(g *Gateway) { g.ClientWriteTimeout = caddy.Duration(300 * time.Millisecond) }, azure("a", up.URL, 0))
	srv := serveGateway(t, g, serverOpts{sndBuf: 64 << 10})
	conn := dialSmall(t, srv)
	if _, err := io.WriteString(conn, rawRequest(chatBody)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(&pacedReader{r: conn, every: 256 << 10, pause: 100 * time.Millisecond}), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil || gjson.GetBytes(body, "choices.0.message.content").Str != content {
		t.Fatalf("%d bytes after %v: %v", len(body), time.Since(start), err)
	}
	if took := time.Since(start); took < time.Second {
		t.Fatalf("the body took %v: too fast to show the deadline is per piece", took)
	}
}

func TestClientWriteTimeoutConfig(t *testing.T) {
	if g := newGateway(t, nil, azure("a", "http://127.0.0.1:9", 0)); time.Duration(g.ClientWriteTimeout) != 30*time.Second {
		t.Fatalf("default client_write_timeout = %v", time.Duration(g.ClientWriteTimeout))
	}
	adapt := func(sub string) (gjson.Result, error) {
		in := ":8080 {\n\tllm_gateway {\n\t\tmodel gpt-4o main\n\t\tpool main {\n\t\t\tazure {\n\t\t\t\tendpoint https://east.openai.azure.com\n\t\t\t\tdeployment gpt-4o\n\t\t\t\tapi_key {env.K}\n\t\t\t}\n\t\t}\n\t\t" + sub + "\n\t}\n}\n"
		out, _, err := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}.Adapt([]byte(in), nil)
		return gjson.GetBytes(out, "apps.http.servers.srv0.routes.0.handle.0.client_write_timeout"), err
	}
	for sub, want := range map[string]string{
		"client_write_timeout 5s":  "5000000000",
		"client_write_timeout off": "-1",
	} {
		got, err := adapt(sub)
		if err != nil || got.Raw != want {
			t.Errorf("%s: %s, %v; want %s", sub, got.Raw, err, want)
		}
	}
	for sub, want := range map[string]string{
		"client_write_timeout":       "expected exactly one value",
		"client_write_timeout 1s 2s": "expected exactly one value",
		"client_write_timeout soon":  `"soon" is not a duration`,
		"client_write_timeout 0":     "must be positive (use off to disable)",
		"client_write_timeout -1s":   "must be positive",
	} {
		if _, err := adapt(sub); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", sub, err, want)
		}
	}
	// Disabled: streams are written without a deadline.
	up := newFake(t, streamHandler(azureStream[1:6], true, 0))
	g := newGateway(t, func(g *Gateway) { g.ClientWriteTimeout = -1 }, azure("a", up.URL, 0))
	srv := serveGateway(t, g, serverOpts{sndBuf: 64 << 10})
	req, _ := http.NewRequest("POST", srv.URL+"/v1/chat/completions", strings.NewReader(streamChatBody))
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasSuffix(string(body), "data: [DONE]\n\n") {
		t.Fatalf("disabled timeout: %q", body)
	}
}
