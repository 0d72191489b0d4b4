package localindex

import (
	"math"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/groundgate/groundgate/grounding"
)

// BM25 parameters and field weights (a simplified BM25F: a term's
// frequency is the weighted sum of its frequencies in the fields, and the
// document length the weighted sum of the field lengths).
const (
	bm25K1 = 1.2
	bm25B  = 0.75

	weightTitle       = 3
	weightKeywords    = 2
	weightDescription = 1.5
	weightHeading     = 2
	weightText        = 1
	weightEntity      = 2
)

// fieldWeightsVersion is part of the snapshot settings.
const fieldWeightsVersion = "t3k2d1.5h2x1e2"

// docTerms computes a chunk's weighted term frequencies and length.
func docTerms(c grounding.Chunk, keywords []string, description string) (terms []string, tf []float32, length float32) {
	freq := map[string]float32{}
	var buf []string
	add := func(text string, w float32) {
		buf = analyze(text, buf[:0])
		for _, t := range buf {
			freq[t] += w
		}
		length += w * float32(len(buf))
	}
	add(c.Title, weightTitle)
	add(strings.Join(keywords, " , "), weightKeywords)
	add(description, weightDescription)
	add(c.Heading, weightHeading)
	add(c.Text, weightText)
	if c.Entity != "" && !strings.EqualFold(c.Entity, c.Title) {
		add(c.Entity, weightEntity)
	}
	terms = make([]string, 0, len(freq))
	for t := range freq {
		terms = append(terms, t)
	}
	sort.Strings(terms)
	tf = make([]float32, len(terms))
	for i, t := range terms {
		tf[i] = freq[t]
	}
	return terms, tf, length
}

// posting is one document of a term's list.
type posting struct {
	doc int32
	tf  float32
}

// index is the in-memory searchable form of a snapshot. Immutable once
// built; safe for concurrent searches.
type index struct {
	chunks  []grounding.Chunk
	lengths []float32
	vecs    [][]float32 // nil entries when not embedded
	dims    int
	terms   map[string][]posting
	avgLen  float32
	numbers map[string][]int32 // lower(article number) → docs
	// fields maps "entity", "title" and metadata names to lower(value)
	// → docs, for filters and boosts.
	fields   map[string]map[string][]int32
	entities *entityTable
	sem      *semantic // nil: semantic off
	semDocs  [][]float32
}

func (ix *index) termIDF(t string) float32 { return ix.idf(len(ix.terms[t])) }

func buildIndex(chunks []snapChunk, withSemantic bool) *index {
	ix := &index{
		chunks:  make([]grounding.Chunk, len(chunks)),
		lengths: make([]float32, len(chunks)),
		vecs:    make([][]float32, len(chunks)),
		terms:   map[string][]posting{},
		numbers: map[string][]int32{},
	}
	var total float64
	for i, c := range chunks {
		ix.chunks[i] = c.Chunk
		ix.chunks[i].TextHash = grounding.TextHash(c.Chunk.Text) // once, not per search
		ix.lengths[i] = c.Len
		total += float64(c.Len)
		if len(c.Vec) > 0 {
			ix.vecs[i] = c.Vec
			ix.dims = len(c.Vec)
		}
		for j, t := range c.Terms {
			ix.terms[t] = append(ix.terms[t], posting{doc: int32(i), tf: c.TF[j]})
		}
		n := strings.ToLower(c.Chunk.Number)
		ix.numbers[n] = append(ix.numbers[n], int32(i))
		ix.addField(grounding.FieldTitle, c.Chunk.Title, int32(i))
		ix.addField(grounding.FieldEntity, c.Chunk.Entity, int32(i))
		for k, v := range c.Chunk.Metadata {
			ix.addField(k, v, int32(i))
		}
	}
	entityOf := make([]string, len(ix.chunks))
	for i := range ix.chunks {
		entityOf[i] = ix.chunks[i].Entity
	}
	ix.entities = buildEntities(entityOf, ix.distinctive, func(w string) bool { return len(ix.terms[stem(w)]) > 0 })
	if withSemantic {
		texts := make([][]string, len(ix.chunks))
		for i, c := range ix.chunks {
			texts[i] = analyze(c.Title+"\n"+c.Heading+"\n"+c.Text, nil)
		}
		ix.sem = buildSemantic(texts, func(t string) int { return len(ix.terms[t]) })
		if ix.sem != nil {
			ix.semDocs = make([][]float32, len(texts))
			var buf []wterm
			for i, ws := range texts {
				buf = buf[:0]
				for _, w := range ws {
					buf = append(buf, wterm{term: w, w: 1})
				}
				ix.semDocs[i] = ix.sem.textVec(buf, ix.termIDF)
			}
			go ix.sem.warm()
		}
	}
	if len(chunks) > 0 {
		ix.avgLen = float32(total / float64(len(chunks)))
	}
	if ix.avgLen == 0 {
		ix.avgLen = 1
	}
	return ix
}

