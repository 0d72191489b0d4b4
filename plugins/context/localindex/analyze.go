package localindex

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// analyzerVersion changes whenever analyze's output may change, so that
// snapshots built by an older analyzer are rebuilt.
const analyzerVersion = 1

// maxTermLen: longer runs (hashes, base64) are not indexed.
const maxTermLen = 40

// analyze appends the index terms of text to dst: words are runs of
// letters and digits, lower-cased; an apostrophe inside a word is dropped
// (won't → wont); a hyphenated compound yields its parts and the joined
// form (wi-fi → wi, fi, wifi; usb-c → usb, usbc); single letters and stop
// words are dropped; the rest is stemmed (stem). Query and documents go
// through the same function.
func analyze(text string, dst []string) []string {
	var (
		word  []byte   // current part, lower-cased
		parts []string // parts of the current hyphen group
	)
	emit := func(w string) {
		if len(w) > maxTermLen {
			return
		}
		if len(w) == 1 && !(w[0] >= '0' && w[0] <= '9') {
			return
		}
		if stopWords[w] {
			return
		}
		dst = append(dst, stem(w))
	}
	endPart := func() {
		if len(word) > 0 {
			parts = append(parts, string(word))
			word = word[:0]
		}
	}
	endGroup := func() {
		endPart()
		for _, p := range parts {
			emit(p)
		}
		if len(parts) > 1 {
			joined := strings.Join(parts, "")
			if !stopWords[joined] {
				emit(joined)
			}
		}
		parts = parts[:0]
	}
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRuneInString(text[i:])
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			word = utf8.AppendRune(word, foldRune(r))
		case (r == '\'' || r == '’') && len(word) > 0 && i+size < len(text) && isAlnumAt(text, i+size):
			// apostrophe inside a word: skip it
		case r == '-' && len(word) > 0 && i+size < len(text) && isAlnumAt(text, i+size):
			endPart()
		default:
			endGroup()
		}
		i += size
	}
	endGroup()
	return dst
}

func isAlnumAt(s string, i int) bool {
	r, _ := utf8.DecodeRuneInString(s[i:])
	return unicode.IsLetter(r) || unicode.IsDigit(r)
}

// foldRune lower-cases and strips the accent of common Latin letters.
func foldRune(r rune) rune {
	r = unicode.ToLower(r)
	if r < 0xC0 || r > 0x17F {
		return r
	}
	if f, ok := latinFold[r]; ok {
		return f
	}
	return r
}

var latinFold = func() map[rune]rune {
	m := map[rune]rune{}
	for base, variants := range map[rune]string{
		'a': "àáâãäåāăą", 'c': "çćĉċč", 'e': "èéêëēĕėęě", 'i': "ìíîïĩīĭįı", 'n': "ñńņňŉ",
		'o': "òóôõöøōŏő", 'u': "ùúûüũūŭůűų", 'y': "ýÿŷ", 's': "śŝşš", 'z': "źżž", 'g': "ĝğġģ",
		'l': "ĺļľŀł", 'r': "ŕŗř", 't': "ţťŧ", 'd': "ďđ",
	} {
		for _, v := range variants {
			m[v] = base
		}
	}
	return m
}()

// stem is a light English stemmer (plural, -ing, -ed, -ly, final -e) that
// conflates the forms support questions and articles use: charging,
// charged, charges → charg; settings → set; batteries → battery. Words
// with digits are left alone (model numbers).
func stem(w string) string {
	if len(w) < 3 {
		return w
	}
	for i := 0; i < len(w); i++ {
		if c := w[i]; c < 'a' || c > 'z' {
			return w
		}
	}
	n := len(w)
	switch {
	case strings.HasSuffix(w, "ies") && n > 4:
		w = w[:n-3] + "y"
	case strings.HasSuffix(w, "sses"):
		w = w[:n-2]
	case strings.HasSuffix(w, "xes") || strings.HasSuffix(w, "ches") || strings.HasSuffix(w, "shes") || strings.HasSuffix(w, "zzes"):
		w = w[:n-2]
	case strings.HasSuffix(w, "ss") || strings.HasSuffix(w, "us") || strings.HasSuffix(w, "is"):
	case strings.HasSuffix(w, "s"):
		w = w[:n-1]
	}
	n = len(w)
	switch {
	case strings.HasSuffix(w, "ing") && n-3 >= 3 && hasVowel(w[:n-3]):
		w = undouble(w[:n-3])
	case strings.HasSuffix(w, "ed") && n-2 >= 3 && hasVowel(w[:n-2]):
		w = undouble(w[:n-2])
	case strings.HasSuffix(w, "ly") && n-2 >= 4:
		w = w[:n-2]
	}
	if n = len(w); n > 4 && w[n-1] == 'e' {
		w = w[:n-1]
	}
	return w
}

func hasVowel(s string) bool { return strings.ContainsAny(s, "aeiouy") }

// undouble turns a doubled final consonant into one (runn → run,
// sett → set), except l, s and z (install, pass, buzz).
func undouble(w string) string {
	n := len(w)
	if n >= 2 && w[n-1] == w[n-2] && !strings.ContainsRune("aeioulsz", rune(w[n-1])) {
		return w[:n-1]
	}
	return w
}

// stopWords are dropped from queries and documents.
var stopWords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`
a about above after again against all am an and any are aren arent as at be because been before being below
between both but by can cant cannot could couldn did didn didnt do does doesn doesnt doing don dont down during
each few for from further get gets got had hadn hadnt has hasn hasnt have haven havent having he her here hers
herself him himself his how i id if ill im in into is isn isnt it its itself ive just let lets me more most my
myself no nor not now of off on once only or other our ours ourselves out over own same she should shouldn
shouldnt so some such than that thats the their theirs them themselves then there theres these they this those
through to too under until up us very was wasn wasnt we were weren werent what whats when where which while who
whom why will with won wont would wouldn wouldnt you youd youll your youre yours yourself yourselves
also am anyone anything can could hi hello hey please thanks thank pls ok okay really still want need
`) {
		m[w] = true
	}
	return m
}()
