package textmatch

import (
	"unicode"
	"unicode/utf8"
)

// Spaced-out words ("i g n o r e", "i.g.n.o.r.e", "I-G-N-O-R-E") hide a
// term from a matcher that folds each rune on its own. Despace makes a
// second view of such a text in which every run of single letters joined
// by one and the same separator is written as a word: "i g n o r e  a l l"
// reads "ignore  all", "i.g.n.o.r.e a.l.l" reads "ignore all". A run
// spaced with single spaces throughout ("i g n o r e a l l") has no word
// gaps left; it becomes one word ("ignoreall"), which a matcher built
// without word boundaries can still search (see Squeeze).

// MinSpacedRun is the fewest single letters that make a spaced-out run.
const MinSpacedRun = 3

// View is a text rewritten for matching, with the offsets that map its
// bytes back to the original text.
type View struct {
	Text string
	// Runs are the joined runs, as [start, end) byte offsets in Text.
	Runs       [][2]int
	start, end []int32 // per byte of Text: the original rune's span
}

// Span maps a span of the view's text back to the original text.
func (v *View) Span(start, end int) (int, int) {
	if end <= start {
		s := int(v.start[min(start, len(v.start)-1)])
		return s, s
	}
	return int(v.start[start]), int(v.end[end-1])
}

var asciiLetter, asciiSpacer = func() (l, s [128]bool) {
	for c := rune(0); c < 128; c++ {
		l[c] = isLetterRune(c)
		s[c] = isSpacer(c)
	}
	return l, s
}()

// isSpacer reports the separators of spaced-out letters.
func isSpacer(r rune) bool {
	switch r {
	case ' ', '.', '-', '_', '*', '|', '+', '~', '/', '\u00a0', '\u00b7', '\u2022', '\u2009', '\u202f', '\u3000', '\t':
		return true
	}
	return false
}

func isLetterRune(r rune) bool {
	if r < utf8.RuneSelf {
		return ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z')
	}
	return unicode.IsLetter(r)
}

// Despace returns the despaced view of text, or ok false when text has no
// spaced-out run (the common case: one pass, no allocation).
func Despace(text string) (v View, ok bool) {
	first := nextSpacedRun(text, 0)
	if first.start < 0 {
		return View{}, false
	}
	buf := make([]byte, 0, len(text))
	v.start = make([]int32, 0, len(text))
	v.end = make([]int32, 0, len(text))
	copyRange := func(a, b int) {
		for i := a; i < b; i++ {
			buf = append(buf, text[i])
			s, e := i, i+1
			if text[i] >= utf8.RuneSelf { // the whole rune's span
				for s > 0 && !utf8.RuneStart(text[s]) {
					s--
				}
				_, n := utf8.DecodeRuneInString(text[s:])
				e = s + n
			}
			v.start = append(v.start, int32(s))
			v.end = append(v.end, int32(e))
		}
	}
	at := 0
	for run := first; run.start >= 0; run = nextSpacedRun(text, run.end) {
		copyRange(at, run.start)
		rs := len(buf)
		for i := run.start; i < run.end; {
			r, n := utf8.DecodeRuneInString(text[i:])
			if r == run.sep {
				i += n
				continue
			}
			copyRange(i, i+n)
			i += n
		}
		v.Runs = append(v.Runs, [2]int{rs, len(buf)})
		at = run.end
	}
	copyRange(at, len(text))
	v.Text = string(buf)
	return v, true
}

type spacedRun struct {
	start, end int // bytes: first letter to just past the last letter
	sep        rune
}

// nextSpacedRun finds the next run at or after from: at least
// MinSpacedRun single letters, each joined to the next by exactly one sep
// rune, the same throughout; start -1 when there is none.
func nextSpacedRun(text string, from int) spacedRun {
	prevWord := false // the rune before i is a letter or digit
	if from > 0 {
		r, _ := utf8.DecodeLastRuneInString(text[:from])
		prevWord = IsWord(r)
	}
	for i := from; i < len(text); {
		if c := text[i]; c < utf8.RuneSelf {
			// Fast path: most letters are inside words or followed by one.
			if prevWord || !asciiLetter[c] || (i+1 < len(text) && text[i+1] < utf8.RuneSelf && !asciiSpacer[text[i+1]]) {
				prevWord = asciiWord[c]
				i++
				continue
			}
		}
		r, n := utf8.DecodeRuneInString(text[i:])
		if !isLetterRune(r) || prevWord {
			prevWord = IsWord(r)
			i += n
			continue
		}
		// r is a letter starting a word: count single letters joined alike.
		start, end, letters := i, i+n, 1
		var sep rune = -1
		j := i + n
		for j < len(text) {
			s, sn := utf8.DecodeRuneInString(text[j:])
			if !isSpacer(s) || (sep >= 0 && s != sep) {
				break
			}
			l, ln := utf8.DecodeRuneInString(text[j+sn:])
			if j+sn >= len(text) || !isLetterRune(l) {
				break
			}
			after := j + sn + ln
			if after < len(text) {
				if a, _ := utf8.DecodeRuneInString(text[after:]); IsWord(a) {
					break // the next letter starts a longer word
				}
			}
			sep = s
			letters++
			end = after
			j = after
		}
		// the first letter must itself stand alone
		if a, _ := utf8.DecodeRuneInString(text[i+n:]); i+n < len(text) && IsWord(a) {
			letters = 1
		}
		// "send a w i r e": the article (or "I") after a word is a word.
		if letters > MinSpacedRun && sep == ' ' && (r == 'a' || r == 'A' || r == 'I') && afterWord(text, start) {
			start += 2
			letters--
		}
		if letters >= MinSpacedRun {
			return spacedRun{start, end, sep}
		}
		prevWord = true
		i += n
	}
	return spacedRun{start: -1}
}

// afterWord reports whether text[:i] ends with a word of two or more
// letters and a space.
func afterWord(text string, i int) bool {
	if i < 3 || text[i-1] != ' ' {
		return false
	}
	a, n := utf8.DecodeLastRuneInString(text[:i-1])
	b, _ := utf8.DecodeLastRuneInString(text[:i-1-n])
	return isLetterRune(a) && isLetterRune(b)
}

// Squeeze returns s folded with every space removed: the form a term
// takes inside a run spaced with single spaces throughout.
func Squeeze(s string) string {
	f := FoldString(s)
	b := make([]byte, 0, len(f))
	for i := 0; i < len(f); i++ {
		if f[i] != ' ' {
			b = append(b, f[i])
		}
	}
	return string(b)
}
