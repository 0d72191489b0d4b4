package tokens

import (
	"math"
	"sync"
	"unicode"
	"unicode/utf8"
)

// This file is an allocation-free re-implementation of tiktoken's
// encode_ordinary token *counting* for cl100k_base and o200k_base.
//
// tiktoken splits text with a regular expression (the "pre-tokenizer") and
// then byte-pair-encodes every piece with the encoding's merge ranks. The
// ranks come from github.com/pkoukk/tiktoken-go-loader (embedded, offline).
// The regular expressions are replaced by hand-written scanners that follow
// the regex semantics exactly (leftmost-first alternation with backtracking);
// the BPE merge is a port of tiktoken's Rust _byte_pair_merge. Both are
// checked against OpenAI's tokenizer (recorded counts in testdata) and
// against github.com/pkoukk/tiktoken-go in the tests.
//
// cl100k_base:
//
//	'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+
//
// o200k_base:
//
//	[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//	|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//	|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+

// Character class bits.
const (
	cL  uint8 = 1 << iota // \p{L}
	cN                    // \p{N}
	cWS                   // \s (Unicode White_Space)
	cNL                   // \r or \n
	cU                    // [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}] (o200k "upper")
	cLw                   // [\p{Ll}\p{Lm}\p{Lo}\p{M}] (o200k "lower")
)

// notOther: a character with none of these bits is in [^\s\p{L}\p{N}].
const notOther = cL | cN | cWS

// notPrefix: a character with none of these bits is in [^\r\n\p{L}\p{N}].
const notPrefix = cL | cN | cNL

var (
	asciiClass [utf8.RuneSelf]uint8
	bmpClass   []uint8 // 64 Ki entries, built by initClasses
	classOnce  sync.Once
)

func initClasses() {
	classOnce.Do(func() {
		t := make([]uint8, 1<<16)
		for r := range t {
			t[r] = classify(rune(r))
		}
		copy(asciiClass[:], t[:utf8.RuneSelf])
		bmpClass = t
	})
}

func classify(r rune) uint8 {
	switch {
	case unicode.IsLetter(r):
		switch {
		case unicode.Is(unicode.Ll, r):
			return cL | cLw
		case unicode.Is(unicode.Lu, r), unicode.Is(unicode.Lt, r):
			return cL | cU
		default: // Lm, Lo
			return cL | cU | cLw
		}
	case unicode.IsMark(r):
		return cU | cLw
	case unicode.IsNumber(r):
		return cN
	case unicode.IsSpace(r): // Unicode White_Space, like \s in Rust's regex
		if r == '\r' || r == '\n' {
			return cWS | cNL
		}
		return cWS
	}
	return 0
}

// at returns the class and byte width of the character at s[i] (i < len(s)).
// s must be valid UTF-8.
func at(s string, i int) (uint8, int) {
	if b := s[i]; b < utf8.RuneSelf {
		return asciiClass[b], 1
	}
	r, w := utf8.DecodeRuneInString(s[i:])
	if r < 1<<16 {
		return bmpClass[r], w
	}
	return classify(r), w
}

// scanWhile advances from i while characters have any bit of mask.
func scanWhile(s string, i int, mask uint8) int {
	for i < len(s) {
		c, w := at(s, i)
		if c&mask == 0 {
			break
		}
		i += w
	}
	return i
}

// contraction matches (?i:s|t|re|ve|m|ll|d) at s[p:] (the part after the
// apostrophe) and returns its byte length, or 0. Case-insensitive matching
// uses Unicode simple case folding like Rust's regex crate, under which 's'
// also matches U+017F LATIN SMALL LETTER LONG S.
func contraction(s string, p int) int {
	if p >= len(s) {
		return 0
	}
	switch s[p] | 0x20 {
	case 's', 'd', 'm', 't':
		return 1
	case 'l':
		if p+1 < len(s) && s[p+1]|0x20 == 'l' {
			return 2
		}
	case 'v', 'r':
		if p+1 < len(s) && s[p+1]|0x20 == 'e' {
			return 2
		}
	case 0xC5 | 0x20: // 0xC5 0xBF is U+017F ſ
		if s[p] == 0xC5 && p+1 < len(s) && s[p+1] == 0xBF {
			return 2
		}
	}
	return 0
}

// whitespaceEnd handles the three whitespace alternatives shared by both
// encodings, at a position whose character is whitespace:
//
//	\s*[\r\n]+  (equivalently \s*[\r\n]) | \s+(?!\S) | \s+
func whitespaceEnd(s string, i int) int {
	j, lastNL, lastStart := i, -1, i
	for j < len(s) {
		c, w := at(s, j)
		if c&cWS == 0 {
			break
		}
		lastStart = j
		j += w
		if c&cNL != 0 {
			lastNL = j
		}
	}
	switch {
	case lastNL > 0: // \s*[\r\n]+ stops after the run's last newline
		return lastNL
	case j == len(s): // \s+(?!\S) at the end of the text
		return j
	case lastStart > i: // \s+(?!\S) leaves the last space for the next word
		return lastStart
	default: // \s+
		return j
	}
}

