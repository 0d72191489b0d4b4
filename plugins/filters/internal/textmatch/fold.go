// Package textmatch finds many terms in text at once: an Aho–Corasick
// automaton over folded text (case, diacritics, compatibility forms,
// invisible characters and whitespace runs folded), with word boundaries,
// scanning incrementally for streams.
package textmatch

import (
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Folding, rune by rune (so that a stream can restart anywhere with one
// rune of left context):
//   - ASCII letters are lower-cased;
//   - a letter with diacritics becomes its base letter, lower-cased
//     (é→e, Ä→a, ñ→n, ç→c), and ß→ss, æ→ae, œ→oe, ø→o, đ/ð→d, ł→l, ı→i;
//   - fullwidth ASCII (Ａ, ｂ) becomes ASCII;
//   - combining marks and invisible format characters (zero-width space
//     and joiners, soft hyphen, bidi controls, tag characters) vanish;
//   - Cyrillic and Greek letters that look like Latin ones (а, е, о, р, с,
//     у, х, і, ѕ, ο, α, ι, ν, ρ, τ…) become those Latin letters, and the
//     mathematical, circled and squared letters and digits become ASCII,
//     so a term spelled with look-alikes still matches;
//   - every whitespace rune becomes ' ', and a whitespace rune right after
//     another is dropped, so runs of whitespace match one space.

const (
	dropped   = 0xFFFF
	tableSize = 0x2000
)

// foldTable maps the runes below tableSize to up to two folded runes.
var foldTable = func() (t [tableSize][2]uint16) {
	special := map[rune]string{
		// look-alikes (the letters of confusables.txt that render as Latin)
		'а': "a", 'А': "a", 'в': "b", 'В': "b", 'е': "e", 'Е': "e", 'ё': "e", 'Ё': "e", 'к': "k", 'К': "k",
		'м': "m", 'М': "m", 'н': "h", 'Н': "h", 'о': "o", 'О': "o", 'р': "p", 'Р': "p", 'с': "c", 'С': "c",
		'т': "t", 'Т': "t", 'у': "y", 'У': "y", 'х': "x", 'Х': "x", 'і': "i", 'І': "i", 'ї': "i", 'Ї': "i",
		'ј': "j", 'Ј': "j", 'ѕ': "s", 'Ѕ': "s", 'ԁ': "d", 'һ': "h", 'Һ': "h", 'ӏ': "l", 'Ӏ': "l", 'ԛ': "q",
		'ԝ': "w", 'Ԝ': "w", 'ɡ': "g", 'ɑ': "a", 'ο': "o", 'Ο': "o", 'α': "a", 'Α': "a", 'β': "b", 'Β': "b",
		'ε': "e", 'Ε': "e", 'ζ': "z", 'Ζ': "z", 'η': "n", 'Η': "h", 'ι': "i", 'Ι': "i", 'κ': "k", 'Κ': "k",
		'μ': "u", 'Μ': "m", 'ν': "v", 'Ν': "n", 'ρ': "p", 'Ρ': "p", 'τ': "t", 'Τ': "t", 'υ': "u", 'Υ': "y",
		'χ': "x", 'Χ': "x", 'ω': "w", 'ϲ': "c", 'Ϲ': "c", 'ϳ': "j", 'ς': "c",
		'ß': "ss", 'ẞ': "ss", 'æ': "ae", 'Æ': "ae", 'œ': "oe", 'Œ': "oe",
		'ø': "o", 'Ø': "o", 'đ': "d", 'Đ': "d", 'ð': "d", 'Ð': "d",
		'ł': "l", 'Ł': "l", 'ı': "i", 'ħ': "h", 'Ħ': "h", 'ŧ': "t", 'Ŧ': "t",
	}
	for r := rune(0); r < tableSize; r++ {
		t[r] = [2]uint16{dropped, dropped}
		switch {
		case unicode.IsSpace(r):
			t[r][0] = ' '
			continue
		case unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Me, r) || unicode.Is(unicode.Cf, r):
			continue
		}
		if s, ok := special[r]; ok {
			t[r][0] = uint16(s[0])
			if len(s) > 1 {
				t[r][1] = uint16(s[1])
			}
			continue
		}
		f := r
		if r >= 0x80 {
			if d := norm.NFD.String(string(r)); d != "" {
				f, _ = utf8.DecodeRuneInString(d)
			}
		}
		t[r][0] = uint16(unicode.ToLower(f))
	}
	return t
}()

// Fold returns the folded form of r: up to two runes, -1 for none.
func Fold(r rune) (rune, rune) {
	if r < tableSize {
		e := foldTable[r]
		a, b := rune(e[0]), rune(e[1])
		if e[0] == dropped {
			a = -1
		}
		if e[1] == dropped {
			b = -1
		}
		return a, b
	}
	switch {
	case r >= 0xFF01 && r <= 0xFF5E: // fullwidth ASCII
		return unicode.ToLower(r - 0xFEE0), -1
	case r == 0x3000:
		return ' ', -1
	case unicode.IsSpace(r):
		return ' ', -1
	case unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Me, r) || unicode.Is(unicode.Cf, r):
		return -1, -1
	}
	if a, ok := compatASCII[r]; ok {
		return a, -1
	}
	return unicode.ToLower(r), -1
}

// compatASCII maps the styled letters and digits of the higher planes
// (mathematical bold, italic, script, double-struck…; circled, squared
// and parenthesised ones) to lower-case ASCII, as NFKC and case folding
// would.
var compatASCII = func() map[rune]rune {
	m := map[rune]rune{}
	for _, rg := range [][2]rune{{0x2460, 0x24FF}, {0x1D400, 0x1D7FF}, {0x1F100, 0x1F1FF}} {
		for r := rg[0]; r <= rg[1]; r++ {
			d := []rune(norm.NFKC.String(string(r)))
			if len(d) != 1 || d[0] == r || d[0] >= utf8.RuneSelf {
				continue
			}
			m[r] = unicode.ToLower(d[0])
		}
	}
	return m
}()

// FoldString returns s folded (for patterns; not on the hot path).
func FoldString(s string) string {
	b := make([]byte, 0, len(s))
	prevSpace := true // leading whitespace goes
	for _, r := range s {
		a, c := Fold(r)
		if a == ' ' {
			if prevSpace {
				continue
			}
			prevSpace = true
		} else if a >= 0 {
			prevSpace = false
		}
		if a >= 0 {
			b = utf8.AppendRune(b, a)
		}
		if c >= 0 {
			b = utf8.AppendRune(b, c)
		}
	}
	for len(b) > 0 && b[len(b)-1] == ' ' {
		b = b[:len(b)-1]
	}
	return string(b)
}

// asciiWord marks ASCII word characters: letters, digits and '_'.
var asciiWord = func() (t [128]bool) {
	for c := 0; c < 128; c++ {
		t[c] = c == '_' || ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
	}
	return t
}()

// IsWord reports whether r is part of a word: a letter, digit, '_' or a
// combining mark.
func IsWord(r rune) bool {
	if r < utf8.RuneSelf {
		return asciiWord[r]
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}

// isSpace reports whether r folds to a space.
func isSpace(r rune) bool {
	if r < utf8.RuneSelf {
		return r == ' ' || ('\t' <= r && r <= '\r')
	}
	a, _ := Fold(r)
	return a == ' '
}
