package caddymodule

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/groundgate/groundgate/sse"
)

// brokenBeforeToken answers 200 and the events before the first token
// (prompt annotations, the role delta), then drops the connection, or,
// with stall, stops sending.
func brokenBeforeToken(stall time.Duration) http.HandlerFunc {
	early := streamHandler(azureStream[:2], false, 0)
	return func(w http.ResponseWriter, r *http.Request) {
		early(w, r)
		if stall > 0 {
			select {
			case <-time.After(stall):
			case <-r.Context().Done():
			}
			return
		}
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close() // a reset, not a clean end
			}
		}
	}
}

func TestStreamFailsOverBeforeFirstToken(t *testing.T) {
	for _, tc := range []struct {
		name  string
		h     http.HandlerFunc
		setup func(*Gateway)
	}{
		{"reset", brokenBeforeToken(0), nil},
		{"stall past attempt timeout", brokenBeforeToken(5 * time.Second), func(g *Gateway) { g.AttemptTimeout = caddy.Duration(300 * time.Millisecond) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := newFake(t, tc.h)
			good := newFake(t, streamHandler(azureStream, true, 0))
			g := newGateway(t, tc.setup, azure("bad", bad.URL, 0), azure("good", good.URL, 1))
			r := do(t, g, "POST", "/v1/chat/completions", `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
			if r.status != 200 || r.ex["llm.upstream"] != "good" || bad.calls.Load() != 1 {
				t.Fatalf("%d upstream %v, bad called %d times: %q", r.status, r.ex["llm.upstream"], bad.calls.Load(), r.body)
			}
			// The client sees one stream: the good deployment's, once.
			ev := events(r.body)
			if strings.Count(r.body, "prompt_filter_results") != 1 || strings.Count(r.body, `"role":"assistant"`) != 1 ||
				ev[len(ev)-1] != "[DONE]" || strings.Contains(r.body, "upstream_stream_error") {
				t.Fatalf("body %q", r.body)
			}
		})
	}
}

func TestStartsAnswer(t *testing.T) {
	for data, want := range map[string]bool{
		azureStream[0]: false, // prompt annotations
		azureStream[1]: false, // role delta
		azureStream[2]: true,  // "Hel"
		azureStream[4]: false, // a content filter annotation
		azureStream[5]: true,  // finish_reason stop
		`{"choices":[{"index":0,"delta":{"content":""}}]}`:                                                  false,
		`{"choices":[{"index":0,"delta":{}},{"index":1,"delta":{"content":"x"}}]}`:                          true,
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"f"}}]}}]}`:            true,
		`{"choices":[{"index":0,"delta":{"refusal":"no"}}]}`:                                                true,
		`{"error":{"message":"boom"}}`:                                                                      true,
		`[DONE]`:                                                                                            true,
		`{"choices":[{"index":0,"finish_reason":null,"delta":{"role":"assistant","content":null}}]}`:        false,
		`{"choices":[{"index":0,"finish_reason":"content_filter","delta":{}}],"content_filter_results":{}}`: true,
	} {
		ev := sse.Event{Data: []byte(data), HasData: true}
		if got := startsAnswer(&ev); got != want {
			t.Errorf("startsAnswer(%s) = %v, want %v", data, got, want)
		}
	}
	if startsAnswer(&sse.Event{Raw: []byte(": keep-alive\n\n")}) {
		t.Error("a comment starts the answer")
	}
}

// TestEarlyEventsBounded checks that a stream sending many events without
// a token is committed after maxEarlyEvents rather than buffered forever.
func TestEarlyEventsBounded(t *testing.T) {
	var b strings.Builder
	for range maxEarlyEvents + 10 {
		b.WriteString(": keep-alive\n\n")
	}
	evs, err := earlyEvents(sse.NewReader(strings.NewReader(b.String()), 0), startsAnswer)
	if err != nil || len(evs) != maxEarlyEvents {
		t.Fatalf("%d events, %v", len(evs), err)
	}
	if _, err := earlyEvents(sse.NewReader(strings.NewReader("data: {\"choices\":[]}\n\n"), 0), startsAnswer); err == nil {
		t.Fatal("a stream that ends before its first token is not an error")
	}
}

// The held events are copies the reader's later reads do not touch, and
// the primed reader replays them in order, then reads on and lets them go.
func TestEarlyEventsReplayThenRelease(t *testing.T) {
	stream := "data: {\"choices\":[],\"prompt_filter_results\":[]}\n\n" +
		": keep-alive\n\n" +
		"event: chunk\r\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\r\n\r\n" +
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" there\"}}]}\n\n" +
		"data: [DONE]\n\n"
	rd := sse.NewReader(strings.NewReader(stream), 0)
	early, err := earlyEvents(rd, startsAnswer)
	if err != nil || len(early) != 3 {
		t.Fatalf("%d early events, %v", len(early), err)
	}
	p := &primedReader{early: early, rd: rd}
	var got []string
	for {
		ev, err := p.Next()
		if err != nil {
			break
		}
		got = append(got, fmt.Sprintf("%s|%s|%q", ev.Name, ev.Data, ev.Raw))
	}
	want := []string{
		`|{"choices":[],"prompt_filter_results":[]}|"data: {\"choices\":[],\"prompt_filter_results\":[]}\n\n"`,
		`||": keep-alive\n\n"`,
		`chunk|{"choices":[{"index":0,"delta":{"content":"Hi"}}]}|"event: chunk\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n"`,
		`|{"choices":[{"index":0,"delta":{"content":" there"}}]}|"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" there\"}}]}\n\n"`,
		`|[DONE]|"data: [DONE]\n\n"`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("replayed:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if p.early != nil {
		t.Fatal("the held events are still referenced after their replay")
	}
}
