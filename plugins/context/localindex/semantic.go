package localindex

import (
	"hash/fnv"
	"math"
	"slices"
	"sync"
)

// The offline semantic signal: term vectors learned from the indexed
// articles themselves by random indexing (a distributional model: a
// word is known by the company it keeps). Every term gets a fixed sparse
// random "index vector"; a term's context vector is the sum of the index
// vectors of the words around each of its occurrences. Terms used in the
// same contexts — spacious and large, spotless and clean — end up with
// similar context vectors, though they rarely occur together. A query
// term is expanded with its nearest terms, at a fraction of its weight,
// so that "big rooms" also finds "spacious"; and the lexical candidates
// are re-ranked by the cosine between the query's and each chunk's
// idf-weighted sum of term vectors (a small document embedding). Nothing is downloaded and
// nothing leaves the process; the model is rebuilt with the index.
const (
	semDims      = 256  // context vector length
	semNonZero   = 8    // ±1 entries of an index vector
	semWindow    = 3    // words either side that make a context
	semMinDF     = 3    // terms in fewer documents get no neighbours
	semMaxShare  = 0.5  // nor terms in more than this share of documents
	semNeighbors = 5    // expansions per query term
	semMinSim    = 0.3  // cosine a neighbour needs
	semWeight    = 0.15 // an expansion's weight relative to its term
	semMinTermW  = 0.5  // only terms weighing this much are expanded
	// semMinDocs: below this many chunks, co-occurrence counts are too
	// thin to learn from and the model is not built (BM25 alone).
	semMinDocs = 1000
	// semMaxTerms caps the terms that get vectors (the most frequent
	// eligible ones), bounding the neighbour search.
	semMaxTerms = 4000
)

// semantic holds the term vectors of an index. Safe for concurrent use.
type semantic struct {
	ids   map[string]int32 // term → row of vecs (eligible terms only)
	terms []string
	vecs  []float32 // rows of semDims, unit length

	mu   sync.RWMutex
	near map[int32][]neighbor // computed on first use
}

type neighbor struct {
	term string
	sim  float32
}

// buildSemantic learns term vectors from the documents' analyzed text
// (texts[i] is the term sequence of chunk i). N is the number of chunks;
// df gives a term's document frequency.
func buildSemantic(texts [][]string, df func(string) int) *semantic {
	n := len(texts)
	if n < semMinDocs {
		return nil
	}
	s := &semantic{ids: map[string]int32{}, near: map[int32][]neighbor{}}
	maxDF := int(semMaxShare * float64(n))
	seen := map[string]bool{}
	var eligible []string
	for _, ws := range texts {
		for _, w := range ws {
			if seen[w] {
				continue
			}
			seen[w] = true
			if d := df(w); d >= semMinDF && d <= max(maxDF, semMinDF) {
				eligible = append(eligible, w)
			}
		}
	}
	if len(eligible) == 0 {
		return nil
	}
	if len(eligible) > semMaxTerms {
		slices.SortStableFunc(eligible, func(a, b string) int { return df(b) - df(a) })
		eligible = eligible[:semMaxTerms]
	}
	for _, w := range eligible {
		s.ids[w] = int32(len(s.terms))
		s.terms = append(s.terms, w)
	}
	acc := make([]float32, len(s.terms)*semDims)
	idx := map[string]*[semNonZero]int16{}
	indexVec := func(w string) *[semNonZero]int16 {
		if v, ok := idx[w]; ok {
			return v
		}
		v := randomIndex(w)
		idx[w] = v
		return v
	}
	for _, ws := range texts {
		for i, w := range ws {
			row, ok := s.ids[w]
			if !ok {
				continue
			}
			dst := acc[int(row)*semDims : int(row+1)*semDims]
			for j := max(0, i-semWindow); j <= min(len(ws)-1, i+semWindow); j++ {
				if j == i {
					continue
				}
				// Frequent context words say less: weigh by idf.
				d := df(ws[j])
				wgt := float32(math.Log(float64(n+1) / float64(d+1)))
				if wgt <= 0 {
					continue
				}
				for _, e := range indexVec(ws[j]) {
					if e > 0 {
						dst[e-1] += wgt
					} else {
						dst[-e-1] -= wgt
					}
				}
			}
		}
	}
	// Centre the vectors: what every context shares (the common
	// direction) says nothing about a term.
	mean := make([]float32, semDims)
	for r := range s.terms {
		v := acc[r*semDims : (r+1)*semDims]
		normalize(v)
		for i, x := range v {
			mean[i] += x / float32(len(s.terms))
		}
	}
	for r := range s.terms {
		v := acc[r*semDims : (r+1)*semDims]
		for i := range v {
			v[i] -= mean[i]
		}
		normalize(v)
	}
	s.vecs = acc
	return s
}

