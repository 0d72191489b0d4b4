package caddymodule

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
)

// BenchmarkOpenStreams measures what an open, slow stream keeps: many
// streams are held open at once (each has sent its first tokens and waits
// for the rest), then the live heap and the goroutine stacks are read
// and divided by the number of streams. Clients and upstream live in the
// same process and cost the same in every variant, so the difference
// between a variant and reverse_proxy (net/http/httputil's) is what the
// gateway adds per stream; the load harness (cmd/loadgen) measures the
// same against Caddy's reverse_proxy in RSS.
//
//	go test -run '^$' -bench OpenStreams -benchtime 1x ./caddymodule/
func BenchmarkOpenStreams(b *testing.B) {
	const streams = 400
	for _, v := range []struct {
		name  string
		front func(b *testing.B, up *pausedUpstream) http.Handler
	}{
		{"reverse_proxy", func(b *testing.B, up *pausedUpstream) http.Handler {
			u, _ := url.Parse(up.URL)
			rp := httputil.NewSingleHostReverseProxy(u)
			rp.FlushInterval = -1
			rp.Transport = newTransport()
			return rp
		}},
		{"gateway", func(b *testing.B, up *pausedUpstream) http.Handler {
			return gatewayHandler(newGateway(b, nil, azure("a", up.URL, 0)))
		}},
		{"full_policy", func(b *testing.B, up *pausedUpstream) http.Handler {
			g, main := fullPolicyGateway(b)
			main.handler = up.Config.Handler.ServeHTTP
			return gatewayHandler(g)
		}},
		// The upstream speaks HTTP/2 (h2c): its side changes too.
		{"gateway_h2c", func(b *testing.B, up *pausedUpstream) http.Handler {
			cfg := azure("a", up.URL, 0)
			cfg.H2C = true
			return gatewayHandler(newGateway(b, nil, cfg))
		}},
	} {
		b.Run(v.name, func(b *testing.B) {
			up := newPausedUpstream(b)
			front := httptest.NewServer(v.front(b, up))
			defer front.Close()
			body := `{"model":"gpt-4o","stream":true,"messages":[{"role":"system","content":"You are a support agent."},{"role":"user","content":"My soundbar stopped producing sound after the firmware update. What can I do? (see [doc1] and [doc2])"}],"max_tokens":300}`
			for b.Loop() {
				heap, stack, gs := holdStreams(b, front.URL+"/v1/chat/completions", body, streams, up, nil)
				b.ReportMetric(heap, "heap-B/stream")
				b.ReportMetric(stack, "stack-B/stream")
				b.ReportMetric(gs, "goroutines/stream")
				b.ReportMetric(startingStack(), "start-stack-B")
			}
		})
	}
}

// fullPolicyGateway is BenchmarkGatewayFullPolicy's gateway: the load
// harness's policy and modules.
func fullPolicyGateway(b *testing.B) (*Gateway, *fakeUpstream) {
	return groundedGateway(b, fullPolicy, func(g *Gateway) {
		g.FiltersRaw = map[string]json.RawMessage{
			"pii":              json.RawMessage(`{"filter":"pii","entities":["credit_card","iban","ssn"],"actions":{"input":"redact","context":"redact","output":"redact"}}`),
			"prompt_injection": json.RawMessage(`{"filter":"prompt_injection","actions":{"input":"block","context":"block"}}`),
		}
		g.PostRaw = map[string]json.RawMessage{"citations": json.RawMessage(`{"post":"citations","format":"[{number}]({url})"}`)}
		g.AuditRaw = json.RawMessage(`{"post":"audit","jsonl":{"path":` + jsonQuote(filepath.Join(b.TempDir(), "audit.jsonl")) + `}}`)
	})
}

func gatewayHandler(g *Gateway) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Set("Authorization", "Bearer "+testKey)
		_ = g.ServeHTTP(w, r, nil)
	})
}