// nextCL100K returns the end of the cl100k_base piece that starts at i.
func nextCL100K(s string, i int) int {
	n := len(s)
	c0, w0 := at(s, i)
	// '(?i:[sdmt]|ll|ve|re)
	if s[i] == '\'' {
		if k := contraction(s, i+1); k > 0 {
			return i + 1 + k
		}
	}
	// [^\r\n\p{L}\p{N}]?+\p{L}+
	if c0&cL != 0 {
		return scanWhile(s, i+w0, cL)
	}
	if c0&notPrefix == 0 && i+w0 < n {
		if c1, w1 := at(s, i+w0); c1&cL != 0 {
			return scanWhile(s, i+w0+w1, cL)
		}
	}
	// \p{N}{1,3}
	if c0&cN != 0 {
		return digits(s, i+w0)
	}
	// ' ?[^\s\p{L}\p{N}]++[\r\n]*'
	if j := otherRun(s, i, c0, w0); j >= 0 {
		for j < n && (s[j] == '\r' || s[j] == '\n') {
			j++
		}
		return j
	}
	return whitespaceEnd(s, i)
}

// nextO200K returns the end of the o200k_base piece that starts at i.
func nextO200K(s string, i int) int {
	n := len(s)
	c0, w0 := at(s, i)
	prefix := c0&notPrefix == 0 && i+w0 < n
	// [^\r\n\p{L}\p{N}]?[U]*[Lw]+(?i:'s|...)?  (with, then without prefix)
	if prefix {
		if e := wordLower(s, i+w0); e >= 0 {
			return suffix(s, e)
		}
	}
	if c0&(cU|cLw) != 0 {
		if e := wordLower(s, i); e >= 0 {
			return suffix(s, e)
		}
	}
	// [^\r\n\p{L}\p{N}]?[U]+[Lw]*(?i:'s|...)?
	if prefix {
		if c1, w1 := at(s, i+w0); c1&cU != 0 {
			e := scanWhile(s, i+w0+w1, cU)
			return suffix(s, scanWhile(s, e, cLw))
		}
	}
	if c0&cU != 0 {
		e := scanWhile(s, i+w0, cU)
		return suffix(s, scanWhile(s, e, cLw))
	}
	// \p{N}{1,3}
	if c0&cN != 0 {
		return digits(s, i+w0)
	}
	// ' ?[^\s\p{L}\p{N}]+[\r\n/]*'
	if j := otherRun(s, i, c0, w0); j >= 0 {
		for j < n && (s[j] == '\r' || s[j] == '\n' || s[j] == '/') {
			j++
		}
		return j
	}
	return whitespaceEnd(s, i)
}

// wordLower matches [U]*[Lw]+ at j with the regex's backtracking and
// returns the end, or -1. U* takes the longest run; if the next character is
// not in Lw, U* gives back characters until Lw+ can start on one, which then
// matches that single character (the one after it is not in Lw).
func wordLower(s string, j int) int {
	lastLw := -1
	for j < len(s) {
		c, w := at(s, j)
		if c&cU == 0 {
			if c&cLw != 0 {
				return scanWhile(s, j+w, cLw)
			}
			break
		}
		j += w
		if c&cLw != 0 {
			lastLw = j
		}
	}
	return lastLw
}

// suffix matches the optional (?i:'s|'t|'re|'ve|'m|'ll|'d) at e.
func suffix(s string, e int) int {
	if e < len(s) && s[e] == '\'' {
		if k := contraction(s, e+1); k > 0 {
			return e + 1 + k
		}
	}
	return e
}

// digits matches up to two more numeric characters after the first.
func digits(s string, j int) int {
	for k := 0; k < 2 && j < len(s); k++ {
		c, w := at(s, j)
		if c&cN == 0 {
			break
		}
		j += w
	}
	return j
}

// otherRun matches ' ?[^\s\p{L}\p{N}]+' at i and returns its end, or -1.
func otherRun(s string, i int, c0 uint8, w0 int) int {
	j := -1
	if c0&notOther == 0 {
		j = i + w0
	} else if s[i] == ' ' && i+1 < len(s) {
		if c1, w1 := at(s, i+1); c1&notOther == 0 {
			j = i + 1 + w1
		}
	}
	if j < 0 {
		return -1
	}
	for j < len(s) {
		c, w := at(s, j)
		if c&notOther != 0 {
			break
		}
		j += w
	}
	return j
}

// bpe counts tokens for one encoding.
type bpe struct {
	ranks *rankTable
	o200k bool // o200k_base pre-tokenizer, else cl100k_base
}

const (
	noRank = math.MaxInt32
	// Pieces up to this many bytes use tiktoken's quadratic merge on a stack
	// buffer; longer ones use an O(n log n) heap merge with the same result.
	smallPiece = 128
)

