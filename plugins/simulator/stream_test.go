package simulator

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/tidwall/gjson"
)

// sseEvents splits a data-only SSE body into its payloads and reports
// whether it ended with data: [DONE].
func sseEvents(t *testing.T, body string) (events []gjson.Result, done bool) {
	t.Helper()
	if !strings.HasSuffix(body, "\n\n") {
		t.Fatalf("stream does not end with a blank line: %q", body[max(0, len(body)-80):])
	}
	for _, ev := range strings.Split(strings.TrimSuffix(body, "\n\n"), "\n\n") {
		payload, ok := strings.CutPrefix(ev, "data: ")
		if !ok || strings.Contains(payload, "\n") {
			t.Fatalf("not a single data line: %q", ev)
		}
		if done {
			t.Fatalf("event after [DONE]: %q", ev)
		}
		if payload == "[DONE]" {
			done = true
			continue
		}
		if !gjson.Valid(payload) {
			t.Fatalf("invalid JSON event: %s", payload)
		}
		events = append(events, gjson.Parse(payload))
	}
	return events, done
}

const promptAnnotation = `{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"},"jailbreak":{"filtered":false,"detected":false},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":false,"severity":"safe"}}}]}`

func TestStreamSequence(t *testing.T) {
	s := newSim(t, nil)
	const req = `{"messages":[{"role":"user","content":"how do I reset my password?"}],"stream":true}`
	w := call(t, s, "POST", chatPath, req)
	if w.Code != 200 || w.Header().Get("Content-Type") != "text/event-stream; charset=utf-8" {
		t.Fatalf("%d %v", w.Code, w.Header())
	}
	if w.Header().Get("apim-request-id") == "" || w.Header().Get("x-ratelimit-remaining-tokens") == "" {
		t.Fatalf("headers: %v", w.Header())
	}
	evs, done := sseEvents(t, w.Body.String())
	if !done {
		t.Fatal("no [DONE]")
	}
	if evs[0].Raw != promptAnnotation {
		t.Fatalf("first event = %s", evs[0].Raw)
	}
	if strings.Contains(w.Body.String(), `"usage"`) {
		t.Fatal("usage field present although include_usage was not requested")
	}
	role := evs[1]
	id := role.Get("id").Str
	if role.Get("choices.0.delta").Raw != `{"content":"","refusal":null,"role":"assistant"}` ||
		role.Get("choices.0.content_filter_results").Raw != `{}` || role.Get("choices.0.finish_reason").Type != gjson.Null {
		t.Fatalf("role chunk = %s", role.Raw)
	}
	var text strings.Builder
	last := evs[len(evs)-1]
	for i, ev := range evs[1:] {
		if ev.Get("id").Str != id || ev.Get("object").Str != "chat.completion.chunk" || ev.Get("model").Str != "gpt-4o-2024-08-06" ||
			ev.Get("created").Int() < 1_700_000_000 || !strings.HasPrefix(ev.Get("system_fingerprint").Str, "fp_") ||
			ev.Get("choices.#").Int() != 1 || ev.Get("choices.0.index").Raw != "0" || ev.Get("choices.0.logprobs").Type != gjson.Null {
			t.Fatalf("chunk %d = %s", i+1, ev.Raw)
		}
		if i == 0 || ev.Raw == last.Raw {
			continue
		}
		if ev.Get("choices.0.content_filter_results").Raw != chunkFilterResultsSafe || ev.Get("choices.0.finish_reason").Type != gjson.Null {
			t.Fatalf("content chunk = %s", ev.Raw)
		}
		piece := ev.Get("choices.0.delta.content").Str
		if piece == "" || len(ev.Get("choices.0.delta").Map()) != 1 {
			t.Fatalf("content chunk delta = %s", ev.Get("choices.0.delta").Raw)
		}
		text.WriteString(piece)
	}
	if last.Get("choices.0.delta").Raw != `{}` || last.Get("choices.0.finish_reason").Str != "stop" ||
		last.Get("choices.0.content_filter_results").Raw != `{}` {
		t.Fatalf("final chunk = %s", last.Raw)
	}
	nonStream := call(t, s, "POST", chatPath, strings.Replace(req, `,"stream":true`, "", 1))
	if want := gjson.Get(nonStream.Body.String(), "choices.0.message.content").Str; text.String() != want {
		t.Fatalf("streamed text %q != non-streamed %q", text.String(), want)
	}
}

