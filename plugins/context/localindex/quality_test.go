package localindex

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/groundgate/groundgate/grounding"
)

type labelled struct {
	Q        string   `json:"q"`
	Articles []string `json:"articles"`
}

func loadQuestions(t testing.TB) []labelled {
	t.Helper()
	b, err := os.ReadFile("../../../sampledata/eval/questions.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Questions []labelled `json:"questions"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f.Questions
}

// quality holds retrieval metrics over a labelled set.
type quality struct {
	n               int
	r1, r3, r5, mrr float64
	misses          []string // questions with no correct article in the top 10
}

func (q quality) String() string {
	return fmt.Sprintf("questions=%d recall@1=%.3f recall@3=%.3f recall@5=%.3f MRR@10=%.3f", q.n, q.r1, q.r3, q.r5, q.mrr)
}

// evaluate searches every question (one chunk per article, so ranks are
// article ranks) and measures recall@k — the share of questions with a
// correct article in the top k — and the mean reciprocal rank of the
// first correct article within the top 10.
func evaluate(t testing.TB, idx grounding.Index, qs []labelled) quality {
	t.Helper()
	var q quality
	for _, l := range qs {
		hits, err := idx.Search(context.Background(), l.Q, 10, grounding.Filter{PerArticle: 1})
		if err != nil {
			t.Fatal(err)
		}
		rank := 0
		for i, h := range hits {
			for _, a := range l.Articles {
				if h.Number == a {
					rank = i + 1
				}
			}
			if rank > 0 {
				break
			}
		}
		q.n++
		if rank == 0 {
			got := ""
			if len(hits) > 0 {
				got = hits[0].Number
			}
			q.misses = append(q.misses, fmt.Sprintf("%q want %v, top %s", l.Q, l.Articles, got))
			continue
		}
		q.mrr += 1 / float64(rank)
		if rank <= 1 {
			q.r1++
		}
		if rank <= 3 {
			q.r3++
		}
		if rank <= 5 {
			q.r5++
		}
	}
	n := float64(q.n)
	q.r1, q.r3, q.r5, q.mrr = q.r1/n, q.r3/n, q.r5/n, q.mrr/n
	return q
}

// TestRetrievalQuality measures the local index (BM25 only, the embedded
// sample articles) on the labelled question set and fails when quality
// drops below floors set well under the measured figures.
func TestRetrievalQuality(t *testing.T) {
	qs := loadQuestions(t)
	if len(qs) < 60 {
		t.Fatalf("only %d labelled questions", len(qs))
	}
	li := provision(t, `{"dir": "`+t.TempDir()+`"}`)
	q := evaluate(t, li, qs)
	t.Logf("BM25: %v", q)
	for _, m := range q.misses {
		t.Logf("miss: %s", m)
	}
	// Measured: recall@1 0.833, recall@3 0.903, recall@5 0.958, MRR 0.880.
	floors := map[string][2]float64{"recall@1": {q.r1, 0.70}, "recall@3": {q.r3, 0.80}, "recall@5": {q.r5, 0.85}, "MRR": {q.mrr, 0.75}}
	for name, v := range floors {
		if v[0] < v[1] {
			t.Errorf("%s = %.3f, below the floor %.2f", name, v[0], v[1])
		}
	}
}

// queryIndex adapts SearchQuery (the gateway's path) to grounding.Index
// for evaluate: the question alone, no entity boost.
type queryIndex struct{ li *LocalIndex }

func (q queryIndex) Search(ctx context.Context, text string, k int, f grounding.Filter) ([]grounding.Hit, error) {
	return q.li.SearchQuery(ctx, grounding.Query{Text: text, Entities: "off"}, k, f)
}

// TestRetrievalQualitySemantic runs the gateway's query path with and
// without the offline semantic signal. The 60 sample articles are too
// few to learn term vectors from (semMinDocs), so both must rank alike;
// the signal is measured on a real corpus by cmd/retrievalbench.
func TestRetrievalQualitySemantic(t *testing.T) {
	qs := loadQuestions(t)
	off := evaluate(t, queryIndex{provision(t, `{"dir": "`+t.TempDir()+`", "semantic": "off"}`)}, qs)
	on := evaluate(t, queryIndex{provision(t, `{"dir": "`+t.TempDir()+`"}`)}, qs)
	t.Logf("BM25:        %v", off)
	t.Logf("BM25+terms:  %v", on)
	if on.String() != off.String() || len(on.misses) != len(off.misses) {
		t.Errorf("semantic on a small corpus: %v, BM25 alone %v", on, off)
	}
}