// randomIndex is w's sparse random vector: semNonZero distinct
// dimensions, each +1 or -1, stored as ±(dim+1). Derived from a hash of
// w, so the same term always gets the same vector.
func randomIndex(w string) *[semNonZero]int16 {
	h := fnv.New64a()
	h.Write([]byte(w))
	x := h.Sum64()
	var v [semNonZero]int16
	used := map[int16]bool{}
	for i := 0; i < semNonZero; {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		d := int16(x % semDims)
		if used[d] {
			continue
		}
		used[d] = true
		if x&(1<<40) != 0 {
			v[i] = d + 1
		} else {
			v[i] = -(d + 1)
		}
		i++
	}
	return &v
}

// warm computes every term's neighbours ahead of the queries that
// would otherwise compute them on first use. It runs once, in the
// background, after the index is built.
func (s *semantic) warm() {
	// Every pair once: a similarity serves both terms' lists.
	n := len(s.terms)
	best := make([][]neighbor, n)
	for i := 0; i < n; i++ {
		vi := s.vecs[i*semDims : (i+1)*semDims]
		for j := i + 1; j < n; j++ {
			vj := s.vecs[j*semDims : (j+1)*semDims]
			var dot float32
			for d := range vi {
				dot += vi[d] * vj[d]
			}
			if dot < semMinSim {
				continue
			}
			best[i] = keepBest(best[i], neighbor{term: s.terms[j], sim: dot})
			best[j] = keepBest(best[j], neighbor{term: s.terms[i], sim: dot})
		}
	}
	s.mu.Lock()
	for i, nb := range best {
		s.near[int32(i)] = nb
	}
	s.mu.Unlock()
}

// keepBest adds nb to the list if it is among the semNeighbors best,
// most similar first.
func keepBest(list []neighbor, nb neighbor) []neighbor {
	if len(list) == semNeighbors && nb.sim <= list[len(list)-1].sim {
		return list
	}
	i := len(list)
	for i > 0 && list[i-1].sim < nb.sim {
		i--
	}
	list = slices.Insert(list, i, nb)
	if len(list) > semNeighbors {
		list = list[:semNeighbors]
	}
	return list
}

// neighbors returns the terms nearest to term (computed once per term).
func (s *semantic) neighbors(term string) []neighbor {
	if s == nil {
		return nil
	}
	row, ok := s.ids[term]
	if !ok {
		return nil
	}
	s.mu.RLock()
	nb, done := s.near[row]
	s.mu.RUnlock()
	if done {
		return nb
	}
	nb = s.compute(row)
	s.mu.Lock()
	s.near[row] = nb
	s.mu.Unlock()
	return nb
}

func (s *semantic) compute(row int32) []neighbor {
	q := s.vecs[int(row)*semDims : int(row+1)*semDims]
	var best []neighbor
	for r := range s.terms {
		if int32(r) == row {
			continue
		}
		v := s.vecs[r*semDims : (r+1)*semDims]
		var dot float32
		for i := range q {
			dot += q[i] * v[i]
		}
		if dot >= semMinSim {
			best = keepBest(best, neighbor{term: s.terms[r], sim: dot})
		}
	}
	return best
}

// expand adds the neighbours of terms[:n] to terms at semWeight times
// their term's weight and their similarity (a term already in the query
// keeps the higher weight).
func (s *semantic) expand(terms []wterm) []wterm {
	if s == nil {
		return terms
	}
	n := len(terms)
	for i := 0; i < n; i++ {
		t := terms[i]
		if t.w < semMinTermW {
			continue
		}
	next:
		for _, nb := range s.neighbors(t.term) {
			w := t.w * semWeight * nb.sim
			for j := range terms {
				if terms[j].term == nb.term {
					terms[j].w = max(terms[j].w, w)
					continue next
				}
			}
			terms = append(terms, wterm{term: nb.term, w: w})
		}
	}
	return terms
}

// textVec is the idf-weighted sum of the term vectors of terms (unit
// length; nil when none has a vector).
func (s *semantic) textVec(terms []wterm, idf func(string) float32) []float32 {
	if s == nil {
		return nil
	}
	var v []float32
	for _, t := range terms {
		row, ok := s.ids[t.term]
		if !ok {
			continue
		}
		if v == nil {
			v = make([]float32, semDims)
		}
		w := t.w * idf(t.term)
		tv := s.vecs[int(row)*semDims : int(row+1)*semDims]
		for i := range v {
			v[i] += w * tv[i]
		}
	}
	if v != nil {
		normalize(v)
	}
	return v
}
