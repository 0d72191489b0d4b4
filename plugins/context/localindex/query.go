package localindex

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/groundgate/groundgate/grounding"
	"github.com/groundgate/groundgate/policies"
)

// entityBoost scales the boost of a mentioned entity's documents:
// their score gains entityBoost × (the best lexical score) × the weight
// of the newest message naming the entity, so that the documents of
// the entity the customer talks about now come first, and an entity
// named turns ago still beats one never named.
const entityBoost = 1.0

// fieldBoost is the same for documents a policy's match boosts.
const fieldBoost = 0.5

// semRerank weighs the semantic similarity of a candidate to the query
// (cosine of their term-vector sums, see semantic.go): a candidate's
// score gains semRerank × (the best lexical score) × the cosine.
const semRerank = 0.3

// semRerankDepth is how many of the best lexical candidates (at least)
// are re-ranked.
const semRerankDepth = 100

// wterm is an analyzed query term and its weight.
type wterm struct {
	term string
	w    float32
}

var termPool = sync.Pool{New: func() any { return &termBuf{} }}

type termBuf struct {
	terms   []wterm
	words   []string
	mention []mention
	names   scratch
}

// SearchQuery implements grounding.QueryIndex: the query's parts weigh
// their terms, the entities its messages name (matched against the
// index's entity names) boost or restrict the search, and the policy's
// field matches filter or boost. Hits are as for Search.
func (li *LocalIndex) SearchQuery(ctx context.Context, q grounding.Query, k int, f grounding.Filter) ([]grounding.Hit, error) {
	if li.shared == nil {
		return nil, errors.New("local_index: not provisioned")
	}
	if k <= 0 || strings.TrimSpace(q.Text) == "" {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ix := li.shared.ix
	buf := termPool.Get().(*termBuf)
	defer termPool.Put(buf)

	buf.terms = queryTerms(q.Parts, q.Text, buf.terms[:0], &buf.words)
	qv := ix.sem.textVec(buf.terms, ix.termIDF)
	buf.terms = ix.sem.expand(buf.terms)
	boost, only := ix.boosts(q, buf)
	allowed := ix.filter(f)
	if only != nil {
		prev := allowed
		allowed = func(d int32) bool { return only[d] && (prev == nil || prev(d)) }
	}
	depth := max(searchDepth, 4*k)
	lex := ix.bm25w(buf.terms, depth, allowed, boost, qv)
	return li.hits(li.fuse(ctx, q.Text, lex, depth, allowed), lex, k, f), nil
}

// fuse is the hybrid ranking of the lexical hits with the query's vector
// neighbours; nil (the lexical order) without embeddings or when the
// query cannot be embedded.
func (li *LocalIndex) fuse(ctx context.Context, query string, lex []scored, depth int, allowed func(int32) bool) []fused {
	if !li.Hybrid() {
		return nil
	}
	qv, err := li.emb.query(ctx, query)
	if err != nil {
		li.qfailures.Add(1)
		li.logger.Debug("query embedding failed; BM25 only", zap.Error(err))
		return nil
	}
	return fuse(float32(li.RRFK), lex, li.shared.ix.vector(qv, depth, allowed))
}

// hits turns a ranking into at most k hits under the per-article cap.
func (li *LocalIndex) hits(order []fused, lex []scored, k int, f grounding.Filter) []grounding.Hit {
	ix := li.shared.ix
	if order == nil {
		order = make([]fused, len(lex))
		for i, s := range lex {
			order[i] = fused{scored: s, ranks: [2]int{i + 1, 0}}
		}
	}
	hits := make([]grounding.Hit, 0, k)
	var per map[string]int
	if f.PerArticle > 0 {
		per = make(map[string]int, k)
	}
	for _, s := range order {
		c := ix.chunks[s.doc]
		if per != nil {
			if per[c.ArticleID] >= f.PerArticle {
				continue
			}
			per[c.ArticleID]++
		}
		hits = append(hits, grounding.Hit{Chunk: c, Score: float64(s.score), Lexical: s.ranks[0], Semantic: s.ranks[1]})
		if len(hits) == k {
			break
		}
	}
	return hits
}

// queryTerms analyzes the weighted parts (or text alone, weight 1) into
// terms, each with the highest weight of a part that holds it.
func queryTerms(parts []grounding.QueryPart, text string, dst []wterm, words *[]string) []wterm {
	if len(parts) == 0 {
		parts = []grounding.QueryPart{{Text: text, Weight: 1}}
	}
	for _, p := range parts {
		if p.Weight <= 0 {
			continue
		}
		*words = analyze(p.Text, (*words)[:0])
	next:
		for _, t := range *words {
			for i := range dst {
				if dst[i].term == t {
					dst[i].w = max(dst[i].w, float32(p.Weight))
					continue next
				}
			}
			dst = append(dst, wterm{term: t, w: float32(p.Weight)})
		}
	}
	return dst
}

// boosts resolves the entities the conversation names and the policy's
// field matches into per-document boosts (weight relative to the best
// lexical score) and an optional restriction.
func (ix *index) boosts(q grounding.Query, buf *termBuf) (map[int32]float32, map[int32]bool) {
	var boost map[int32]float32
	var only map[int32]bool
	restrict := func(docs map[int32]bool) {
		if only == nil {
			only = docs
			return
		}
		for d := range only {
			if !docs[d] {
				delete(only, d)
			}
		}
	}
	add := func(d int32, w float32) {
		if boost == nil {
			boost = map[int32]float32{}
		}
		boost[d] = max(boost[d], w)
	}
	if q.Entities != policies.ModeOff && ix.entities != nil && len(ix.entities.names) > 0 {
		ms := buf.mention[:0]
		for i, m := range q.Mentions {
			ms = ix.entities.find(m.Text, i, m.Weight, ms, &buf.names)
		}
		buf.mention = ms
		if len(ms) > 0 {
			newest := ms[0].order
			for _, m := range ms {
				newest = min(newest, m.order)
			}
			in := map[int32]bool{}
			for _, m := range ms {
				for _, d := range ix.entities.docs[m.entity] {
					add(d, entityBoost*float32(m.weight))
					if m.order == newest {
						in[d] = true
					}
				}
			}
			if q.Entities == policies.ModeFilter {
				restrict(in)
			}
		}
	}
	for _, m := range q.Match {
		docs := ix.fieldDocs(m)
		if m.Filter {
			restrict(docs)
			continue
		}
		for d := range docs {
			add(d, fieldBoost)
		}
	}
	return boost, only
}

// fieldDocs are the documents whose field equals one of m's values; for
// the entity field, names are also compared by their words.
func (ix *index) fieldDocs(m grounding.FieldMatch) map[int32]bool {
	out := map[int32]bool{}
	vals := ix.fields[strings.ToLower(m.Field)]
	for _, v := range m.Values {
		for _, d := range vals[strings.ToLower(strings.TrimSpace(v))] {
			out[d] = true
		}
		if m.Field == grounding.FieldEntity && ix.entities != nil {
			ms := ix.entities.find(v, 0, 1, nil, &scratch{})
			for _, mm := range ms {
				for _, d := range ix.entities.docs[mm.entity] {
					out[d] = true
				}
			}
		}
	}
	return out
}

// bm25w is bm25 with weighted terms, per-document boosts and, when qv
// is given, the semantic similarity of each candidate to the query: a
// boosted document's score gains its boost times the best unboosted
// score, and every candidate semRerank times that score times its
// cosine to qv.
func (ix *index) bm25w(terms []wterm, n int, allowed func(int32) bool, boost map[int32]float32, qv []float32) []scored {
	acc := accPool.Get().(*accumulator)
	defer accPool.Put(acc)
	if cap(acc.score) < len(ix.chunks) {
		acc.score = make([]float32, len(ix.chunks))
	}
	acc.score = acc.score[:len(ix.chunks)]
	acc.touched = acc.touched[:0]
	ix.accumulate(acc, terms)
	out := make([]scored, 0, min(len(acc.touched), 4*n))
	var top float32
	for _, d := range acc.touched {
		s := acc.score[d]
		acc.score[d] = 0
		if allowed != nil && !allowed(d) {
			continue
		}
		top = max(top, s)
		out = append(out, scored{doc: d, score: s})
	}
	if len(boost) > 0 {
		for i := range out {
			if b := boost[out[i].doc]; b > 0 {
				out[i].score += b * top
			}
		}
	}
	m := n
	if qv != nil {
		m = max(n, semRerankDepth)
	}
	out = best(out, m)
	if qv != nil {
		// Re-rank the best candidates only: the cosine cannot lift a
		// document from far below, and this bounds the work.
		for i := range out {
			if dv := ix.semDocs[out[i].doc]; dv != nil {
				var dot float32
				for j := range qv {
					dot += qv[j] * dv[j]
				}
				out[i].score += semRerank * top * dot
			}
		}
		slices.SortFunc(out, byScore)
	}
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// accumulate adds every term's BM25 contribution to acc.
func (ix *index) accumulate(acc *accumulator, terms []wterm) {
	for _, t := range terms {
		list := ix.terms[t.term]
		if len(list) == 0 {
			continue
		}
		idf := ix.idf(len(list)) * t.w
		for _, p := range list {
			norm := bm25K1 * (1 - bm25B + bm25B*ix.lengths[p.doc]/ix.avgLen)
			s := idf * p.tf * (bm25K1 + 1) / (p.tf + norm)
			if acc.score[p.doc] == 0 {
				acc.touched = append(acc.touched, p.doc)
			}
			acc.score[p.doc] += s
		}
	}
}

var _ grounding.QueryIndex = (*LocalIndex)(nil)

// best returns the m best of out, best first, without sorting all of
// them: a bounded min-heap (worst of the kept at the root) keeps the
// work near linear when a query touches thousands of documents.
func best(out []scored, m int) []scored {
	if len(out) <= m {
		slices.SortFunc(out, byScore)
		return out
	}
	h := make([]scored, 0, m)
	worse := func(i, j int) bool { return byScore(h[i], h[j]) > 0 } // h[i] ranks after h[j]
	down := func(i int) {
		for {
			l, w := 2*i+1, i
			if l < len(h) && worse(l, w) {
				w = l
			}
			if r := l + 1; r < len(h) && worse(r, w) {
				w = r
			}
			if w == i {
				return
			}
			h[i], h[w] = h[w], h[i]
			i = w
		}
	}
	for _, s := range out {
		switch {
		case len(h) < m:
			h = append(h, s)
			for i := len(h) - 1; i > 0 && worse(i, (i-1)/2); i = (i - 1) / 2 {
				h[i], h[(i-1)/2] = h[(i-1)/2], h[i]
			}
		case byScore(s, h[0]) < 0:
			h[0] = s
			down(0)
		}
	}
	slices.SortFunc(h, byScore)
	return h
}
