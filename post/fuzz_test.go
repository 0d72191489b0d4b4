package post_test

import (
	"encoding/json"
	"testing"

	"github.com/groundgate/groundgate/plugins/post/citations"
	"github.com/groundgate/groundgate/post"
)

// FuzzChunk feeds arbitrary event data to a Stream running the citations
// and append processors: no panic, and valid JSON in gives valid JSON out.
func FuzzChunk(f *testing.F) {
	for _, s := range []string{
		`{"id":"c","choices":[{"index":0,"delta":{"content":"a [do"},"finish_reason":null}]}`,
		`{"id":"c","choices":[{"index":0,"delta":{"content":"c1]"},"finish_reason":"stop"}]}`,
		`{"id":"","choices":[],"prompt_filter_results":[]}`,
		`{"choices":[{"index":3,"delta":{"content":"x"}},{"delta":{"content":"[doc2]"},"finish_reason":"length"}]}`,
		`{"choices":[{"index":-1,"delta":{"content":"x"}}]}`,
		`{"choices":{"0":1}}`,
		`not json`,
	} {
		f.Add([]byte(s), []byte(`{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`))
	}
	ch := testChain(f, citations.Citations{})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		s := ch.NewStream(&post.Request{Packed: testPacked()}, new(post.Result))
		for _, data := range [][]byte{a, b} {
			out, err := s.Chunk(data)
			if err != nil {
				continue
			}
			for _, o := range out {
				if json.Valid(data) && !json.Valid(o) {
					t.Fatalf("valid %s gave invalid %s", data, o)
				}
			}
		}
		for _, o := range s.End() {
			if !json.Valid(o) {
				t.Fatalf("End gave invalid %s", o)
			}
		}
	})
}