func TestStreamIncludeUsage(t *testing.T) {
	s := newSim(t, nil)
	req := `{"messages":[{"role":"system","content":"sys"},{"role":"user","content":"[[sim:tokens=12]]"}],"stream":true,"stream_options":{"include_usage":true},"n":2}`
	w := call(t, s, "POST", chatPath, req)
	evs, done := sseEvents(t, w.Body.String())
	if !done {
		t.Fatal("no [DONE]")
	}
	usage := evs[len(evs)-1]
	enc := mustEncoder(t, "gpt-4o")
	prompt, err := enc.CountChat([]byte(req))
	if err != nil {
		t.Fatal(err)
	}
	if usage.Get("choices").Raw != "[]" || usage.Get("object").Str != "chat.completion.chunk" || usage.Get("id").Str != evs[1].Get("id").Str ||
		usage.Get("usage.prompt_tokens").Int() != int64(prompt) || usage.Get("usage.completion_tokens").Int() != 24 ||
		usage.Get("usage.total_tokens").Int() != int64(prompt+24) {
		t.Fatalf("usage chunk = %s (prompt %d)", usage.Raw, prompt)
	}
	contents := map[int64]int{}
	finishes := 0
	for i, ev := range evs[:len(evs)-1] {
		if u := ev.Get("usage"); !u.Exists() || u.Type != gjson.Null {
			t.Fatalf("event %d without \"usage\":null: %s", i, ev.Raw)
		}
		if i == 0 {
			continue
		}
		c := ev.Get("choices.0")
		if c.Get("delta.content").Str != "" {
			contents[c.Get("index").Int()]++
		}
		if c.Get("finish_reason").Str == "stop" {
			finishes++
		}
	}
	// [[sim:tokens=12]] streams one token per chunk, for each of the n=2 choices.
	if contents[0] != 12 || contents[1] != 12 || finishes != 2 {
		t.Fatalf("content chunks per choice %v, finishes %d", contents, finishes)
	}
}

func TestStreamAsyncFilter(t *testing.T) {
	s := newSim(t, func(s *Simulator) { s.AsyncFilter = true })
	w := call(t, s, "POST", chatPath, `{"messages":[{"role":"user","content":"[[sim:tokens=40]]"}],"stream":true}`)
	evs, done := sseEvents(t, w.Body.String())
	if !done {
		t.Fatal("no [DONE]")
	}
	var annotations []gjson.Result
	text := ""
	for _, ev := range evs[1:] {
		c := ev.Get("choices.0")
		if c.Get("content_filter_offsets").Exists() {
			if ev.Get("id").Str != "" || ev.Get("object").Str != "" || ev.Get("created").Int() != 0 || c.Get("delta").Exists() ||
				c.Get("content_filter_results").Raw != chunkFilterResultsSafe || c.Get("finish_reason").Type != gjson.Null {
				t.Fatalf("annotation chunk = %s", ev.Raw)
			}
			annotations = append(annotations, c.Get("content_filter_offsets"))
			continue
		}
		if c.Get("content_filter_results").Exists() {
			t.Fatalf("async mode content chunk carries content_filter_results: %s", ev.Raw)
		}
		text += c.Get("delta.content").Str
	}
	// 40 pieces: annotations after 16, 32, and a final one after the finish chunk.
	if len(annotations) != 3 {
		t.Fatalf("%d annotation chunks", len(annotations))
	}
	prevEnd := int64(0)
	for _, a := range annotations {
		if a.Get("start_offset").Int() != prevEnd || a.Get("check_offset").Int() != prevEnd || a.Get("end_offset").Int() <= prevEnd {
			t.Fatalf("offsets %s after %d", a.Raw, prevEnd)
		}
		prevEnd = a.Get("end_offset").Int()
	}
	if prevEnd != int64(len([]rune(text))) {
		t.Fatalf("last end_offset %d, text has %d characters", prevEnd, len([]rune(text)))
	}
	if evs[len(evs)-2].Get("choices.0.finish_reason").Str != "stop" {
		t.Fatalf("finish chunk not before the last annotation: %s", evs[len(evs)-2].Raw)
	}
}

