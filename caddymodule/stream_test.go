package caddymodule

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/tidwall/gjson"
)

// azureStream is an Azure stream as observed on the wire: the prompt
// annotation event with empty choices, a role chunk, content, an
// annotation-only chunk with content_filter_offsets, the finish chunk,
// the usage chunk, [DONE].
var azureStream = []string{
	`{"id":"","object":"","created":0,"model":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}}}],"choices":[]}`,
	`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"finish_reason":null,"delta":{"role":"assistant"},"content_filter_results":{}}],"usage":null}`,
	`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"finish_reason":null,"delta":{"content":"Hel"}}],"usage":null}`,
	`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"finish_reason":null,"delta":{"content":"lo"}}],"usage":null}`,
	`{"id":"","object":"","created":0,"model":"","choices":[{"index":0,"finish_reason":null,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}},"content_filter_offsets":{"check_offset":5,"start_offset":0,"end_offset":5}}],"usage":null}`,
	`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"finish_reason":"stop","delta":{}}],"usage":null}`,
	`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}`,
}

func streamHandler(events []string, done bool, pause time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		rc := http.NewResponseController(w)
		for _, e := range events {
			_, _ = fmt.Fprintf(w, "data: %s\n\n", e)
			_ = rc.Flush()
			if pause > 0 {
				time.Sleep(pause)
			}
		}
		if done {
			_, _ = io.WriteString(w, "data: [DONE]\n\n")
		}
	}
}

func events(body string) []string {
	var out []string
	for _, block := range strings.Split(strings.TrimSuffix(body, "\n\n"), "\n\n") {
		out = append(out, strings.TrimPrefix(block, "data: "))
	}
	return out
}

func TestStreamForwardsEventsAndDropsForcedUsage(t *testing.T) {
	up := newFake(t, streamHandler(azureStream, true, 0))
	g := newGateway(t, nil, azure("a", up.URL, 0))
	r := do(t, g, "POST", "/v1/chat/completions", `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("%d %v", r.status, r.header)
	}
	_, sent := up.lastRequest()
	if !gjson.GetBytes(sent, "stream_options.include_usage").Bool() {
		t.Fatalf("include_usage not forced upstream: %s", sent)
	}
	got := events(r.body)
	want := append(append([]string{}, azureStream[:6]...), "[DONE]")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events differ:\n got %q\nwant %q", got, want)
	}
	if fmt.Sprint(r.ex["llm.prompt_tokens"]) != "9" || fmt.Sprint(r.ex["llm.completion_tokens"]) != "2" {
		t.Fatalf("usage not recorded from the dropped chunk: %v", r.ex)
	}
}

func TestStreamKeepsUsageWhenClientAsked(t *testing.T) {
	up := newFake(t, streamHandler(azureStream, true, 0))
	g := newGateway(t, nil, azure("a", up.URL, 0))
	r := do(t, g, "POST", "/v1/chat/completions", `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`)
	got := events(r.body)
	if len(got) != len(azureStream)+1 || got[len(got)-2] != azureStream[len(azureStream)-1] {
		t.Fatalf("usage chunk missing: %q", got)
	}
}

func TestStreamBrokenMidwayEndsWithErrorAndDone(t *testing.T) {
	up := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = fmt.Fprintf(w, "data: %s\n\ndata: {\"id\":\"chatcmpl-1\",\"cho", azureStream[2])
		_ = http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler) // cut the connection
	})
	g := newGateway(t, nil, azure("a", up.URL, 0))
	r := do(t, g, "POST", "/v1/chat/completions", `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	got := events(r.body)
	if len(got) != 3 || got[0] != azureStream[2] || got[2] != "[DONE]" {
		t.Fatalf("events: %q", got)
	}
	if gjson.Get(got[1], "error.code").Str != "upstream_stream_error" {
		t.Fatalf("no error event: %q", got[1])
	}
}

func TestStreamWithoutDoneAfterFinish(t *testing.T) {
	up := newFake(t, streamHandler(azureStream[1:6], false, 0))
	g := newGateway(t, nil, azure("a", up.URL, 0))
	r := do(t, g, "POST", "/v1/chat/completions", `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	got := events(r.body)
	if got[len(got)-1] != "[DONE]" || strings.Contains(r.body, "error") {
		t.Fatalf("a finished stream closed without [DONE] should just get [DONE]: %q", got)
	}
}

func TestStreamIdleTimeout(t *testing.T) {
	up := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = fmt.Fprintf(w, "data: %s\n\n", azureStream[2])
		_ = http.NewResponseController(w).Flush()
		<-r.Context().Done()
	})
	g := newGateway(t, func(g *Gateway) { g.StreamIdleTimeout = caddy.Duration(150 * time.Millisecond) }, azure("a", up.URL, 0))
	start := time.Now()
	r := do(t, g, "POST", "/v1/chat/completions", `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	got := events(r.body)
	if len(got) != 3 || gjson.Get(got[1], "error.code").Str != "upstream_stream_timeout" || got[2] != "[DONE]" {
		t.Fatalf("events: %q", got)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("stalled stream hung")
	}
}

func TestStreamFailsOverBeforeFirstByte(t *testing.T) {
	bad := newFake(t, statusHandler(503))
	good := newFake(t, streamHandler(azureStream, true, 0))
	g := newGateway(t, nil, azure("bad", bad.URL, 0), azure("good", good.URL, 1))
	r := do(t, g, "POST", "/v1/chat/completions", `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if r.status != 200 || r.ex["llm.upstream"] != "good" || !strings.HasSuffix(r.body, "data: [DONE]\n\n") {
		t.Fatalf("%d %v %q", r.status, r.ex, r.body)
	}
}

// flushRecorder records when each write was flushed, to show events are
// not coalesced.
type flushRecorder struct {
	header  http.Header
	status  int
	chunks  []string
	pending strings.Builder
	times   []time.Time
}

func (f *flushRecorder) Header() http.Header         { return f.header }
func (f *flushRecorder) WriteHeader(code int)        { f.status = code }
func (f *flushRecorder) Write(b []byte) (int, error) { return f.pending.Write(b) }
func (f *flushRecorder) Flush() {
	if f.pending.Len() > 0 {
		f.chunks = append(f.chunks, f.pending.String())
		f.times = append(f.times, time.Now())
		f.pending.Reset()
	}
}

func TestStreamFlushesEachEvent(t *testing.T) {
	up := newFake(t, streamHandler(azureStream[1:6], true, 30*time.Millisecond))
	g := newGateway(t, nil, azure("a", up.URL, 0))
	req := newChatRequest(`{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	rec := &flushRecorder{header: http.Header{}}
	_ = g.ServeHTTP(rec, req, nil)
	if len(rec.chunks) != 6 {
		t.Fatalf("got %d flushed writes, want one per event (6): %q", len(rec.chunks), rec.chunks)
	}
	// The headers and the role delta are held until the first token
	// (streamstart.go), then flushed with it; every later event is flushed
	// as it arrives.
	first := slices.IndexFunc(rec.chunks, func(c string) bool { return strings.Contains(c, `"Hel"`) })
	if first != 1 {
		t.Fatalf("first token in flushed write %d, want 1 (role, then token): %q", first, rec.chunks)
	}
	for i := first + 1; i < len(rec.times)-1; i++ {
		if gap := rec.times[i].Sub(rec.times[i-1]); gap < 20*time.Millisecond {
			t.Fatalf("events %d and %d flushed %v apart: buffered", i-1, i, gap)
		}
	}
}
