package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

// Fault tests: a pool of two Azure deployments, the simulator (healthy)
// and a loopback fake (flaky) whose behaviour each test switches, under
// concurrent streamed and non-streamed load through the real Caddy.

type fault int32

const (
	faultNone               fault = iota
	fault500                      // 500 InternalServerError
	fault429                      // 429 with retry-after and retry-after-ms
	faultHang                     // no answer until the gateway gives up
	faultResetBeforeHeaders       // the connection reset before any response byte
	faultResetBeforeContent       // streams: headers and the annotation and role chunks, then a reset
	faultResetAfterContent        // streams: two content chunks, then a reset
	faultEndless                  // streams: content chunks until the gateway hangs up
)

// flaky is an Azure OpenAI deployment on loopback whose fault the test
// sets. It checks the Azure wire shape of what it receives.
type flaky struct {
	*httptest.Server
	fault     atomic.Int32
	delay     atomic.Int64 // healthy answers wait this long (ns)
	calls     atomic.Int64
	cancelled chan struct{} // faultEndless: closed when the gateway hung up
	wireErr   atomic.Value  // first wire-shape violation seen (string)
}

const flakyDeployment = "gpt-4o-flaky"

func newFlaky(t *testing.T) *flaky {
	f := &flaky{cancelled: make(chan struct{})}
	var once sync.Once
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.URL.Path != "/openai/deployments/"+flakyDeployment+"/chat/completions" ||
			r.URL.Query().Get("api-version") == "" || r.Header.Get("Api-Key") != os.Getenv("GG_SIM_KEY") || !gjson.ValidBytes(body) {
			f.wireErr.CompareAndSwap(nil, fmt.Sprintf("%s %s api-key=%t body=%.80s", r.Method, r.URL, r.Header.Get("Api-Key") != "", body))
			http.Error(w, `{"error":{"code":"404","message":"Resource not found"}}`, http.StatusNotFound)
			return
		}
		stream := gjson.GetBytes(body, "stream").Bool()
		switch fault(f.fault.Load()) {
		case fault500:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, `{"error":{"code":"InternalServerError","message":"The server had an error while processing your request. Sorry about that!"}}`)
		case fault429:
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Retry-After", "1")
			w.Header().Set("Retry-After-Ms", "100")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(w, `{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 1 second."}}`)
		case faultHang:
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		case faultResetBeforeHeaders:
			resetConn(w)
		case faultResetBeforeContent:
			if !stream {
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, `{"id":"chatcmpl-flaky","object":"chat.completion","choi`)
				_ = http.NewResponseController(w).Flush()
				resetConn(w)
				return
			}
			sseHead(w)
			writeEvents(w, promptAnnotation, roleChunk)
			resetConn(w)
		case faultResetAfterContent:
			if !stream {
				okAnswer(w, false)
				return
			}
			sseHead(w)
			writeEvents(w, promptAnnotation, roleChunk, contentChunk("Partial "), contentChunk("answer"))
			time.Sleep(50 * time.Millisecond) // let them reach the client first
			resetConn(w)
		case faultEndless:
			sseHead(w)
			rc := http.NewResponseController(w)
			ev := "data: " + contentChunk(strings.Repeat("word ", 6000)) + "\n\n"
			for r.Context().Err() == nil {
				if _, err := io.WriteString(w, ev); err != nil || rc.Flush() != nil {
					break
				}
			}
			<-r.Context().Done()
			once.Do(func() { close(f.cancelled) })
		default:
			if d := time.Duration(f.delay.Load()); d > 0 {
				time.Sleep(d)
			}
			okAnswer(w, stream)
		}
	}))
	t.Cleanup(f.Close)
	t.Cleanup(func() {
		if v := f.wireErr.Load(); v != nil {
			t.Errorf("the flaky deployment got a request not in Azure's shape: %s", v)
		}
	})
	return f
}

func (f *flaky) set(x fault) { f.fault.Store(int32(x)) }

