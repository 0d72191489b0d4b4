package simulator

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

// FuzzChatRequest feeds arbitrary bodies to the chat handler: it must not
// panic (other than the deliberate stream abort), must answer 200 or 400
// (other statuses only when the body carries a [[sim:…]] directive or a
// blocked term), and every 200 must be valid JSON or a valid event stream.
// The seed corpus is in testdata/fuzz/FuzzChatRequest.
func FuzzChatRequest(f *testing.F) {
	for _, seed := range []string{
		simpleReq,
		`{"messages":[{"role":"user","content":"[[sim:tokens=5]]"}],"stream":true,"stream_options":{"include_usage":true},"n":2}`,
		`{"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"max_tokens":1,"stop":["x"]}`,
	} {
		f.Add([]byte(seed))
	}
	s := newSim(f, func(s *Simulator) {
		s.BlockedTerms = []string{"blocked"}
		s.BlockedOutputTerms = []string{"lazy"}
		s.MaxRequestBodySize = 1 << 16
	})
	f.Fuzz(func(t *testing.T, body []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		req := httptest.NewRequestWithContext(ctx, "POST", chatPath, strings.NewReader(string(body)))
		req.Header.Set("api-key", testKey)
		w := httptest.NewRecorder()
		aborted := false
		func() {
			defer func() {
				if r := recover(); r != nil {
					if r != http.ErrAbortHandler {
						panic(r)
					}
					aborted = true
				}
			}()
			if err := s.ServeHTTP(w, req, nil); err != nil {
				t.Fatalf("ServeHTTP error: %v", err)
			}
		}()
		if ctx.Err() != nil || aborted {
			return // a delay directive outlived the test budget, or a drop directive/fault
		}
		switch w.Code {
		case 200:
			out := w.Body.String()
			if w.Header().Get("Content-Type") == "application/json" {
				if !gjson.Valid(out) {
					t.Fatalf("invalid JSON response %q", out)
				}
				return
			}
			if !strings.HasSuffix(out, "data: [DONE]\n\n") {
				t.Fatalf("stream without [DONE]: %q", out)
			}
			for _, ev := range strings.Split(strings.TrimSuffix(out, "\n\n"), "\n\n") {
				p, ok := strings.CutPrefix(ev, "data: ")
				if !ok || (p != "[DONE]" && !gjson.Valid(p)) {
					t.Fatalf("bad event %q", ev)
				}
			}
		case 400, 413:
			if !gjson.Valid(w.Body.String()) || !gjson.Get(w.Body.String(), "error.message").Exists() {
				t.Fatalf("bad error body %q", w.Body)
			}
		default:
			if !hasString(gjson.ParseBytes(body), "[[sim:") {
				t.Fatalf("status %d without a directive: %s", w.Code, w.Body)
			}
		}
	})
}

// hasString reports whether any string in v contains sub.
func hasString(v gjson.Result, sub string) bool {
	if v.Type == gjson.String {
		return strings.Contains(v.Str, sub)
	}
	found := false
	if v.IsArray() || v.IsObject() {
		v.ForEach(func(_, x gjson.Result) bool {
			found = hasString(x, sub)
			return !found
		})
	}
	return found
}

// FuzzResponsesRequest feeds arbitrary bodies to the Responses handler:
// no panic (other than a deliberate stream abort); 200, 400 or 404 (an
// unknown previous response) unless the body carries a directive or a
// blocked term; every 200 is a valid response object or a stream of typed
// events whose JSON is valid and whose sequence numbers run from 0. The
// seed corpus is in testdata/fuzz/FuzzResponsesRequest.
func FuzzResponsesRequest(f *testing.F) {
	for _, seed := range []string{
		`{"model":"gpt-4o","input":"hi"}`,
		`{"model":"gpt-4o","input":[{"role":"user","content":[{"type":"input_text","text":"hi"}]}],"stream":true,"max_output_tokens":16}`,
		`{"model":"gpt-4o","input":"x","tools":[{"type":"function","name":"f","parameters":{"type":"object","properties":{"a":{"type":"array","minItems":8,"items":{"$ref":"#"}}}}}]}`,
		`{"model":"gpt-4o","input":"x","text":{"format":{"type":"json_schema","name":"t","schema":{"anyOf":[{"type":"integer","minimum":3.5}]}}},"include":["message.output_text.logprobs"]}`,
	} {
		f.Add([]byte(seed))
	}
	s := newSim(f, func(s *Simulator) {
		s.BlockedTerms = []string{"blocked"}
		s.BlockedOutputTerms = []string{"lazy"}
		s.MaxRequestBodySize = 1 << 16
	})
	f.Fuzz(func(t *testing.T, body []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		req := httptest.NewRequestWithContext(ctx, "POST", "/openai/v1/responses", strings.NewReader(string(body)))
		req.Header.Set("api-key", testKey)
		w := httptest.NewRecorder()
		aborted := false
		func() {
			defer func() {
				if r := recover(); r != nil {
					if r != http.ErrAbortHandler {
						panic(r)
					}
					aborted = true
				}
			}()
			if err := s.ServeHTTP(w, req, nil); err != nil {
				t.Fatalf("ServeHTTP error: %v", err)
			}
		}()
		if ctx.Err() != nil || aborted {
			return
		}
		out := w.Body.String()
		switch w.Code {
		case 200:
			if w.Header().Get("Content-Type") == "application/json" {
				if !gjson.Valid(out) || gjson.Get(out, "object").Str != "response" {
					t.Fatalf("invalid response %q", out)
				}
				return
			}
			for i, ev := range strings.Split(strings.TrimSuffix(out, "\n\n"), "\n\n") {
				_, data, ok := strings.Cut(ev, "\ndata: ")
				if !ok || !gjson.Valid(data) || gjson.Get(data, "sequence_number").Int() != int64(i) {
					t.Fatalf("bad event %d %q", i, ev)
				}
			}
		case 400, 404:
			if !gjson.Valid(out) || !gjson.Get(out, "error.message").Exists() {
				t.Fatalf("bad error body %q", out)
			}
		default:
			if !strings.Contains(string(body), "[[sim:") && !strings.Contains(string(body), "blocked") {
				t.Fatalf("status %d for %q", w.Code, body)
			}
		}
	})
}