// count returns len(encode_ordinary(s)).
func (b *bpe) count(s string) int {
	if !utf8.ValidString(s) {
		s = sanitize(s)
	}
	n := 0
	for i := 0; i < len(s); {
		var j int
		if b.o200k {
			j = nextO200K(s, i)
		} else {
			j = nextCL100K(s, i)
		}
		n += b.pieceCount(s[i:j])
		i = j
	}
	return n
}

// sanitize replaces every invalid UTF-8 byte with U+FFFD, like Go's
// []rune(s) conversion (and tiktoken-go).
func sanitize(s string) string {
	out := make([]byte, 0, len(s)+16)
	for i := 0; i < len(s); {
		r, w := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && w == 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, s[i:i+w]...)
		}
		i += w
	}
	return string(out)
}

func (b *bpe) pieceCount(p string) int {
	if len(p) == 1 {
		return 1 // every byte is a token
	}
	if _, ok := b.ranks.get(p); ok {
		return 1
	}
	if len(p) <= smallPiece {
		return b.mergeSmall(p)
	}
	return b.mergeHeap(p)
}

func (b *bpe) rank(p string) int32 {
	if r, ok := b.ranks.get(p); ok {
		return int32(r)
	}
	return noRank
}

// mergeSmall is tiktoken's _byte_pair_merge; it returns the number of parts.
func (b *bpe) mergeSmall(p string) int {
	type part struct{ start, rank int32 }
	var buf [smallPiece + 1]part
	parts := buf[:0]
	minRank, minIdx := int32(noRank), -1
	for i := 0; i < len(p)-1; i++ {
		r := b.rank(p[i : i+2])
		if r < minRank {
			minRank, minIdx = r, i
		}
		parts = append(parts, part{int32(i), r})
	}
	parts = append(parts, part{int32(len(p) - 1), noRank}, part{int32(len(p)), noRank})
	getRank := func(i int) int32 {
		if i+3 < len(parts) {
			return b.rank(p[parts[i].start:parts[i+3].start])
		}
		return noRank
	}
	for minRank != noRank {
		i := minIdx
		if i > 0 {
			parts[i-1].rank = getRank(i - 1)
		}
		parts[i].rank = getRank(i)
		parts = append(parts[:i+1], parts[i+2:]...)
		minRank, minIdx = noRank, -1
		for j := 0; j < len(parts)-1; j++ {
			if parts[j].rank < minRank {
				minRank, minIdx = parts[j].rank, j
			}
		}
	}
	return len(parts) - 1
}

// mergeHeap gives the same result as mergeSmall (always merge the pair with
// the lowest rank, the leftmost one on ties) in O(n log n), so that one huge
// piece (a long run of letters or spaces) cannot take quadratic time.
// Nodes are indexed by their start byte; heap keys pack (rank, start).
func (b *bpe) mergeHeap(p string) int {
	n := len(p)
	next := make([]int32, n) // start of the following part, n for the last
	prev := make([]int32, n)
	rank := make([]int32, n) // rank of this part merged with the next one
	alive := make([]bool, n)
	h := make(minHeap, 0, n)
	for i := range n {
		next[i], prev[i], alive[i] = int32(i+1), int32(i-1), true
		rank[i] = noRank
		if i+1 < n {
			rank[i] = b.rank(p[i : i+2])
			if rank[i] != noRank {
				h = append(h, uint64(rank[i])<<32|uint64(i))
			}
		}
	}
	h.init()
	// pairRank is the rank of part i merged with the part after it.
	pairRank := func(i int32) int32 {
		j := next[i]
		if j >= int32(n) {
			return noRank
		}
		return b.rank(p[i:next[j]])
	}
	parts := n
	for len(h) > 0 {
		top := h.pop()
		i, r := int32(top&0xFFFFFFFF), int32(top>>32)
		if !alive[i] || rank[i] != r {
			continue // stale
		}
		// merge i with next[i]
		j := next[i]
		alive[j] = false
		next[i] = next[j]
		if next[j] < int32(n) {
			prev[next[j]] = i
		}
		parts--
		rank[i] = pairRank(i)
		if rank[i] != noRank {
			h.push(uint64(rank[i])<<32 | uint64(i))
		}
		if pi := prev[i]; pi >= 0 {
			rank[pi] = pairRank(pi)
			if rank[pi] != noRank {
				h.push(uint64(rank[pi])<<32 | uint64(pi))
			}
		}
	}
	return parts
}

type minHeap []uint64

func (h minHeap) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h *minHeap) push(x uint64) {
	*h = append(*h, x)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if s[p] <= s[i] {
			break
		}
		s[p], s[i] = s[i], s[p]
		i = p
	}
}

func (h *minHeap) pop() uint64 {
	s := *h
	x := s[0]
	last := len(s) - 1
	s[0] = s[last]
	*h = s[:last]
	h.down(0)
	return x
}

func (h minHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h[r] < h[l] {
			m = r
		}
		if h[i] <= h[m] {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}