// pausedUpstream streams the start of an answer, then holds every stream
// until release is closed. It speaks HTTP/1.1 and h2c.
type pausedUpstream struct {
	*httptest.Server
	mu      sync.Mutex
	release chan struct{}
}

func newPausedUpstream(b *testing.B) *pausedUpstream {
	p := &pausedUpstream{release: make(chan struct{})}
	p.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		p.mu.Lock()
		release := p.release
		p.mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for _, e := range azureStream[:3] {
			_, _ = fmt.Fprintf(w, "data: %s\n\n", e)
		}
		_ = rc.Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		for _, e := range azureStream[3:] {
			_, _ = fmt.Fprintf(w, "data: %s\n\n", e)
		}
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
	}))
	p.Config.Protocols = new(http.Protocols)
	p.Config.Protocols.SetHTTP1(true)
	p.Config.Protocols.SetUnencryptedHTTP2(true)
	p.Start()
	b.Cleanup(p.Close)
	return p
}

// open makes the next streams wait; finish lets the waiting ones end.
func (p *pausedUpstream) finish() {
	p.mu.Lock()
	close(p.release)
	p.release = make(chan struct{})
	p.mu.Unlock()
}

// holdStreams opens n streams, each on a connection of its own, and once
// every client has its first token measures the live heap and the stacks
// per stream against before they opened (atOpen, if set, runs then too).
// Then it lets them end.
func holdStreams(b *testing.B, target, body string, n int, up *pausedUpstream, atOpen func()) (heap, stack, goroutines float64) {
	b.Helper()
	before := settledMemStats()
	g0 := runtime.NumGoroutine()
	var started, ended sync.WaitGroup
	errs := make(chan error, n)
	transports := make([]*http.Transport, n)
	for i := range n {
		started.Add(1)
		ended.Add(1)
		transports[i] = &http.Transport{DisableKeepAlives: true, DisableCompression: true}
		go func(tr *http.Transport) {
			defer ended.Done()
			first := false
			defer func() {
				if !first {
					started.Done()
				}
			}()
			resp, err := (&http.Client{Transport: tr}).Post(target, "application/json", strings.NewReader(body))
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			for {
				line, err := br.ReadBytes('\n')
				if err != nil {
					if err != io.EOF || !first {
						errs <- fmt.Errorf("status %d, stream ended early: %v", resp.StatusCode, err)
					}
					return
				}
				if !first && bytes.Contains(line, []byte(`"content":"`)) {
					first = true
					started.Done()
				}
			}
		}(transports[i])
	}
	started.Wait()
	g1 := runtime.NumGoroutine()
	if atOpen != nil {
		atOpen()
	}
	open := settledMemStats()
	up.finish()
	ended.Wait()
	for _, tr := range transports {
		tr.CloseIdleConnections()
	}
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return float64(int64(open.HeapAlloc)-int64(before.HeapAlloc)) / float64(n),
		float64(int64(open.StackInuse)-int64(before.StackInuse)) / float64(n),
		float64(g1-g0) / float64(n)
}

// settledMemStats reads the memory statistics after a full collection:
// HeapAlloc is then the live heap. Stacks are read before, as the
// collections the benchmark forces would shrink them more than a running
// server's do.
func settledMemStats() runtime.MemStats {
	var stacks runtime.MemStats
	runtime.ReadMemStats(&stacks)
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	m.StackInuse = stacks.StackInuse
	return m
}

// startingStack is the stack size new goroutines start with: the runtime
// sets it from the average stack it scanned in the last collection.
func startingStack() float64 {
	s := []metrics.Sample{{Name: "/gc/stack/starting-size:bytes"}}
	metrics.Read(s)
	return float64(s[0].Value.Uint64())
}