func TestStreamOutputFilter(t *testing.T) {
	for _, async := range []bool{false, true} {
		s := newSim(t, func(s *Simulator) { s.BlockedOutputTerms = []string{"LAZY"}; s.AsyncFilter = async })
		w := call(t, s, "POST", chatPath, `{"messages":[{"role":"user","content":"[[sim:tokens=20]]"}],"stream":true,"stream_options":{"include_usage":true}}`)
		evs, done := sseEvents(t, w.Body.String())
		if !done {
			t.Fatal("no [DONE] after a filtered stream")
		}
		text := ""
		for _, ev := range evs[1 : len(evs)-2] {
			if ev.Get("choices.0.finish_reason").Type != gjson.Null {
				t.Fatalf("unexpected finish before the filter annotation: %s", ev.Raw)
			}
			text += ev.Get("choices.0.delta.content").Str
		}
		if text != "The quick brown fox jumps over the" {
			t.Fatalf("async=%v: streamed %q before the filter", async, text)
		}
		ann := evs[len(evs)-2]
		c := ann.Get("choices.0")
		if ann.Get("id").Str != "" || c.Get("finish_reason").Str != "content_filter" ||
			c.Get("content_filter_results.violence").Raw != `{"filtered":true,"severity":"high"}` ||
			c.Get("content_filter_offsets.check_offset").Int() != int64(len(text)) {
			t.Fatalf("filter annotation = %s", ann.Raw)
		}
		if evs[len(evs)-1].Get("usage.completion_tokens").Int() != 20 {
			t.Fatalf("usage chunk = %s", evs[len(evs)-1].Raw)
		}
	}
}

