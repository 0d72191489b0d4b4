package simulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// discardWriter is a reusable ResponseWriter that counts bytes, so the
// benchmarks measure the handler and not a recorder.
type discardWriter struct {
	h      http.Header
	n      int
	status int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) WriteHeader(code int)        { d.status = code }
func (d *discardWriter) Write(p []byte) (int, error) { d.n += len(p); return len(p), nil }
func (d *discardWriter) Flush()                      {}

func benchServe(b *testing.B, body string) {
	s := newSim(b, nil)
	req := httptest.NewRequest("POST", chatPath, nil)
	req.Header.Set("api-key", testKey)
	w := &discardWriter{h: make(http.Header, 16)}
	rd := bytes.NewReader([]byte(body))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rd.Reset([]byte(body))
		req.Body = nopCloser{rd}
		req.ContentLength = int64(len(body))
		clear(w.h)
		w.n, w.status = 0, 0
		if err := s.ServeHTTP(w, req, nil); err != nil || w.status != 200 {
			b.Fatalf("status %d, err %v", w.status, err)
		}
	}
	b.SetBytes(int64(w.n))
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

const benchChat = `{"messages":[{"role":"system","content":"You are a helpful customer-service assistant. Answer from the provided articles and cite them as [doc1]."},{"role":"user","content":"My order 12345 arrived damaged. How do I get a replacement? [[sim:tokens=60]]"}],"max_tokens":200}`

func BenchmarkChatCompletion(b *testing.B) { benchServe(b, benchChat) }

// BenchmarkChatCompletionGrounded is a request as a grounding gateway
// sends it: a long system message of fenced, escaped knowledge articles
// before the client's question.
func BenchmarkChatCompletionGrounded(b *testing.B) {
	var sys strings.Builder
	sys.WriteString("You are the Contoso Electronics support assistant. Base every statement on the articles below and cite them as [doc1].\\n\\nKnowledge articles:")
	for i := range 3 {
		fmt.Fprintf(&sys, "\\n\\n<<<article ref=\\\"doc%d\\\" id=\\\"KA-0100%d\\\" title=\\\"Soundbar has no sound after a firmware update\\\">>>", i+1, i)
		for range 12 {
			sys.WriteString("\\nUnplug the soundbar for 30 seconds, plug it back in and hold the \\\"input\\\" button until the light blinks twice. ")
		}
		fmt.Fprintf(&sys, "\\n<<<end article>>>")
	}
	body := `{"model":"gpt-4o","messages":[{"role":"system","content":"` + sys.String() + `"},{"role":"system","content":"You are a support agent."},{"role":"user","content":"My soundbar stopped producing sound after the firmware update. What can I do?"}],"max_tokens":300}`
	if !json.Valid([]byte(body)) {
		b.Fatal("invalid body")
	}
	benchServe(b, body)
}

func BenchmarkChatCompletionStream(b *testing.B) {
	benchServe(b, benchChat[:len(benchChat)-1]+`,"stream":true,"stream_options":{"include_usage":true}}`)
}

func BenchmarkEmbeddings(b *testing.B) {
	s := newSim(b, nil)
	body := []byte(`{"input":"My order 12345 arrived damaged. How do I get a replacement?"}`)
	req := httptest.NewRequest("POST", embedPath, nil)
	req.Header.Set("api-key", testKey)
	w := &discardWriter{h: make(http.Header, 16)}
	rd := bytes.NewReader(body)
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(body)
		req.Body = nopCloser{rd}
		req.ContentLength = int64(len(body))
		clear(w.h)
		if err := s.ServeHTTP(w, req, nil); err != nil || w.status != 200 {
			b.Fatalf("status %d, err %v", w.status, err)
		}
	}
}
