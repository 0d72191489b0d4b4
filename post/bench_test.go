package post_test

import (
	"strings"
	"testing"

	"github.com/groundgate/groundgate/plugins/post/citations"
	"github.com/groundgate/groundgate/post"
)

// BenchmarkStreamChunk is the cost per chunk of post.Stream (JSON in and
// out) with the citations and append processors, over a 2 KB answer sent
// in chunks of about 4 bytes.
func BenchmarkStreamChunk(b *testing.B) {
	ch := testChain(b, citations.Citations{Format: "[{number}]({url})", FormatNoURL: "[{number}]"})
	answer := strings.Repeat("Open Settings, then Security [doc1]; accounts unlock after 30 minutes [doc2]. ", 26)
	var pieces []string
	for s := answer; len(s) > 0; {
		n := min(4, len(s))
		pieces = append(pieces, s[:n])
		s = s[n:]
	}
	chunks := azureStream(pieces)
	req := &post.Request{Packed: testPacked()}
	b.ReportAllocs()
	for b.Loop() {
		s := ch.NewStream(req, new(post.Result))
		for _, c := range chunks {
			if _, err := s.Chunk(c); err != nil {
				b.Fatal(err)
			}
		}
		s.End()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(chunks)), "ns/chunk")
}
