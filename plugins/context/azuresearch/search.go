package azuresearch

import (
	"context"
	"errors"
	"sort"
	"strings"
	"unicode"

	"github.com/groundgate/groundgate/grounding"
)

// Search implements grounding.Index: the query over the index as
// query_type says, at most k hits best first.
//
// Score is @search.rerankerScore when the semantic ranker ran, else
// @search.score. Ranks follow from the answer's order: keyword queries
// set Lexical, vector queries Semantic; with the semantic ranker Semantic
// is the reranked order and, for semantic (not hybrid) queries, Lexical
// the order of the BM25 @search.score. Hybrid queries without the ranker
// are fused by the service (RRF) and set neither rank.
func (s *AzureSearch) Search(ctx context.Context, query string, k int, f grounding.Filter) ([]grounding.Hit, error) {
	return s.search(ctx, query, k, f, extras{})
}

func (s *AzureSearch) search(ctx context.Context, query string, k int, f grounding.Filter, x extras) ([]grounding.Hit, error) {
	if s.c == nil {
		return nil, errors.New("azure_search: not provisioned")
	}
	text := queryText(query)
	if text == "" || k <= 0 {
		return nil, nil
	}
	top := k
	if f.PerArticle > 0 {
		top = 2 * k // room for the chunks the per-article cap drops
	}
	top = min(top, maxTop)
	var vec []float32
	if s.emb != nil {
		var err error
		if vec, err = s.emb.embed(ctx, text); err != nil {
			return nil, err
		}
	}
	body, ok := s.plan.bodyWith(text, top, vec, f, x)
	if !ok {
		return nil, nil // only unusable article numbers: nothing can match
	}
	data, err := s.c.post(ctx, s.url, "POST indexes/"+s.Index+"/docs/search", body, s.creds)
	if err != nil {
		return nil, err
	}
	results, err := parseResponse(data)
	if err != nil {
		return nil, errors.New("azure_search: POST indexes/" + s.Index + "/docs/search: " + err.Error())
	}
	return s.hits(results, text, k, f), nil
}

// hits maps results to hits, applying the filter's caps.
func (s *AzureSearch) hits(results []result, text string, k int, f grounding.Filter) []grounding.Hit {
	fm := s.fields()
	lexical := s.lexicalRanks(results)
	var terms []string
	out := make([]grounding.Hit, 0, min(k, len(results)))
	per := map[string]int{}
	for i, r := range results {
		c := grounding.Chunk{
			ArticleID: r.Fields[fm.ID],
			ChunkID:   "0",
			Number:    r.Fields[fm.Number],
			Title:     r.Fields[fm.Title],
			URL:       r.Fields[fm.URL],
			Text:      strings.TrimSpace(r.Fields[fm.Content]),
			Internal:  fm.Internal != "" && r.Fields[fm.Internal] == "true",
		}
		if fm.Article != "" && r.Fields[fm.Article] != "" {
			c.ArticleID, c.ChunkID = r.Fields[fm.Article], r.Fields[fm.ID]
		}
		if c.Text == "" {
			c.Text = strings.Join(r.Captions, " … ") // no content field returned: the captions still ground
		}
		if c.ArticleID == "" || c.Text == "" {
			continue
		}
		if f.ExcludeInternal && c.Internal || len(f.Numbers) > 0 && !hasFold(f.Numbers, c.Number) {
			continue // the filter should have left it out already
		}
		chunks := []grounding.Chunk{c}
		if s.ChunkTokens > 0 && s.enc.Count(c.Text) > s.ChunkTokens {
			if terms == nil {
				terms = queryTerms(text)
			}
			a := grounding.Article{ID: c.ArticleID, Number: c.Number, Title: c.Title, URL: c.URL, Content: c.Text, Internal: c.Internal}
			chunks = rankChunks(grounding.ChunkArticle(a, s.enc, s.ChunkTokens), terms)
			if c.ChunkID != "0" { // a chunked document of a chunked index: keep ids unique
				for j := range chunks {
					chunks[j].ChunkID = c.ChunkID + "." + chunks[j].ChunkID
				}
			}
		} else {
			chunks[0].Tokens = s.enc.Count(c.Text)
		}
		score := r.Score
		if r.HasReranker {
			score = r.Reranker
		}
		for _, ch := range chunks {
			if f.PerArticle > 0 && per[ch.ArticleID] >= f.PerArticle {
				break
			}
			per[ch.ArticleID]++
			h := grounding.Hit{Chunk: ch, Score: score}
			switch {
			case s.plan.reranked:
				h.Semantic, h.Lexical = i+1, lexical[i]
			case s.plan.queryType == Keyword:
				h.Lexical = i + 1
			case s.plan.queryType == Vector:
				h.Semantic = i + 1
			}
			out = append(out, h)
			if len(out) == k {
				return out
			}
		}
	}
	return out
}

// lexicalRanks gives each result its rank by @search.score when that is
// the BM25 score (semantic queries: the ranker reorders the BM25 top 50);
// zeros otherwise (hybrid scores are fused, not lexical).
func (s *AzureSearch) lexicalRanks(results []result) []int {
	ranks := make([]int, len(results))
	if s.plan.queryType != Semantic {
		return ranks
	}
	idx := make([]int, len(results))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return results[idx[a]].Score > results[idx[b]].Score })
	for r, i := range idx {
		ranks[i] = r + 1
	}
	return ranks
}

// queryTerms returns the lower-case words (3 or more letters or digits)
// of the query, without duplicates.
func queryTerms(query string) []string {
	var out []string
	seen := map[string]bool{}
	for _, w := range strings.FieldsFunc(strings.ToLower(query), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		if len([]rune(w)) >= 3 && !seen[w] && len(out) < 32 {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}

// rankChunks orders one document's chunks by how many of terms each
// holds (most first, ties in document order) and keeps the best one plus
// every other that holds at least one.
func rankChunks(chunks []grounding.Chunk, terms []string) []grounding.Chunk {
	if len(chunks) <= 1 {
		return chunks
	}
	n := make([]int, len(chunks))
	for i, c := range chunks {
		text := strings.ToLower(c.Heading + "\n" + c.Text)
		for _, t := range terms {
			if strings.Contains(text, t) {
				n[i]++
			}
		}
	}
	idx := make([]int, len(chunks))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return n[idx[a]] > n[idx[b]] })
	out := []grounding.Chunk{chunks[idx[0]]}
	for _, i := range idx[1:] {
		if n[i] > 0 {
			out = append(out, chunks[i])
		}
	}
	return out
}

func hasFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
