package grounding

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkPack packs 3 records and 9 hits (3 articles × 3 chunks of about
// 150 tokens) into a 2,000-token budget, as a request with a case and
// top 3 articles does.
func BenchmarkPack(b *testing.B) {
	enc := encoder(b)
	recs := sampleRecords()
	recs = append(recs, Record{Entity: "annotation", ID: "n1", Title: "Call", Fields: map[string]string{"notetext": strings.Repeat("Customer tried the USB update. ", 10)}})
	var hits []Hit
	for a := 0; a < 3; a++ {
		for c := 0; c < 3; c++ {
			hits = append(hits, hit("KA-0100"+strconv.Itoa(a), strconv.Itoa(c), strings.Repeat("Article "+strconv.Itoa(a)+" step "+strconv.Itoa(c)+": hold the power button for ten seconds and wait. ", 12), float64(10-a-c)))
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		p, err := PackLimits(recs, hits, Limits{Tokens: 2000, Docs: 3, PerArticle: 2, Records: 5}, enc)
		if err != nil || len(p.Articles) != 3 {
			b.Fatal(err, len(p.Articles))
		}
	}
}

// BenchmarkExtract extracts keys from a header and a chat body with the
// default key specs.
func BenchmarkExtract(b *testing.B) {
	x, _ := NewExtractor(DefaultKeys)
	h := http.Header{"X-Groundgate-Case": {"CAS-01001-K7M2Q9"}}
	body := []byte(`{"model":"gpt-4o","metadata":{"case_number":"CAS-01002-P4X8D1"},"messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"The hotel TVs from case CAS-01001-K7M2Q9 are stuck on the logo after last night's update. What should the staff try first?"}]}`)
	b.ReportAllocs()
	for b.Loop() {
		if len(x.Extract(h, body)) != 2 {
			b.Fatal("keys")
		}
	}
}
