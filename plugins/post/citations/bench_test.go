package citations

import (
	"strings"
	"testing"

	"github.com/groundgate/groundgate/post"
)

// answer2KB is a 2 KB answer with eight markers, one invented.
var answer2KB = func() string {
	var b strings.Builder
	para := "To reset a password, open Settings and choose Security; the reset link is valid for one hour "
	refs := []string{"[doc1]", "[doc2]", "[doc1][doc3]", "[doc9]", "[doc2]"}
	for i := 0; b.Len() < 2048-len(para); i++ {
		b.WriteString(para)
		b.WriteString(refs[i%len(refs)])
		b.WriteString(". ")
	}
	return b.String()
}()

// tokens splits s into pieces of about 4 bytes, like a model's stream.
func tokens(s string) []string {
	var out []string
	for len(s) > 0 {
		n := min(4, len(s))
		out = append(out, s[:n])
		s = s[n:]
	}
	return out
}

func BenchmarkRewrite2KB(b *testing.B) {
	p := mustNew(b, Citations{Format: "[{number}]({url})", FormatNoURL: "[{number}]"})
	req := &post.Request{Packed: testPacked()}
	b.SetBytes(int64(len(answer2KB)))
	b.ReportAllocs()
	for b.Loop() {
		rw := p.NewRewriter(req, new(post.Result))
		rw.Delta(answer2KB)
		rw.Finish()
	}
}

func BenchmarkBody2KB(b *testing.B) {
	ch := post.NewChain(mustNew(b, Citations{Format: "[{number}]({url})", FormatNoURL: "[{number}]"}))
	req := &post.Request{Packed: testPacked()}
	body := []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"` + answer2KB + `"}}],"usage":{"prompt_tokens":900,"completion_tokens":450,"total_tokens":1350}}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ch.Body(body, req, new(post.Result)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStreamDelta is the cost per stream chunk (about 4 bytes of
// answer each) of the text-level rewriter, Finish included.
func BenchmarkStreamDelta(b *testing.B) {
	p := mustNew(b, Citations{Format: "[{number}]({url})", FormatNoURL: "[{number}]"})
	req := &post.Request{Packed: testPacked()}
	toks := tokens(answer2KB)
	b.ReportAllocs()
	for b.Loop() {
		rw := p.NewRewriter(req, new(post.Result))
		for _, t := range toks {
			rw.Delta(t)
		}
		rw.Finish()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(toks)), "ns/chunk")
}
