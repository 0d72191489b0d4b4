package azuresearch

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzParseResponse: any bytes are either refused with an error or give
// results whose fields hold no annotation keys; never a panic. Seeds are
// in testdata/fuzz/FuzzParseResponse.
func FuzzParseResponse(f *testing.F) {
	f.Add([]byte(semanticAnswer))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := parseResponse(data)
		if err != nil {
			if res != nil {
				t.Fatal("results with an error")
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		for _, r := range res {
			for k := range r.Fields {
				if k == "" || strings.HasPrefix(k, "@") {
					t.Fatalf("kept key %q", k)
				}
			}
		}
	})
}

// FuzzParseEmbedding: the embeddings answer parser never panics and
// returns a non-empty vector or an error.
func FuzzParseEmbedding(f *testing.F) {
	f.Add([]byte(`{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,-0.2]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := parseEmbedding(data)
		if (err == nil) == (len(v) == 0) {
			t.Fatalf("vector %v with error %v", v, err)
		}
	})
}