// serve starts a real HTTP server for the simulator; returned channel
// receives once per finished handler call.
func serve(t *testing.T, s *Simulator) (*httptest.Server, chan struct{}) {
	t.Helper()
	finished := make(chan struct{}, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { finished <- struct{}{} }()
		if err := s.ServeHTTP(w, r, nil); err != nil {
			t.Errorf("ServeHTTP: %v", err)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, finished
}

func post(t *testing.T, ctx context.Context, url, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("api-key", testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestStreamDrop(t *testing.T) {
	for name, tc := range map[string]struct {
		mutate  func(*Simulator)
		content string
		chunks  int // -1: any
	}{
		"directive":   {nil, "[[sim:drop_after=3]] [[sim:tokens=50]]", 3},
		"past end":    {nil, "[[sim:drop_after=99]] [[sim:tokens=5]]", 5},
		"at start":    {nil, "[[sim:drop_after=0]]", 0},
		"drop_rate 1": {func(s *Simulator) { s.DropRate = 1 }, "[[sim:tokens=50]]", -1},
	} {
		t.Run(name, func(t *testing.T) {
			s := newSim(t, tc.mutate)
			srv, _ := serve(t, s)
			resp := post(t, t.Context(), srv.URL+chatPath, `{"messages":[{"role":"user","content":"`+tc.content+`"}],"stream":true}`)
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatal(resp.Status)
			}
			body, err := io.ReadAll(resp.Body)
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("read error = %v, want unexpected EOF; body %q", err, body)
			}
			if strings.Contains(string(body), "[DONE]") || strings.Contains(string(body), `"finish_reason":"stop"`) {
				t.Fatalf("dropped stream finished: %q", body)
			}
			evs, _ := sseEvents(t, string(body))
			content := 0
			for _, ev := range evs {
				if ev.Get("choices.0.delta.content").Str != "" {
					content++
				}
			}
			if (tc.chunks >= 0 && content != tc.chunks) || (tc.chunks < 0 && content >= 50) {
				t.Fatalf("%d content chunks before the drop, want %d", content, tc.chunks)
			}
		})
	}
	// Non-streamed requests ignore drop_after.
	s := newSim(t, nil)
	if w := call(t, s, "POST", chatPath, `{"messages":[{"role":"user","content":"[[sim:drop_after=1]]"}]}`); w.Code != 200 {
		t.Fatal(w.Code)
	}
}

func TestStreamPacingAndFlush(t *testing.T) {
	s := newSim(t, func(s *Simulator) {
		s.TimeToFirstToken = caddy.Duration(400 * time.Millisecond)
		s.TokensPerSecond = 20
	})
	srv, _ := serve(t, s)
	start := time.Now()
	resp := post(t, t.Context(), srv.URL+chatPath, `{"messages":[{"role":"user","content":"[[sim:tokens=6]]"}],"stream":true}`)
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	var arrivals []time.Duration
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			break
		}
		if strings.HasPrefix(line, "data: ") {
			arrivals = append(arrivals, time.Since(start))
		}
	}
	// annotation, role, 6 content, final, [DONE]
	if len(arrivals) != 10 {
		t.Fatalf("%d events", len(arrivals))
	}
	if arrivals[0] > 300*time.Millisecond {
		t.Fatalf("prompt annotation arrived after %v: not flushed before time_to_first_token", arrivals[0])
	}
	if arrivals[1] < 400*time.Millisecond {
		t.Fatalf("role chunk after %v, want >= time_to_first_token", arrivals[1])
	}
	// 6 content chunks at 20/s are due 0, 50, …, 250ms after the first:
	// the last cannot arrive before TTFT + 250ms, and the first arrives
	// well before the last (each chunk is flushed on its own).
	if arrivals[7] < 650*time.Millisecond {
		t.Fatalf("last content chunk after %v, want >= 650ms", arrivals[7])
	}
	if d := arrivals[7] - arrivals[2]; d < 150*time.Millisecond {
		t.Fatalf("content chunks arrived within %v: not paced/flushed individually", d)
	}
}

func TestStreamCancellation(t *testing.T) {
	s := newSim(t, func(s *Simulator) { s.TokensPerSecond = 5 })
	srv, finished := serve(t, s)
	ctx, cancel := context.WithCancel(t.Context())
	resp := post(t, ctx, srv.URL+chatPath, `{"messages":[{"role":"user","content":"[[sim:tokens=1000]]"}],"stream":true}`)
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(line, `"delta":{"content":"The"}`) {
			break
		}
	}
	cancel()
	resp.Body.Close()
	select {
	case <-finished:
	case <-time.After(2 * time.Second):
		t.Fatal("handler still streaming 2s after the client went away")
	}
}

func TestStreamChoicesInterleaved(t *testing.T) {
	s := newSim(t, nil)
	w := call(t, s, "POST", chatPath, `{"messages":[{"role":"user","content":"[[sim:tokens=3]]"}],"stream":true,"n":2}`)
	evs, _ := sseEvents(t, w.Body.String())
	var got []string
	for _, ev := range evs[1:] {
		c := ev.Get("choices.0")
		got = append(got, strconv.Itoa(int(c.Get("index").Int()))+":"+c.Get("delta.content").Str+":"+c.Get("finish_reason").String())
	}
	want := "0::,1::,0:The:,1:The:,0: quick:,1: quick:,0: brown:,1: brown:,0::stop,1::stop"
	if strings.Join(got, ",") != want {
		t.Fatalf("sequence %s", strings.Join(got, ","))
	}
}