// BenchmarkStreamEvents measures what relaying one streamed event
// allocates with the full policy (output filters, citations): the
// difference between a long and a short answer, per event. Garbage made
// per event is what makes thousands of open streams run collections
// that let the heap grow to twice its live size.
//
//	go test -run '^$' -bench StreamEvents ./caddymodule/
func BenchmarkStreamEvents(b *testing.B) {
	const long = 64
	g, main := fullPolicyGateway(b)
	body := `{"model":"gpt-4o","stream":true,"messages":[{"role":"system","content":"You are a support agent."},{"role":"user","content":"My soundbar stopped producing sound after the firmware update. What can I do? (see [doc1] and [doc2])"}],"max_tokens":300}`
	run := func(events int) (alloc, mallocs uint64) {
		main.handler = tokenStreamHandler(events)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		w := &discardWriter{h: http.Header{}}
		req := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testKey)
		_ = g.ServeHTTP(w, req, nil)
		runtime.ReadMemStats(&after)
		if w.status != http.StatusOK || !bytes.HasSuffix(w.last, doneEvent) {
			b.Fatalf("status %d, last write %q", w.status, w.last)
		}
		return after.TotalAlloc - before.TotalAlloc, after.Mallocs - before.Mallocs
	}
	var perByte, perAlloc float64
	for b.Loop() {
		b1, a1 := run(1)
		bn, an := run(long + 1)
		perByte += float64(int64(bn)-int64(b1)) / long
		perAlloc += float64(int64(an)-int64(a1)) / long
	}
	b.ReportMetric(perByte/float64(b.N), "B/event")
	b.ReportMetric(perAlloc/float64(b.N), "allocs/event")
}

// tokenStreamHandler streams an answer of n content chunks shaped as
// Azure's (and the simulator's), with citations in it, then the finish,
// usage and [DONE].
func tokenStreamHandler(n int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		const tail = `],"created":1733,"id":"chatcmpl-b1","model":"gpt-4o-2024-08-06","object":"chat.completion.chunk","system_fingerprint":"fp_1","usage":null}` + "\n\n"
		_, _ = io.WriteString(w, `data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}}}],"usage":null}`+"\n\n")
		_, _ = io.WriteString(w, `data: {"choices":[{"content_filter_results":{},"delta":{"content":"","refusal":null,"role":"assistant"},"finish_reason":null,"index":0,"logprobs":null}`+tail)
		words := []string{"Unplug", " the", " soundbar", " for", " thirty", " seconds", " [doc1]", " then", " update", " again", " [doc2]", "."}
		for i := range n {
			_, _ = io.WriteString(w, `data: {"choices":[{"content_filter_results":{"hate":{"filtered":false,"severity":"safe"},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":false,"severity":"safe"}},"delta":{"content":`+jsonQuote(words[i%len(words)])+`},"finish_reason":null,"index":0,"logprobs":null}`+tail)
			_ = rc.Flush()
		}
		_, _ = io.WriteString(w, `data: {"choices":[{"content_filter_results":{},"delta":{},"finish_reason":"stop","index":0,"logprobs":null}`+tail)
		_, _ = io.WriteString(w, `data: {"choices":[],"created":1733,"id":"chatcmpl-b1","model":"gpt-4o-2024-08-06","object":"chat.completion.chunk","system_fingerprint":"fp_1","usage":{"completion_tokens":`+fmt.Sprint(n)+`,"prompt_tokens":900,"total_tokens":`+fmt.Sprint(900+n)+`}}`+"\n\n")
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
	}
}

// discardWriter is a flushable response writer that keeps only the
// status and the last write, so a benchmark counts the gateway's
// allocations, not a recorder's.
type discardWriter struct {
	h      http.Header
	status int
	last   []byte
}

func (d *discardWriter) Header() http.Header { return d.h }
func (d *discardWriter) WriteHeader(s int) {
	if d.status == 0 {
		d.status = s
	}
}
func (d *discardWriter) Write(p []byte) (int, error) {
	if d.status == 0 {
		d.status = http.StatusOK
	}
	d.last = append(d.last[:0], p...)
	return len(p), nil
}
func (d *discardWriter) Flush() {}
