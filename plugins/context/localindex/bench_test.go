package localindex

import (
	"context"
	"testing"

	"github.com/groundgate/groundgate/grounding"
)

// BenchmarkSearch measures one BM25 query over the embedded sample
// articles (60 articles), cycling through the labelled questions.
func BenchmarkSearch(b *testing.B) {
	li := provision(b, `{"dir": "`+b.TempDir()+`"}`)
	qs := loadQuestions(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := li.Search(ctx, qs[i%len(qs)].Q, 5, grounding.Filter{PerArticle: 2}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSearchHybrid measures BM25 + vector ranking + fusion with
// 256-dimension vectors; query vectors are cached after their first call,
// so this excludes the embeddings round trip.
func BenchmarkSearchHybrid(b *testing.B) {
	sim := startSimulator(b)
	li := provision(b, `{"dir": "`+b.TempDir()+`", "embeddings": `+sim.config()+`}`)
	qs := loadQuestions(b)
	ctx := context.Background()
	for _, q := range qs {
		li.Search(ctx, q.Q, 5, grounding.Filter{})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := li.Search(ctx, qs[i%len(qs)].Q, 5, grounding.Filter{PerArticle: 2}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBuild measures indexing the 60 sample articles from scratch.
func BenchmarkBuild(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		li := provision(b, `{"dir": "`+b.TempDir()+`"}`)
		li.Cleanup()
	}
}
