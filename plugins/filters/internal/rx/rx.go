// Package rx runs a Go regular expression over a text that may arrive in
// pieces, with the same matches as regexp's FindAllStringIndex on the
// whole text (empty matches left out).
package rx

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"unicode"
	"unicode/utf8"
)

// DefaultCap is the window, in bytes, for patterns whose matches have no
// length bound (*, +, {n,}).
const DefaultCap = 256

// rightContext is what an assertion at a match's end may read: one rune.
const rightContext = utf8.UTFMax

// Pattern is a compiled pattern; safe for concurrent use.
type Pattern struct {
	re     *regexp.Regexp
	ctx    *regexp.Regexp // (?s:.)(?s:.*?)(P): P after a rune of left context
	maxLen int            // longest match in bytes, -1 if unbounded
	left   bool           // P has ^, \A, \b or \B: reads the rune before
}

// Compile compiles expr (Go RE2 syntax).
func Compile(expr string) (*Pattern, error) {
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, err
	}
	tree, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, err
	}
	tree = tree.Simplify()
	p := &Pattern{re: re, maxLen: maxLen(tree), left: looksLeft(tree)}
	if p.left {
		if p.ctx, err = regexp.Compile(`(?s:.)(?s:.*?)(` + expr + `)`); err != nil {
			return nil, fmt.Errorf("rx: %v", err)
		}
	}
	return p, nil
}

// String returns the source.
func (p *Pattern) String() string { return p.re.String() }

// MaxLen returns the longest possible match in bytes, or -1 when
// unbounded.
func (p *Pattern) MaxLen() int { return p.maxLen }

// Window returns how many bytes a stream holds back for this pattern:
// its longest match (capped at cap when unbounded) plus one rune.
func (p *Pattern) Window(cap int) int {
	w := p.maxLen
	if w < 0 || w > cap {
		w = cap
	}
	return w + rightContext
}

// MatchesEmpty reports whether the pattern matches the empty string.
func (p *Pattern) MatchesEmpty() bool { return p.re.MatchString("") }

// Scan appends to dst the matches (pairs of offsets) that
// FindAllStringIndex of the whole text finds at or after from, excluding
// empty ones, and starting before the returned horizon; text[:from] is
// left context and from must be a position where the whole-text search
// would resume (0, or a horizon Scan returned). A match longer than cap
// of a pattern without a length bound may differ from the whole-text one
// when streamed.
func (p *Pattern) Scan(dst [][2]int, text string, from int, final bool, cap int) ([][2]int, int) {
	h := len(text)
	if !final {
		h = alignDown(text, max(from, len(text)-p.Window(cap)))
	}
	pos := from
	for pos < h {
		s, e, ok := p.leftmost(text, pos)
		if !ok || s >= h {
			break
		}
		if e == s { // empty: step over one rune
			_, n := utf8.DecodeRuneInString(text[s:])
			pos = s + max(n, 1)
			continue
		}
		dst = append(dst, [2]int{s, e})
		pos = e
	}
	// The search resumes where the last match ended, if past h.
	return dst, max(h, min(pos, len(text)))
}

// leftmost finds the leftmost-first match starting at or after pos, with
// the text before pos as context.
func (p *Pattern) leftmost(text string, pos int) (int, int, bool) {
	if !p.left || pos == 0 {
		loc := p.re.FindStringIndex(text[pos:])
		if loc == nil {
			return 0, 0, false
		}
		return pos + loc[0], pos + loc[1], true
	}
	_, w := utf8.DecodeLastRuneInString(text[:pos])
	k := pos - w
	loc := p.re.FindStringIndex(text[k:])
	if loc == nil {
		return 0, 0, false
	}
	if loc[0] >= w {
		return k + loc[0], k + loc[1], true
	}
	// The match starts at the context rune, where ^ or \b see a text
	// start that is not one: search again past it, with it as context.
	sub := p.ctx.FindStringSubmatchIndex(text[k:])
	if sub == nil || sub[2] < 0 {
		return 0, 0, false
	}
	return k + sub[2], k + sub[3], true
}

// alignDown moves i back to the start of the rune it is in.
func alignDown(text string, i int) int {
	for i > 0 && i < len(text) && !utf8.RuneStart(text[i]) {
		i--
	}
	return i
}

func maxLen(re *syntax.Regexp) int {
	switch re.Op {
	case syntax.OpNoMatch, syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine,
		syntax.OpBeginText, syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return 0
	case syntax.OpLiteral:
		n := 0
		for _, r := range re.Rune {
			if re.Flags&syntax.FoldCase != 0 {
				n += foldLen(r)
			} else {
				n += runeLen(r)
			}
		}
		return n
	case syntax.OpCharClass:
		if len(re.Rune) == 0 {
			return 0
		}
		return runeLen(re.Rune[len(re.Rune)-1])
	case syntax.OpAnyCharNotNL, syntax.OpAnyChar:
		return utf8.UTFMax
	case syntax.OpCapture, syntax.OpQuest:
		return maxLen(re.Sub[0])
	case syntax.OpStar, syntax.OpPlus:
		if maxLen(re.Sub[0]) == 0 {
			return 0
		}
		return -1
	case syntax.OpRepeat:
		m := maxLen(re.Sub[0])
		if m == 0 {
			return 0
		}
		if re.Max < 0 || m < 0 {
			return -1
		}
		return re.Max * m
	case syntax.OpConcat:
		n := 0
		for _, s := range re.Sub {
			m := maxLen(s)
			if m < 0 {
				return -1
			}
			n += m
		}
		return n
	case syntax.OpAlternate:
		n := 0
		for _, s := range re.Sub {
			m := maxLen(s)
			if m < 0 {
				return -1
			}
			n = max(n, m)
		}
		return n
	}
	return -1
}

func runeLen(r rune) int {
	if n := utf8.RuneLen(r); n > 0 {
		return n
	}
	return utf8.UTFMax
}

// foldLen is the longest UTF-8 form among r's case variants.
func foldLen(r rune) int {
	n := runeLen(r)
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		n = max(n, runeLen(f))
	}
	return n
}

func looksLeft(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpBeginLine, syntax.OpBeginText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return true
	}
	for _, s := range re.Sub {
		if looksLeft(s) {
			return true
		}
	}
	return false
}