const (
	promptAnnotation = `{"id":"","object":"","created":0,"model":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}}}],"choices":[]}`
	roleChunk        = `{"id":"chatcmpl-flaky","object":"chat.completion.chunk","created":1,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"finish_reason":null,"delta":{"role":"assistant","content":""}}]}`
)

func contentChunk(s string) string {
	return fmt.Sprintf(`{"id":"chatcmpl-flaky","object":"chat.completion.chunk","created":1,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"finish_reason":null,"delta":{"content":%q}}]}`, s)
}

func sseHead(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.WriteHeader(http.StatusOK)
}

func writeEvents(w http.ResponseWriter, events ...string) {
	for _, e := range events {
		_, _ = fmt.Fprintf(w, "data: %s\n\n", e)
	}
	_ = http.NewResponseController(w).Flush()
}

func okAnswer(w http.ResponseWriter, stream bool) {
	if !stream {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"chatcmpl-flaky","object":"chat.completion","created":1,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"Your order ships tomorrow."}}],"usage":{"prompt_tokens":20,"completion_tokens":5,"total_tokens":25}}`)
		return
	}
	sseHead(w)
	writeEvents(w, promptAnnotation, roleChunk, contentChunk("Your order "), contentChunk("ships tomorrow."),
		`{"id":"chatcmpl-flaky","object":"chat.completion.chunk","created":1,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"finish_reason":"stop","delta":{}}]}`,
		`{"id":"chatcmpl-flaky","object":"chat.completion.chunk","created":1,"model":"gpt-4o-2024-08-06","choices":[],"usage":{"prompt_tokens":20,"completion_tokens":5,"total_tokens":25}}`,
		"[DONE]")
}

// resetConn takes the connection from net/http and resets it (RST, not
// FIN), as a crashing server or a middlebox does.
func resetConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	conn.Close()
}

const faultsModel = "gpt-4o-faults"

// faultsConfig is the test Caddyfile: model gpt-4o-faults served by the
// simulator (healthy) and f (flaky), plus extra gateway lines and
// simulator settings.
func faultsConfig(f *flaky, healthyPriority int, extra string, sim ...string) string {
	return caddyfile(fmt.Sprintf(`model %s faults
		pool faults {
			azure healthy {
				endpoint http://127.0.0.1:%d
				deployment gpt-4o
				api_key {env.GG_SIM_KEY}
				priority %d
			}
			azure flaky {
				endpoint %s
				deployment %s
				api_key {env.GG_SIM_KEY}
			}
		}
		%s`, faultsModel, simPort, healthyPriority, f.URL, flakyDeployment, extra), strings.Join(sim, "\n"))
}

// outcome is one request's result as its client saw it.
type outcome struct {
	stream     bool
	start, end time.Time
	status     int
	errCode    string // the error's code, in a body or an event
	problem    string // why the client would call it a failure ("" if none)
	content    string
	budgeted   bool // the answer carries x-ratelimit headers: the budget store took part
}

// newLoadClient is a client with keep-alive connections of its own.
func newLoadClient(t *testing.T) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 32}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// chatOnce sends one chat request and reads the whole answer as an
// OpenAI client would, stream or not.
func chatOnce(ctx context.Context, c *http.Client, model string, stream bool) (o outcome) {
	o = outcome{stream: stream, start: time.Now()}
	defer func() { o.end = time.Now() }()
	body := fmt.Sprintf(`{"model":%q,"stream":%t,"messages":[{"role":"user","content":"Where is my order?"}]}`, model, stream)
	req, _ := http.NewRequestWithContext(ctx, "POST", gatewayURL("/v1/chat/completions"), strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+demoKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		o.problem = "transport: " + err.Error()
		return o
	}
	defer resp.Body.Close()
	o.status = resp.StatusCode
	o.budgeted = resp.Header.Get("X-Ratelimit-Limit-Tokens") != ""
	if resp.StatusCode != 200 || !stream {
		b, err := io.ReadAll(resp.Body)
		switch {
		case err != nil:
			o.problem = "reading the body: " + err.Error()
		case resp.StatusCode != 200:
			o.errCode = gjson.GetBytes(b, "error.code").Str
			o.problem = fmt.Sprintf("status %d: %.200s", resp.StatusCode, b)
		default:
			o.content = gjson.GetBytes(b, "choices.0.message.content").Str
			if o.content == "" || gjson.GetBytes(b, "choices.0.finish_reason").Str != "stop" {
				o.problem = fmt.Sprintf("incomplete answer: %.200s", b)
			}
		}
		return o
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		o.problem = "stream with Content-Type " + ct
		return o
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var answer strings.Builder
	finished, done, afterDone := false, false, false
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, ":") {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			o.problem = fmt.Sprintf("not an SSE data line: %.100q", line)
			return o
		}
		if done {
			afterDone = true
		}
		if data == "[DONE]" {
			done = true
			continue
		}
		if !gjson.Valid(data) {
			o.problem = fmt.Sprintf("event is not JSON: %.100q", data)
			return o
		}
		if e := gjson.Get(data, "error"); e.Exists() {
			o.errCode = e.Get("code").Str
			o.problem = "error event: " + e.Raw
			continue
		}
		answer.WriteString(gjson.Get(data, "choices.0.delta.content").Str)
		if gjson.Get(data, "choices.0.finish_reason").Type == gjson.String {
			finished = true
		}
	}
	o.content = answer.String()
	switch {
	case sc.Err() != nil:
		o.problem = "stream cut: " + sc.Err().Error()
	case !done || afterDone:
		o.problem = fmt.Sprintf("stream not ended by one final [DONE] (problem so far: %s)", o.problem)
	case o.problem == "" && (!finished || o.content == ""):
		o.problem = "stream ended without a finished answer"
	}
	return o
}

// runLoad sends total requests from workers goroutines, every other one
// streamed, and returns what the clients saw.
func runLoad(ctx context.Context, c *http.Client, model string, workers, total int) []outcome {
	out := make([]outcome, total)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= total || ctx.Err() != nil {
					return
				}
				out[i] = chatOnce(ctx, c, model, i%2 == 0)
			}
		}()
	}
	wg.Wait()
	return out[:min(int(next.Load()), total)]
}

// failures lists the outcomes a client would see as failures.
func failures(out []outcome) []string {
	var fs []string
	for i, o := range out {
		if o.problem != "" {
			fs = append(fs, fmt.Sprintf("#%d (stream=%t): %s", i, o.stream, o.problem))
		}
	}
	return fs
}

// A breaker that never opens, so the fault is met on about every other
// first attempt instead of being hidden by the breaker (which
// TestFaultBreakerOpensAndHalfOpens covers).
const noBreaker = "breaker {\n\t\t\tfailures 1000000\n\t\t}"

// While one of two deployments fails in each of these ways, concurrent
// clients see no failed request: the gateway fails over within the same
// request, streamed or not.
func TestFaultFailoverUnderLoad(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault fault
		total int
	}{
		{"500", fault500, 300},
		{"429_storm", fault429, 300},
		{"timeout", faultHang, 160},
		{"reset_before_headers", faultResetBeforeHeaders, 300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			f := newFlaky(t)
			f.set(tc.fault)
			// The healthy deployment answers in 20ms, so the load lasts
			// long enough for several retry-after cool-downs.
			load(t, faultsConfig(f, 0, "attempt_timeout 250ms\n\t\tmax_attempts 3\n\t\t"+noBreaker, "latency 20ms"))
			start := time.Now()
			out := runLoad(ctx, newLoadClient(t), faultsModel, 8, tc.total)
			took := time.Since(start)
			calls := f.calls.Load()
			t.Logf("%d requests in %v, %d attempts reached the failing deployment", len(out), took.Round(time.Millisecond), calls)
			if fs := failures(out); len(fs) > 0 || len(out) != tc.total {
				t.Fatalf("%d of %d requests failed (%d sent); first: %q", len(fs), tc.total, len(out), fs[:min(len(fs), 5)])
			}
			switch tc.fault {
			case fault429:
				// Each 429 cools the deployment for retry-after-ms (100ms):
				// at most one wave of the workers per cool-down reaches it,
				// and it is tried again after each.
				if limit := int64(8 * (took/(100*time.Millisecond) + 1)); calls < 3 || calls > limit {
					t.Fatalf("%d attempts reached the throttled deployment in %v; retry-after-ms allows 3 to %d", calls, took, limit)
				}
			default:
				if calls < int64(tc.total/5) {
					t.Fatalf("only %d of %d requests met the fault: the test did not exercise it", calls, tc.total)
				}
			}
		})
	}
}

// A stream whose upstream resets after its headers but before its first
// token fails over like any failed attempt (the gateway holds the client's
// headers until the first token). One that resets after content reached
// the client ends with the events received so far, a well-formed error
// event (upstream_stream_error) and [DONE].
func TestFaultStreamResetMidway(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	f := newFlaky(t)
	load(t, faultsConfig(f, 1, noBreaker)) // flaky first
	c := newLoadClient(t)

	// Before the first token the stream is not yet the client's: the
	// attempt fails over and the client gets the healthy deployment's
	// whole answer.
	t.Run("before_content", func(t *testing.T) {
		f.set(faultResetBeforeContent)
		before := f.calls.Load()
		o := chatOnce(ctx, c, faultsModel, true)
		if o.problem != "" || o.status != 200 || o.content == "" {
			t.Fatalf("stream: status %d, content %q, error code %q, problem %q", o.status, o.content, o.errCode, o.problem)
		}
		if f.calls.Load() != before+1 {
			t.Fatal("the stream did not meet the fault")
		}
	})
	// After content reached the client the answer is committed: it ends
	// with an error event and [DONE], quickly.
	t.Run("after_content", func(t *testing.T) {
		f.set(faultResetAfterContent)
		o := chatOnce(ctx, c, faultsModel, true)
		if o.status != 200 || o.errCode != "upstream_stream_error" || o.content != "Partial answer" ||
			!strings.HasPrefix(o.problem, "error event:") {
			t.Fatalf("stream: status %d, content %q, error code %q, problem %q", o.status, o.content, o.errCode, o.problem)
		}
		if o.end.Sub(o.start) > 5*time.Second {
			t.Fatalf("the broken stream took %v to end", o.end.Sub(o.start))
		}
		if o := chatOnce(ctx, c, faultsModel, false); o.problem != "" {
			t.Fatalf("non-streamed: %s", o.problem)
		}
	})

	// Under load, with the fault before content on half the first
	// attempts: every request succeeds, streams included.
	f.set(faultResetBeforeContent)
	load(t, faultsConfig(f, 0, noBreaker))
	c.CloseIdleConnections() // the reload closed them
	out := runLoad(ctx, c, faultsModel, 8, 200)
	for i, o := range out {
		if o.problem != "" {
			t.Errorf("#%d (stream=%t): %s", i, o.stream, o.problem)
		}
	}
	t.Logf("reset before content under load: %d requests, %d attempts met the fault, none failed", len(out), f.calls.Load())
}

// breaker { failures 3 open_for 2s half_open_requests 1 }: three failures
// open the flaky deployment's breaker; while open it gets no call; after
// open_for one trial request reaches it (concurrent ones go to the other
// deployment), a failing trial opens it again, a succeeding one closes it.
func TestFaultBreakerOpensAndHalfOpens(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	const openFor = 2 * time.Second
	f := newFlaky(t)
	f.set(fault500)
	// flaky has priority 0 and is tried first while its breaker admits.
	load(t, faultsConfig(f, 1, "breaker {\n\t\t\tfailures 3\n\t\t\topen_for 2s\n\t\t\thalf_open_requests 1\n\t\t}"))
	c := newLoadClient(t)
	mustOK := func(out ...outcome) {
		t.Helper()
		if fs := failures(out); len(fs) > 0 {
			t.Fatalf("%d of %d requests failed: %q", len(fs), len(out), fs[:min(len(fs), 5)])
		}
	}

	for i := range 3 {
		mustOK(chatOnce(ctx, c, faultsModel, i%2 == 0))
	}
	opened := time.Now()
	if n := f.calls.Load(); n != 3 {
		t.Fatalf("%d calls reached the failing deployment; want one per request (3)", n)
	}
	mustOK(runLoad(ctx, c, faultsModel, 8, 40)...)
	if time.Since(opened) > openFor-200*time.Millisecond {
		t.Fatalf("the open phase took %v, too close to open_for to check", time.Since(opened))
	}
	if n := f.calls.Load(); n != 3 {
		t.Fatalf("open breaker: %d calls reached the failing deployment, want none after the 3 that opened it", n-3)
	}

	// Half-open, still failing: the one trial fails, the breaker opens again.
	time.Sleep(time.Until(opened.Add(openFor + 100*time.Millisecond)))
	mustOK(chatOnce(ctx, c, faultsModel, false))
	reopened := time.Now()
	mustOK(runLoad(ctx, c, faultsModel, 8, 24)...)
	if n := f.calls.Load(); n != 4 {
		t.Fatalf("half-open: %d calls reached the failing deployment, want exactly one trial", n-3)
	}

	// Recovered, and slow enough that the trial is still running when
	// the concurrent requests arrive: exactly one of them reaches it.
	f.delay.Store(int64(300 * time.Millisecond))
	f.set(faultNone)
	time.Sleep(time.Until(reopened.Add(openFor + 100*time.Millisecond)))
	mustOK(runLoad(ctx, c, faultsModel, 8, 8)...)
	if n := f.calls.Load(); n != 5 {
		t.Fatalf("half-open with 8 concurrent requests: %d calls reached the deployment, want one trial", n-4)
	}
	// The trial succeeded: the breaker is closed and flaky (priority 0)
	// takes the requests again.
	f.delay.Store(0)
	mustOK(runLoad(ctx, c, faultsModel, 4, 12)...)
	if n := f.calls.Load(); n != 5+12 {
		t.Fatalf("closed again: %d of 12 requests reached the recovered deployment", n-5)
	}
}

// A client that stops reading a stream, through the real Caddy (whose
// own write_idle_timeout wraps the response writer): after
// client_write_timeout the gateway hangs up on the upstream.
func TestFaultStuckClientReleasesUpstream(t *testing.T) {
	f := newFlaky(t)
	f.set(faultEndless)
	load(t, faultsConfig(f, 1, "client_write_timeout 200ms"))
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", gatewayPort))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	body := fmt.Sprintf(`{"model":%q,"stream":true,"messages":[{"role":"user","content":"Tell me everything."}]}`, faultsModel)
	start := time.Now()
	_, err = fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", demoKey, len(body), body)
	if err != nil {
		t.Fatal(err)
	}
	select { // and never read
	case <-f.cancelled:
		t.Logf("upstream request cancelled %v after a client stopped reading", time.Since(start).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream still streams into a client that stopped reading")
	}
}

// startRedis runs a redis-server on a loopback port, in dir, until stop
// is called. scripts/test.sh installs it; without it the test fails
// (GROUNDGATE_SKIP_REDIS=1 skips on purpose), like the Redis tests of
// caddymodule.
func startRedis(t *testing.T, port int, dir string) (stop func()) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("GROUNDGATE_SKIP_REDIS") == "1" {
			t.Skip("redis-server not installed and GROUNDGATE_SKIP_REDIS=1")
		}
		t.Fatal("redis-server is not installed: run scripts/redis-test-server.sh install (or set GROUNDGATE_SKIP_REDIS=1 to skip)")
	}
	cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() { once.Do(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }) }
	waitListening(t, port)
	return stop
}

// Redis, holding the budgets, goes away in the middle of a run and comes
// back: with on_store_error closed the requests meanwhile get 503
// budget_store_unavailable, with open they are served; neither waits on
// the dead store, and both recover when Redis is back.
func TestFaultRedisGoesAway(t *testing.T) {
	port, dir := freePort(), t.TempDir()
	stop := startRedis(t, port, dir)
	t.Cleanup(func() { stop() }) // the server running at the end
	for _, mode := range []string{"closed", "open"} {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			policies := t.TempDir()
			policy := "name: budgeted\ndefault: true\nbudgets:\n  completion_tokens: 50\n  on_store_error: " + mode +
				"\n  limits:\n    - per: key\n      name: faults-" + mode + "\n      tokens_per_minute: 100000000\n"
			if err := os.WriteFile(filepath.Join(policies, "budgeted.yaml"), []byte(policy), 0o600); err != nil {
				t.Fatal(err)
			}
			load(t, caddyfile(fmt.Sprintf("policies %s\n\t\tstore redis {\n\t\t\taddress 127.0.0.1:%d\n\t\t\tprefix gg-faults:\n\t\t\ttimeout 100ms\n\t\t\tdial_timeout 100ms\n\t\t}", policies, port), ""))
			c := newLoadClient(t)

			// Continuous load; Redis is killed, then restarted.
			var mu sync.Mutex
			var out []outcome
			stopLoad := make(chan struct{})
			var wg sync.WaitGroup
			for w := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ; i++ {
						select {
						case <-stopLoad:
							return
						default:
						}
						o := chatOnce(ctx, c, "gpt-4o", (w+i)%2 == 0)
						mu.Lock()
						out = append(out, o)
						mu.Unlock()
					}
				}()
			}
			time.Sleep(400 * time.Millisecond)
			killed := time.Now()
			stop()
			down := time.Now()
			time.Sleep(800 * time.Millisecond)
			restart := time.Now()
			stop = startRedis(t, port, dir)
			var back time.Time // the first request after the restart that went through Redis again
			for time.Since(restart) < 5*time.Second && back.IsZero() {
				time.Sleep(50 * time.Millisecond)
				mu.Lock()
				for _, o := range out {
					if o.start.After(restart) && o.status == 200 && o.budgeted && (back.IsZero() || o.start.Before(back)) {
						back = o.start
					}
				}
				mu.Unlock()
			}
			time.Sleep(400 * time.Millisecond)
			close(stopLoad)
			wg.Wait()

			var before, during, after, total [2]int // [ok, other]
			for i, o := range out {
				ok := 0
				if o.status != 200 {
					ok = 1
				}
				total[ok]++
				if o.end.Sub(o.start) > 2*time.Second {
					t.Errorf("#%d waited %v", i, o.end.Sub(o.start))
				}
				switch {
				case o.end.Before(killed):
					before[ok]++
					if o.problem != "" || !o.budgeted {
						t.Errorf("#%d before Redis went away: budgeted %t, %s", i, o.budgeted, o.problem)
					}
				case o.start.After(down) && o.end.Before(restart):
					during[ok]++
					if mode == "open" && (o.problem != "" || o.budgeted) {
						t.Errorf("#%d while Redis was away (fail open): budgeted %t, %s", i, o.budgeted, o.problem)
					}
					if mode == "closed" && (o.status != 503 || o.errCode != "budget_store_unavailable") {
						t.Errorf("#%d while Redis was away (fail closed): status %d %s", i, o.status, o.problem)
					}
				case !back.IsZero() && o.start.After(back.Add(100*time.Millisecond)):
					after[ok]++
					if o.problem != "" || !o.budgeted {
						t.Errorf("#%d after Redis came back: budgeted %t, %s", i, o.budgeted, o.problem)
					}
				default: // in flight across a change: served, or refused in closed mode
					if o.problem != "" && (mode == "open" || o.status != 503) {
						t.Errorf("#%d across a change: %s", i, o.problem)
					}
				}
			}
			t.Logf("%s: %d requests (%d ok); before %v, during %v, after %v ([ok other]); back %v after the restart",
				mode, len(out), total[0], before, during, after, back.Sub(restart).Round(time.Millisecond))
			if back.IsZero() {
				t.Fatal("requests never went through Redis again after it came back")
			}
			if before[0] == 0 || during[0]+during[1] == 0 || after[0] == 0 {
				t.Fatalf("a phase saw no requests: before %v, during %v, after %v", before, during, after)
			}
		})
	}
}
