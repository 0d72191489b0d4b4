package textmatch

import (
	"errors"
	"slices"
	"unicode/utf8"
)

// Hit is one match: pattern ID (as given to Build) and byte offsets in the
// original text.
type Hit struct {
	ID         int32
	Start, End int
}

// Matcher is an immutable Aho–Corasick automaton over folded text; safe
// for concurrent use.
type Matcher struct {
	root  [256]int32 // transitions from the root (always defined)
	fail  []int32
	depth []int32 // folded bytes from the root
	first []int32 // edges of state s: edgeB/edgeT[first[s]:first[s+1]]
	edgeB []byte
	edgeT []int32
	out   []int32 // first output of the state, or -1
	dict  []int32 // nearest state on the fail chain with an output, or -1
	emit  []int32 // the state itself if it has an output, else dict
	outs  []output
	pats  []patInfo
	// WordBoundaries: a pattern that starts (ends) with a word character
	// matches only where the text has no word character right before
	// (after) it.
	wordBoundaries bool
	maxLen         int
}

type output struct{ pat, next int32 }

type patInfo struct {
	id     int32
	n      int32 // folded length in bytes
	ws, we bool  // starts / ends with a word character
}

// Pattern is a term to find.
type Pattern struct {
	ID   int32
	Text string
}

// ErrEmpty is returned when no pattern is left after folding.
var ErrEmpty = errors.New("textmatch: no patterns")

// Build compiles patterns. Patterns are folded; duplicates after folding
// keep every ID. Patterns that fold to nothing are skipped.
func Build(pats []Pattern, wordBoundaries bool) (*Matcher, error) {
	m := &Matcher{wordBoundaries: wordBoundaries}
	type key struct {
		s int32
		b byte
	}
	children := map[key]int32{}
	m.depth = []int32{0}
	m.out = []int32{-1}
	type seenKey struct {
		id int32
		f  string
	}
	seen := map[seenKey]bool{}
	for _, p := range pats {
		f := FoldString(p.Text)
		if f == "" {
			continue
		}
		dup := seenKey{p.ID, f}
		if seen[dup] {
			continue
		}
		seen[dup] = true
		s := int32(0)
		for i := 0; i < len(f); i++ {
			k := key{s, f[i]}
			t, ok := children[k]
			if !ok {
				t = int32(len(m.depth))
				children[k] = t
				m.depth = append(m.depth, m.depth[s]+1)
				m.out = append(m.out, -1)
			}
			s = t
		}
		r0, _ := utf8.DecodeRuneInString(f)
		r1, _ := utf8.DecodeLastRuneInString(f)
		pi := int32(len(m.pats))
		m.pats = append(m.pats, patInfo{id: p.ID, n: int32(len(f)), ws: IsWord(r0), we: IsWord(r1)})
		m.outs = append(m.outs, output{pat: pi, next: m.out[s]})
		m.out[s] = int32(len(m.outs) - 1)
		m.maxLen = max(m.maxLen, len(f))
	}
	if len(m.pats) == 0 {
		return nil, ErrEmpty
	}
	n := len(m.depth)
	// Flatten the children into sorted edge lists.
	type edge struct {
		from int32
		b    byte
		to   int32
	}
	edges := make([]edge, 0, len(children))
	for k, t := range children {
		edges = append(edges, edge{k.s, k.b, t})
	}
	slices.SortFunc(edges, func(a, b edge) int {
		if a.from != b.from {
			return int(a.from - b.from)
		}
		return int(a.b) - int(b.b)
	})
	m.first = make([]int32, n+1)
	m.edgeB = make([]byte, len(edges))
	m.edgeT = make([]int32, len(edges))
	for i, e := range edges {
		m.edgeB[i], m.edgeT[i] = e.b, e.to
		m.first[e.from+1]++
	}
	for s := 1; s <= n; s++ {
		m.first[s] += m.first[s-1]
	}
	// Fail links, breadth first.
	m.fail = make([]int32, n)
	m.dict = make([]int32, n)
	m.dict[0] = -1
	queue := make([]int32, 0, n)
	for b := 0; b < 256; b++ {
		m.root[b] = 0
	}
	for i := m.first[0]; i < m.first[1]; i++ {
		t := m.edgeT[i]
		m.root[m.edgeB[i]] = t
		m.fail[t] = 0
		m.dict[t] = -1
		queue = append(queue, t)
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		for i := m.first[s]; i < m.first[s+1]; i++ {
			b, t := m.edgeB[i], m.edgeT[i]
			f := m.fail[s]
			for {
				if g := m.next(f, b); g >= 0 {
					m.fail[t] = g
					break
				}
				if f == 0 {
					m.fail[t] = 0
					break
				}
				f = m.fail[f]
			}
			if fo := m.fail[t]; m.out[fo] >= 0 {
				m.dict[t] = fo
			} else {
				m.dict[t] = m.dict[fo]
			}
			queue = append(queue, t)
		}
	}
	m.emit = make([]int32, n)
	for s := range m.emit {
		if m.out[s] >= 0 {
			m.emit[s] = int32(s)
		} else {
			m.emit[s] = m.dict[s]
		}
	}
	return m, nil
}

// MaxLen returns the longest pattern, in folded bytes.
func (m *Matcher) MaxLen() int { return m.maxLen }

// Len returns the number of distinct patterns.
func (m *Matcher) Len() int { return len(m.pats) }