func (ix *index) addField(field, value string, doc int32) {
	if value == "" {
		return
	}
	if ix.fields == nil {
		ix.fields = map[string]map[string][]int32{}
	}
	m := ix.fields[field]
	if m == nil {
		m = map[string][]int32{}
		ix.fields[field] = m
	}
	v := strings.ToLower(strings.TrimSpace(value))
	m[v] = append(m[v], doc)
}

// distinctive reports whether word (a name word) is rare in the
// documents other than own (an entity's, ascending): then it may name
// the entity alone.
func (ix *index) distinctive(word string, own []int32) bool {
	list := ix.terms[stem(word)]
	other := 0
	for _, p := range list {
		if _, mine := slices.BinarySearch(own, p.doc); !mine {
			other++
		}
	}
	return float64(other) <= distinctiveShare*float64(len(ix.chunks))
}

// distinctiveShare is the share of documents a name word may appear in,
// outside its entity, and still name the entity alone.
const distinctiveShare = 0.002

type scored struct {
	doc   int32
	score float32
}

// byScore orders best first, then by document order (deterministic).
func byScore(a, b scored) int {
	switch {
	case a.score > b.score:
		return -1
	case a.score < b.score:
		return 1
	}
	return int(a.doc - b.doc)
}

var accPool = sync.Pool{New: func() any { return new(accumulator) }}

type accumulator struct {
	score   []float32
	touched []int32
	terms   []string
}

// bm25 returns the top n documents for the analyzed query, best first,
// skipping documents allowed rejects.
func (ix *index) bm25(query string, n int, allowed func(int32) bool) []scored {
	acc := accPool.Get().(*accumulator)
	defer accPool.Put(acc)
	if cap(acc.score) < len(ix.chunks) {
		acc.score = make([]float32, len(ix.chunks))
	}
	acc.score = acc.score[:len(ix.chunks)]
	acc.touched = acc.touched[:0]
	acc.terms = analyze(query, acc.terms[:0])
	slices.Sort(acc.terms)
	terms := slices.Compact(acc.terms)

	N := float64(len(ix.chunks))
	for _, t := range terms {
		list := ix.terms[t]
		if len(list) == 0 {
			continue
		}
		df := float64(len(list))
		idf := float32(math.Log(1 + (N-df+0.5)/(df+0.5)))
		for _, p := range list {
			norm := bm25K1 * (1 - bm25B + bm25B*ix.lengths[p.doc]/ix.avgLen)
			s := idf * p.tf * (bm25K1 + 1) / (p.tf + norm)
			if acc.score[p.doc] == 0 {
				acc.touched = append(acc.touched, p.doc)
			}
			acc.score[p.doc] += s
		}
	}
	out := make([]scored, 0, min(len(acc.touched), n*2))
	for _, d := range acc.touched {
		s := acc.score[d]
		acc.score[d] = 0
		if allowed != nil && !allowed(d) {
			continue
		}
		out = append(out, scored{doc: d, score: s})
	}
	slices.SortFunc(out, byScore)
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// vector returns the top n documents by cosine similarity to q (both unit
// length), skipping documents allowed rejects.
func (ix *index) vector(q []float32, n int, allowed func(int32) bool) []scored {
	out := make([]scored, 0, len(ix.vecs))
	for i, v := range ix.vecs {
		if len(v) != len(q) || (allowed != nil && !allowed(int32(i))) {
			continue
		}
		var dot float32
		for j := range v {
			dot += v[j] * q[j]
		}
		out = append(out, scored{doc: int32(i), score: dot})
	}
	slices.SortFunc(out, byScore)
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// fused is a document of the fused ranking with its 1-based rank in each
// input ranking (0: absent).
type fused struct {
	scored
	ranks [2]int
}

// fuse merges two rankings by reciprocal rank fusion:
// score(d) = Σ 1/(k + rank(d)). Ties keep document order.
func fuse(k float32, lexical, semantic []scored) []fused {
	type entry struct {
		doc        int32
		list, rank int
	}
	entries := make([]entry, 0, len(lexical)+len(semantic))
	for li, l := range [2][]scored{lexical, semantic} {
		for r, s := range l {
			entries = append(entries, entry{doc: s.doc, list: li, rank: r + 1})
		}
	}
	slices.SortFunc(entries, func(a, b entry) int { return int(a.doc - b.doc) })
	out := make([]fused, 0, len(entries))
	for i := 0; i < len(entries); {
		f := fused{scored: scored{doc: entries[i].doc}}
		for ; i < len(entries) && entries[i].doc == f.doc; i++ {
			f.ranks[entries[i].list] = entries[i].rank
			f.score += 1 / (k + float32(entries[i].rank))
		}
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b fused) int { return byScore(a.scored, b.scored) })
	return out
}

// idf is BM25's inverse document frequency of a term in df documents.
func (ix *index) idf(df int) float32 {
	N, f := float64(len(ix.chunks)), float64(df)
	return float32(math.Log(1 + (N-f+0.5)/(f+0.5)))
}