// next returns the goto transition, or -1.
func (m *Matcher) next(s int32, b byte) int32 {
	if s == 0 {
		return m.root[b]
	}
	lo, hi := m.first[s], m.first[s+1]
	if hi-lo <= 8 {
		for i := lo; i < hi; i++ {
			if m.edgeB[i] == b {
				return m.edgeT[i]
			}
		}
		return -1
	}
	for lo < hi {
		h := int32(uint32(lo+hi) >> 1)
		switch c := m.edgeB[h]; {
		case c == b:
			return m.edgeT[h]
		case c < b:
			lo = h + 1
		default:
			hi = h
		}
	}
	return -1
}

func (m *Matcher) step(s int32, b byte) int32 {
	for {
		if t := m.next(s, b); t >= 0 {
			return t
		}
		if s == 0 {
			return 0
		}
		s = m.fail[s]
	}
}

// settle decides the pending matches once the rune after them is known:
// kept unless it is a word character and the pattern needs a boundary.
func (m *Matcher) settle(dst []Hit, pend []pendingHit, word bool) ([]Hit, []pendingHit) {
	for _, p := range pend {
		if !(m.wordBoundaries && p.we && word) {
			dst = append(dst, p.Hit)
		}
	}
	return dst, pend[:0]
}

// report adds the patterns ending at state (after k folded bytes; the
// current rune ends at end) to pend, if they start on a rune and on a
// word boundary.
func (m *Matcher) report(pend []pendingHit, state int32, text string, ring []int32, k, end int) []pendingHit {
	mask := len(ring) - 1
	for s := m.emit[state]; s >= 0; s = m.dict[s] {
		for o := m.out[s]; o >= 0; o = m.outs[o].next {
			p := &m.pats[m.outs[o].pat]
			sk := k - int(p.n)
			st := int(ring[sk&mask])
			if sk > 0 && int(ring[(sk-1)&mask]) == st {
				continue // starts inside a rune's folded form
			}
			if m.wordBoundaries && p.ws && st > 0 {
				var pr rune
				if c := text[st-1]; c < utf8.RuneSelf {
					pr = rune(c)
				} else {
					pr, _ = utf8.DecodeLastRuneInString(text[:st])
				}
				if IsWord(pr) {
					continue
				}
			}
			pend = append(pend, pendingHit{Hit{p.id, st, end}, p.we})
		}
	}
	return pend
}

type pendingHit struct {
	Hit
	we bool
}

// Scan appends to dst every match that starts in text[from:] and returns
// the horizon: every match starting before it has been appended, and none
// after it (those may still change with the text that follows, unless
// final). text[:from] is left context only (one rune of it is read).
// Scan(dst, text, 0, true) finds every match in text. Matches may overlap.
func (m *Matcher) Scan(dst []Hit, text string, from int, final bool) ([]Hit, int) {
	var ringArr [256]int32
	ring := ringArr[:]
	if m.maxLen >= len(ringArr) {
		n := 512
		for n <= m.maxLen {
			n <<= 1
		}
		ring = make([]int32, n)
	}
	mask := len(ring) - 1
	var pendArr [8]pendingHit
	pend := pendArr[:0]
	start := len(dst)

	prevSpace := false
	if from > 0 {
		r, _ := utf8.DecodeLastRuneInString(text[:from])
		prevSpace = isSpace(r)
	}
	k := 0 // folded bytes fed
	state := int32(0)
	i := from
	for i < len(text) {
		c := text[i]
		if c < utf8.RuneSelf { // fast path: one folded byte
			fb := byte(foldTable[c][0])
			if fb == ' ' {
				if prevSpace {
					if len(pend) > 0 {
						dst, pend = m.settle(dst, pend, false)
					}
					i++
					continue
				}
				prevSpace = true
			} else {
				prevSpace = false
			}
			if len(pend) > 0 {
				dst, pend = m.settle(dst, pend, asciiWord[c])
			}
			ring[k&mask] = int32(i)
			k++
			state = m.step(state, fb)
			if m.emit[state] >= 0 {
				pend = m.report(pend, state, text, ring, k, i+1)
			}
			i++
			continue
		}
		if !final && !utf8.FullRuneInString(text[i:]) {
			break // the rest of this rune is still to come
		}
		r, size := utf8.DecodeRuneInString(text[i:])
		f1, f2 := Fold(r)
		space := f1 == ' '
		if space && prevSpace {
			f1 = -1
		}
		prevSpace = space
		if len(pend) > 0 {
			if f1 < 0 && !space && IsWord(r) { // a combining mark joins the match
				for j := range pend {
					pend[j].End = i + size
				}
			} else {
				dst, pend = m.settle(dst, pend, IsWord(r))
			}
		}
		for fi, fr := range [2]rune{f1, f2} {
			if fr < 0 {
				continue
			}
			var enc [4]byte
			n := utf8.EncodeRune(enc[:], fr)
			for j := 0; j < n; j++ {
				ring[k&mask] = int32(i)
				k++
				state = m.step(state, enc[j])
				if m.emit[state] >= 0 && j == n-1 && (fi == 1 || f2 < 0) {
					// (a match ending inside a rune's folded form is no match)
					pend = m.report(pend, state, text, ring, k, i+size)
				}
			}
		}
		i += size
	}
	h := len(text)
	if final {
		for _, p := range pend {
			dst = append(dst, p.Hit)
		}
		return dst, h
	}
	h = i
	if d := int(m.depth[state]); d > 0 {
		h = min(h, int(ring[(k-d)&mask]))
	}
	for _, p := range pend {
		h = min(h, p.Start)
	}
	// Keep only what starts before the horizon; the rest is found again.
	out := dst[:start]
	for _, x := range dst[start:] {
		if x.Start < h {
			out = append(out, x)
		}
	}
	return out, h
}
