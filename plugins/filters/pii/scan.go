package pii

import (
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/groundgate/groundgate/filters"
)

// The built-in entity scanners are hand-written: one pass over the text
// each, no regexp, no allocation unless something is found. Each decides
// a candidate from the candidate's own bytes plus at most two bytes before
// it and one rune after it, so a stream can restart anywhere (see
// filters.StreamFilter). A scanner that needs text past the end of a
// growing text stops there and returns that candidate's start as its
// horizon.

// status of a candidate.
type status uint8

const (
	reject status = iota
	accept
	more // needs text that has not arrived yet
)

const (
	cDigit uint8 = 1 << iota
	cUpper
	cLower
	cHex
	cLocal  // email local part: letters, digits, . _ % + -
	cDomain // email domain: letters, digits, . -
)

var class = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		var v uint8
		switch {
		case '0' <= c && c <= '9':
			v = cDigit | cHex | cLocal | cDomain
		case 'A' <= c && c <= 'Z':
			v = cUpper | cLocal | cDomain
			if c <= 'F' {
				v |= cHex
			}
		case 'a' <= c && c <= 'z':
			v = cLower | cLocal | cDomain
			if c <= 'f' {
				v |= cHex
			}
		}
		switch c {
		case '.', '-':
			v |= cLocal | cDomain
		case '_', '%', '+':
			v |= cLocal
		}
		t[c] = v
	}
	return t
}()

func isDigit(c byte) bool  { return '0' <= c && c <= '9' }
func isLetter(c byte) bool { return class[c]&(cUpper|cLower) != 0 }
func isAlnum(c byte) bool  { return class[c]&(cUpper|cLower|cDigit) != 0 }

// prevRune returns the rune before i, or -1 at the start.
func prevRune(text string, i int) rune {
	if i == 0 {
		return -1
	}
	if c := text[i-1]; c < utf8.RuneSelf {
		return rune(c)
	}
	r, _ := utf8.DecodeLastRuneInString(text[:i])
	return r
}

// nextRune returns the rune at i: -1 at the end of a final text; more
// when the text may still grow there.
func nextRune(text string, i int, final bool) (rune, bool) {
	if i >= len(text) {
		return -1, !final
	}
	if c := text[i]; c < utf8.RuneSelf {
		return rune(c), false
	}
	if !final && !utf8.FullRuneInString(text[i:]) {
		return 0, true
	}
	r, _ := utf8.DecodeRuneInString(text[i:])
	return r, false
}

func isAlnumRune(r rune) bool {
	if r < 0 {
		return false
	}
	if r < utf8.RuneSelf {
		return isAlnum(byte(r))
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r)
}

// numberStart reports whether a number may start at i: no letter or digit
// before it, none of the characters in glue right before it, and not
// right after "digit space" (the middle of a spaced number) unless the
// number starts with '+'.
func numberStart(text string, i int, glue string) bool {
	return numberStartSpaced(text, i, glue, true)
}

// numberStartSpaced is numberStart; spaced tells whether numbers of this
// kind may contain spaces (then "digit space" before i is a middle).
func numberStartSpaced(text string, i int, glue string, spaced bool) bool {
	if i == 0 {
		return true
	}
	pr := prevRune(text, i)
	if isAlnumRune(pr) || (pr < utf8.RuneSelf && strings.IndexByte(glue, byte(pr)) >= 0) {
		return false
	}
	if pr == '€' || pr == '£' || pr == '¥' {
		return false
	}
	if spaced && pr == ' ' && text[i] != '+' && i >= 2 && (isDigit(text[i-2]) || text[i-2] == ')') {
		return false
	}
	return true
}

// endOK checks what follows a number ending at j: not a letter or digit.
func endOK(text string, j int, final bool) status {
	r, m := nextRune(text, j, final)
	if m {
		return more
	}
	if isAlnumRune(r) {
		return reject
	}
	return accept
}

// notContinued checks that a number ending at j is not followed by one of
// seps and a digit (a longer number: version, decimal, serial).
func notContinued(text string, j int, final bool, seps string) status {
	if j >= len(text) {
		if final {
			return accept
		}
		return more
	}
	if strings.IndexByte(seps, text[j]) < 0 {
		return accept
	}
	if j+1 >= len(text) {
		if final {
			return accept
		}
		return more
	}
	if isDigit(text[j+1]) {
		return reject
	}
	return accept
}

// scanner finds one entity type: it appends findings starting in
// [from, horizon) and returns the horizon.
type scanner func(dst []filters.Finding, text string, from int, final bool, act filters.Action) ([]filters.Finding, int)

func finding(cat string, s, e int, act filters.Action) filters.Finding {
	return filters.Finding{Filter: Kind, Category: cat, Start: s, End: e, Score: 1, Action: act}
}

// ---- email ----

func scanEmail(dst []filters.Finding, text string, from int, final bool, act filters.Action) ([]filters.Finding, int) {
	h := len(text)
	for p := from; p < len(text); p++ {
		k := strings.IndexByte(text[p:], '@')
		if k < 0 {
			break
		}
		p += k
		// local part: the run of local characters before '@'
		s := p
		for s > from && class[text[s-1]]&cLocal != 0 && p-s <= 64 {
			s--
		}
		if s == from && from > 0 && class[text[from-1]]&cLocal != 0 {
			continue // starts before from: decided earlier
		}
		if p-s == 0 || p-s > 64 {
			continue
		}
		run := s // the finding starts here, leading dots and all
		for s < p && text[s] == '.' {
			s++
		}
		if s == p || text[p-1] == '.' || strings.Contains(text[s:p], "..") {
			continue
		}
		s = run
		// domain: the run of domain characters after '@'
		e := p + 1
		for e < len(text) && class[text[e]]&cDomain != 0 && e-p <= 254 {
			e++
		}
		if e == len(text) && !final {
			h = run // the domain may go on
			break
		}
		if e-p > 254 {
			continue
		}
		for e > p+1 && (text[e-1] == '.' || text[e-1] == '-') {
			e--
		}
		if validDomain(text[p+1 : e]) {
			dst = append(dst, finding(Email, s, e, act))
		}
	}
	if !final {
		// a run of local characters at the end may be a local part
		s := len(text)
		for s > from && class[text[s-1]]&cLocal != 0 && len(text)-s <= 64 {
			s--
		}
		if s < len(text) && len(text)-s <= 64 && !(s == from && from > 0 && class[text[from-1]]&cLocal != 0) {
			h = min(h, s)
		}
	}
	return dst, h
}

func validDomain(d string) bool {
	if len(d) < 4 || len(d) > 253 {
		return false
	}
	labels, tld := 0, ""
	for d != "" {
		i := strings.IndexByte(d, '.')
		l := d
		if i >= 0 {
			l, d = d[:i], d[i+1:]
		} else {
			d = ""
		}
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		labels++
		tld = l
	}
	if labels < 2 || len(tld) < 2 {
		return false
	}
	for i := 0; i < len(tld); i++ {
		if !isLetter(tld[i]) {
			return false
		}
	}
	return true
}

// ---- phone ----

func scanPhone(dst []filters.Finding, text string, from int, final bool, act filters.Action) ([]filters.Finding, int) {
	for i := from; i < len(text); i++ {
		c := text[i]
		if !isDigit(c) && c != '+' && c != '(' {
			continue
		}
		if (c == '(' || isDigit(c)) && i > 0 && text[i-1] == '(' {
			continue
		}
		if !numberStart(text, i, "+-./_@#$%&=\\") {
			continue
		}
		e, st := parsePhone(text, i, final)
		switch st {
		case more:
			return dst, i
		case accept:
			dst = append(dst, finding(Phone, i, e, act))
		}
	}
	return dst, len(text)
}

func parsePhone(text string, i int, final bool) (int, status) {
	n := len(text)
	j := i
	plus := text[j] == '+'
	if plus {
		j++
	}
	var groups [8]int
	ng, digits, end := 0, 0, i
	first := -1 // index of the first digit
	for {
		open := j < n && text[j] == '('
		if open {
			j++
		}
		gs := j
		for j < n && isDigit(text[j]) {
			j++
		}
		if j == n && !final {
			return 0, more
		}
		gl := j - gs
		if gl == 0 {
			if ng == 0 {
				return 0, reject
			}
			break
		}
		if first < 0 {
			first = gs
		}
		if open {
			if j == n {
				return 0, reject
			}
			if text[j] != ')' {
				return 0, reject
			}
			j++
		}
		if ng == len(groups) {
			return 0, reject
		}
		groups[ng] = gl
		ng++
		digits += gl
		if digits > 17 {
			return 0, reject
		}
		end = j
		if j == n {
			if !final {
				return 0, more
			}
			break
		}
		switch text[j] {
		case ' ', '-', '.':
			if j+1 == n {
				if !final {
					return 0, more
				}
			} else if nc := text[j+1]; isDigit(nc) || nc == '(' {
				j++
				continue
			}
		case '(':
			continue
		}
		if open && isDigit(text[j]) { // +44 (0)20
			continue
		}
		break
	}
	if st := endOK(text, end, final); st != accept {
		return 0, st
	}
	if validPhone(text[first:], groups[:ng], digits, plus) {
		return end, accept
	}
	return 0, reject
}

func validPhone(num string, g []int, digits int, plus bool) bool {
	maxGroup := 0
	for _, x := range g {
		maxGroup = max(maxGroup, x)
	}
	if plus {
		if digits < 8 || digits > 15 {
			return false
		}
		return len(g) == 1 || (g[0] <= 4 && maxGroup <= 8)
	}
	if len(g) >= 3 && ((g[0] <= 2 && g[1] <= 2 && g[2] == 4) || (g[0] == 4 && g[1] <= 2 && g[2] <= 2)) {
		return false // a date
	}
	switch {
	case strings.HasPrefix(num, "00"): // international prefix
		d := digits - 2
		return d >= 8 && d <= 15 && len(g) >= 2 && maxGroup <= 8
	case len(g) == 3 && g[0] == 3 && g[1] == 3 && g[2] == 4: // NANP (415) 555-0100
		return num[0] >= '2'
	case len(g) == 4 && g[0] == 1 && num[0] == '1' && g[1] == 3 && g[2] == 3 && g[3] == 4: // 1-800-555-0199
		return true
	case num[0] == '0': // national format with trunk prefix: 020 7946 0958, 01 42 68 53 00
		if digits < 9 || digits > 11 || len(g) < 2 {
			return false
		}
		for _, x := range g {
			if x < 2 || x > 8 {
				return false
			}
		}
		return true
	}
	return false
}

// ---- credit card ----
//
// Card numbers are written in many ways: no separators; groups of four
// (4-6-5 for Amex, 4-6-4 for Diners) joined by spaces, dashes, dots,
// no-break or thin spaces, en dashes or a line break; with zero-width
// characters between or inside the groups; in full-width or Arabic-Indic
// digits; right after "no.", "#", ":" or "=". A candidate is a run of
// digit groups joined by separator runs of one to three characters; it is
// a card when 13 to 19 of its digits, grouped as cards are, pass the Luhn
// check and fall in a known network's issuer range. A run longer than a
// card (a tracking number in groups of four, a long id) is no card, but a
// card followed by something of another shape ("… 1111 12/26", a second
// sentence) is.

// maxCardBytes bounds a candidate's length (full-width digits and
// invisible characters make a card up to this long); it is the stream
// window of the card scanner.
const maxCardBytes = 256

// cardUnit is what a card scanner sees at a position.
type cardUnit uint8

const (
	uOther cardUnit = iota
	uDigit
	uSep     // a separator between groups
	uLineSep // a line break (a separator that also mixes with others)
	uIgnore  // an invisible format character, skipped
	uEnd     // the end of a final text
	uMore    // the text may still grow here
)

// cardUnitAt classifies the rune at j: its kind, its digit value (for
// uDigit) and size.
func cardUnitAt(text string, j int, final bool) (cardUnit, byte, int) {
	if j >= len(text) {
		if final {
			return uEnd, 0, 0
		}
		return uMore, 0, 0
	}
	c := text[j]
	if c == '\\' {
		if j+1 == len(text) && !final {
			return uMore, 0, 0
		}
		if j+1 < len(text) && text[j+1] == 'u' {
			return escapedCardUnit(text, j, final)
		}
	}
	if c < utf8.RuneSelf {
		switch {
		case '0' <= c && c <= '9':
			return uDigit, c, 1
		case c == ' ' || c == '\t' || c == '-' || c == '.':
			return uSep, 0, 1
		case c == '\n' || c == '\r':
			return uLineSep, 0, 1
		}
		return uOther, 0, 1
	}
	if !final && !utf8.FullRuneInString(text[j:]) {
		return uMore, 0, 0
	}
	r, n := utf8.DecodeRuneInString(text[j:])
	if d, ok := digitValue(r); ok {
		return uDigit, d, n
	}
	switch {
	case isInvisible(r):
		return uIgnore, 0, n
	case r == 0xA0, r >= 0x2000 && r <= 0x200A, r == 0x202F, r == 0x205F, r == 0x3000, // spaces
		r >= 0x2010 && r <= 0x2015, r == 0x2212, r == 0xFF0D, r == 0xFF0E: // dashes, full-width - and .
		return uSep, 0, n
	case r == 0x2028 || r == 0x2029 || r == 0x85:
		return uLineSep, 0, n
	}
	return uOther, 0, n
}

// escapedCardUnit classifies a JSON \uXXXX escape at j, as tool results
// serialised with ASCII-only JSON carry full-width digits, no-break
// spaces and zero-width characters: the escape counts as the rune it
// stands for.
func escapedCardUnit(text string, j int, final bool) (cardUnit, byte, int) {
	if j+6 > len(text) {
		if final {
			return uOther, 0, 1
		}
		return uMore, 0, 0
	}
	var r rune
	for _, h := range []byte(text[j+2 : j+6]) {
		switch {
		case '0' <= h && h <= '9':
			r = r<<4 | rune(h-'0')
		case 'a' <= h && h <= 'f':
			r = r<<4 | rune(h-'a'+10)
		case 'A' <= h && h <= 'F':
			r = r<<4 | rune(h-'A'+10)
		default:
			return uOther, 0, 1
		}
	}
	switch {
	case r >= '0' && r <= '9':
		return uDigit, byte(r), 6
	case r == ' ' || r == '-' || r == '.':
		return uSep, 0, 6
	}
	var buf [4]byte
	n := utf8.EncodeRune(buf[:], r)
	u, d, _ := cardUnitAt(string(buf[:n]), 0, true)
	if u == uDigit || u == uSep || u == uLineSep || u == uIgnore {
		return u, d, 6
	}
	return uOther, 0, 1
}

// digitValue maps full-width and Arabic-Indic digits to ASCII ones.
func digitValue(r rune) (byte, bool) {
	for _, zero := range [...]rune{'０', '٠', '۰'} {
		if r >= zero && r <= zero+9 {
			return byte('0' + r - zero), true
		}
	}
	return 0, false
}

// isInvisible reports format characters that render as nothing: zero-width
// space and joiners, word joiner, soft hyphen, bidi controls, BOM.
func isInvisible(r rune) bool {
	switch {
	case r >= 0x200B && r <= 0x200F, r >= 0x202A && r <= 0x202E, r >= 0x2060 && r <= 0x2064,
		r >= 0x2066 && r <= 0x2069, r == 0xFEFF, r == 0xAD, r == 0x180E, r == 0x034F:
		return true
	}
	return false
}

func isCardDigitRune(r rune) bool {
	if r >= '0' && r <= '9' {
		return true
	}
	_, ok := digitValue(r)
	return ok
}

// Where a card may start, at the start of a run of digit groups.
const (
	startNo   = iota // inside a word or a longer number
	startRun         // the run may be a card from its first group on
	startPast        // glued to a sign, a currency or an identifier: only a later group may start a card ("$12 4111 …")
)

// cardStart tells whether a card may start at i: not inside a word or a
// longer number (invisible characters before i are looked through), not
// after a decimal point, and not in the middle of a spaced number. Labels
// such as "no.", "#", ":" and "=" may come right before it.
func cardStart(text string, i int) int {
	j := i
	for k := 0; k < 3 && j > 0; k++ { // at most 9 bytes of invisible characters
		r, n := utf8.DecodeLastRuneInString(text[:j])
		if !isInvisible(r) {
			break
		}
		j -= n
	}
	if j == 0 {
		return startRun
	}
	pr, n := utf8.DecodeLastRuneInString(text[:j])
	if isCardDigitRune(pr) || isAlnumRune(pr) || isInvisible(pr) {
		return startNo
	}
	var before rune = -1
	if j-n > 0 {
		before, _ = utf8.DecodeLastRuneInString(text[:j-n])
	}
	switch pr {
	case '+', '_', '@', '$', '%', '&', '\\', '/', '€', '£', '¥', '^', '~', '-':
		// "+1 800…", "$12", "ORD-4111…": that number is no card, a later one may be
		return startPast
	case '.', ',', ' ', '\t', 0xA0, 0x2009, 0x202F, 0x2013, 0x2212:
		// a decimal point, or the middle of a number grouped with these
		if isCardDigitRune(before) {
			return startNo
		}
	}
	return startRun
}

func scanCard(dst []filters.Finding, text string, from int, final bool, act filters.Action) ([]filters.Finding, int) {
	// A stream may resume inside a run of digit groups (another scanner
	// held back there); whether a card starts midway depends on the run's
	// first groups, so read the run from its start, reporting only what
	// starts at or after from.
	if r0 := cardRunStart(text, from); r0 < from {
		how := cardStart(text, r0)
		if how != startNo {
			s, e, st := parseCard(text, r0, final, how == startPast)
			switch {
			case st == more:
				return dst, from
			case st == accept && s >= from:
				dst = append(dst, finding(CreditCard, s, e, act))
				from = e
			case st == accept:
				from = max(from, e) // reported by an earlier call
			}
		}
	}
	for i := from; i < len(text); i++ {
		c := text[i]
		if c >= utf8.RuneSelf {
			if c < 0xC0 {
				continue // inside a rune
			}
			if !final && !utf8.FullRuneInString(text[i:]) {
				return dst, i
			}
			if r, _ := utf8.DecodeRuneInString(text[i:]); !isCardDigitRune(r) {
				continue
			}
		} else if c == '\\' {
			if u, _, _ := cardUnitAt(text, i, final); u == uMore {
				return dst, i
			} else if u != uDigit {
				continue
			}
		} else if !isDigit(c) {
			continue
		}
		how := cardStart(text, i)
		if how == startNo {
			continue
		}
		s, e, st := parseCard(text, i, final, how == startPast)
		switch st {
		case more:
			return dst, i
		case accept:
			dst = append(dst, finding(CreditCard, s, e, act))
			i = e - 1
		}
	}
	return dst, len(text)
}

// cardRunStart returns where the run of digit groups that from is in (or
// right after a separator of) begins: from itself when from does not
// follow a digit, a separator after a digit or an invisible character.
// It looks back at most maxCardBytes.
func cardRunStart(text string, from int) int {
	start := from
	for j := from; j > 0 && from-j < maxCardBytes; {
		r, n := utf8.DecodeLastRuneInString(text[:j])
		var buf [4]byte
		k := utf8.EncodeRune(buf[:], r)
		u, _, _ := cardUnitAt(string(buf[:k]), 0, true)
		switch u {
		case uDigit:
			start = j - n
		case uSep, uLineSep, uIgnore:
		default:
			return start
		}
		j -= n
	}
	return start
}

const maxCardGroups = 8

// sepClass: how two groups are joined.
type sepClass uint8

const (
	sepSpace sepClass = 1 << iota
	sepDash
	sepDot
	sepLine
)

// parseCard reads the run of digit groups at i and returns the card in it
// (start, end) if there is one; past: the first group cannot be part of it.
func parseCard(text string, i int, final, past bool) (int, int, status) {
	var num [32]byte
	var groups, starts, ends [maxCardGroups]int
	var seps [maxCardGroups]sepClass
	nd, ng, j := 0, 0, i
	for {
		gs := nd
		starts[ng] = j
	digits:
		for {
			if j-i > maxCardBytes {
				return 0, 0, reject
			}
			u, v, n := cardUnitAt(text, j, final)
			switch u {
			case uMore:
				return 0, 0, more
			case uDigit:
				if nd == len(num) {
					return 0, 0, reject
				}
				num[nd] = v
				nd++
				j += n
				continue
			case uIgnore: // inside a group only when a digit follows
				q := j
				for u == uIgnore && q-i <= maxCardBytes {
					q += n
					u, _, n = cardUnitAt(text, q, final)
				}
				if u == uMore {
					return 0, 0, more
				}
				if u == uDigit {
					j = q
					continue
				}
			}
			break digits
		}
		groups[ng], ends[ng] = nd-gs, j
		ng++
		// A separator run: one to three separators (invisible characters
		// do not count), then a digit.
		q, cnt := j, 0
		var cls sepClass
		for cnt <= 3 && q-i <= maxCardBytes {
			u, _, n := cardUnitAt(text, q, final)
			if u == uMore {
				return 0, 0, more
			}
			if u == uSep || u == uLineSep {
				cls |= sepClassOf(text[q], u)
				cnt++
			} else if u != uIgnore {
				break
			}
			q += n
		}
		if cnt == 0 || cnt > 3 || ng == maxCardGroups {
			break
		}
		u, _, _ := cardUnitAt(text, q, final)
		if u == uMore {
			return 0, 0, more
		}
		if u != uDigit {
			break
		}
		seps[ng] = cls
		j = q
	}
	// What follows the whole run must not continue it as a word.
	if st := endOK(text, ends[ng-1], final); st != accept {
		if st == more {
			return 0, 0, more
		}
		// e.g. "4111…1111abc": only a shorter, separated prefix may be a card
		ng--
		if ng == 0 {
			return 0, 0, reject
		}
	}
	// The longest run of groups that is a card: from the first group, or
	// from a later one that follows a group of another shape ("$12 4111
	// 1111 1111 1111"); it may stop before the end of the run.
	for from, first := 0, 0; from < ng; from++ {
		if (from == 0 && past) || (from > 0 && !cardStartsAfter(from, groups[:ng], seps[:ng])) {
			first += groups[from]
			continue
		}
		for g := ng; g > from; g-- {
			d := 0
			for _, x := range groups[from:g] {
				d += x
			}
			if d < 13 || d > 19 {
				continue
			}
			if g < ng && !cardEndsBefore(text, from, g, groups[:ng], ends[:ng], seps[:ng]) {
				continue
			}
			card := num[first : first+d]
			if !cardGroups(groups[from:g]) || !luhn(card) || !knownIIN(card) {
				continue
			}
			if g == from+1 && d == 13 && ean13(card) {
				continue // a barcode (EAN-13 prefixes 400-440 look like Visa)
			}
			return starts[from], ends[g-1], accept
		}
		first += groups[from]
	}
	return 0, 0, reject
}

// cardStartsAfter reports whether a card may start at group k of a run:
// the group before it has another shape than a card's four digits, or the
// two are joined differently (a line break, another separator). In a run
// of fours joined alike (a tracking number) no card starts midway.
func cardStartsAfter(k int, groups []int, seps []sepClass) bool {
	return groups[k-1] != 4 || seps[k]&sepLine != 0 || (k >= 2 && seps[k] != seps[k-1])
}

// cardEndsBefore reports whether a card that starts at group from may end
// before group g of a longer run: group g is joined differently (a new
// sentence, a new line) or is an expiry date ("… 1111 12/26"); a run that
// goes on alike is one longer number (a tracking number, a decimal, a
// suffix).
func cardEndsBefore(text string, from, g int, groups, ends []int, seps []sepClass) bool {
	if groups[g] <= 2 && ends[g] < len(text) && text[ends[g]] == '/' {
		return true
	}
	if g == from+1 {
		return seps[g]&(sepDot|sepDash) == 0
	}
	return seps[g] != seps[g-1]
}

func sepClassOf(c byte, u cardUnit) sepClass {
	switch {
	case u == uLineSep:
		return sepLine
	case c == '-':
		return sepDash
	case c == '.':
		return sepDot
	case c >= utf8.RuneSelf: // no-break and thin spaces, dashes
		return sepSpace
	}
	return sepSpace
}

// ean13 reports whether d passes the EAN-13 check (weights 1 and 3).
func ean13(d []byte) bool {
	sum := 0
	for k, c := range d {
		v := int(c - '0')
		if k%2 == 1 {
			v *= 3
		}
		sum += v
	}
	return sum%10 == 0
}

// cardGroups reports the groupings cards are written in: one run of
// digits, fours with a
// shorter last group (16 as 4-4-4-4, 19 as 4-4-4-4-3, 13 as 4-4-4-1),
// Amex's 4-6-5, Diners' 4-6-4, and 13-digit Visa's 4-3-3-3.
func cardGroups(g []int) bool {
	if len(g) == 1 {
		return true
	}
	if len(g) == 3 && g[0] == 4 && g[1] == 6 && (g[2] == 4 || g[2] == 5) { // Amex, Diners
		return true
	}
	if len(g) == 4 && g[0] == 4 && g[1] == 3 && g[2] == 3 && g[3] == 3 {
		return true
	}
	for k, x := range g {
		if k < len(g)-1 && x != 4 {
			return false
		}
		if k == len(g)-1 && (x < 1 || x > 4) {
			return false
		}
	}
	return len(g) >= 4
}

func luhn(d []byte) bool {
	sum := 0
	double := false
	for k := len(d) - 1; k >= 0; k-- {
		v := int(d[k] - '0')
		if double {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return sum%10 == 0
}

// knownIIN checks the issuer prefix and length against the major
// networks: Visa, Mastercard, American Express, Discover, Diners Club,
// JCB, UnionPay, Maestro, Mir.
func knownIIN(d []byte) bool {
	n := len(d)
	p := func(k int) int {
		v := 0
		for i := 0; i < k; i++ {
			v = v*10 + int(d[i]-'0')
		}
		return v
	}
	p2, p3, p4, p6 := p(2), p(3), p(4), p(6)
	switch {
	case d[0] == '4': // Visa
		return n == 13 || n == 16 || n == 19
	case p2 >= 51 && p2 <= 55, p6 >= 222100 && p6 <= 272099: // Mastercard
		return n == 16
	case p2 == 34 || p2 == 37: // Amex
		return n == 15
	case p4 == 6011 || p2 == 65 || (p3 >= 644 && p3 <= 649) || (p6 >= 622126 && p6 <= 622925): // Discover
		return n >= 16 && n <= 19
	case (p3 >= 300 && p3 <= 305) || p2 == 36 || p2 == 38 || p2 == 39 || p4 == 3095: // Diners
		return n >= 14 && n <= 19
	case p4 >= 3528 && p4 <= 3589: // JCB
		return n >= 16 && n <= 19
	case p2 == 62: // UnionPay
		return n >= 16 && n <= 19
	case p4 >= 2200 && p4 <= 2204: // Mir
		return n >= 16 && n <= 19
	case p4 == 5018 || p4 == 5020 || p4 == 5038 || p4 == 5893 || p4 == 6304 || (p4 >= 6759 && p4 <= 6763): // Maestro
		return n >= 12 && n <= 19
	}
	return false
}

// ---- US SSN ----

func scanSSN(dst []filters.Finding, text string, from int, final bool, act filters.Action) ([]filters.Finding, int) {
	for i := from; i < len(text); i++ {
		if !isDigit(text[i]) || !numberStart(text, i, "+-./_@#$%&=\\") {
			continue
		}
		e, st := parseSSN(text, i, final)
		switch st {
		case more:
			return dst, i
		case accept:
			dst = append(dst, finding(SSN, i, e, act))
		}
	}
	return dst, len(text)
}

func parseSSN(text string, i int, final bool) (int, status) {
	// ddd-dd-dddd or ddd dd dddd
	const shape = "ddd-dd-dddd"
	n := len(text)
	var sep byte
	for k := 0; k < len(shape); k++ {
		j := i + k
		if j >= n {
			if !final {
				return 0, more
			}
			return 0, reject
		}
		c := text[j]
		if shape[k] == 'd' {
			if !isDigit(c) {
				return 0, reject
			}
			continue
		}
		if c != '-' && c != ' ' || (sep != 0 && c != sep) {
			return 0, reject
		}
		sep = c
	}
	end := i + len(shape)
	if st := endOK(text, end, final); st != accept {
		return 0, st
	}
	if st := notContinued(text, end, final, ".,-"+string(sep)); st != accept {
		return 0, st
	}
	area, group, serial := text[i:i+3], text[i+4:i+6], text[i+7:i+11]
	switch {
	case area == "000", area == "666", area[0] == '9', group == "00", serial == "0000":
		return 0, reject
	case area == "078" && group == "05" && serial == "1120", area == "219" && group == "09" && serial == "9999":
		return 0, reject // famous invalid numbers (wallet card, advertisement)
	}
	return end, accept
}

// ---- IPv4 ----

func scanIPv4(dst []filters.Finding, text string, from int, final bool, act filters.Action) ([]filters.Finding, int) {
	for i := from; i < len(text); i++ {
		if !isDigit(text[i]) || !numberStartSpaced(text, i, ".-_", false) {
			continue
		}
		if i >= 2 && text[i-1] == ':' && (class[text[i-2]]&cHex != 0 || text[i-2] == ':') {
			continue // the IPv4 tail of an IPv6 address
		}
		e, st := parseIPv4(text, i, final)
		switch st {
		case more:
			return dst, i
		case accept:
			dst = append(dst, finding(IPv4, i, e, act))
		}
	}
	return dst, len(text)
}

func parseIPv4(text string, i int, final bool) (int, status) {
	n, j := len(text), i
	for part := 0; part < 4; part++ {
		if part > 0 {
			if j == n {
				if !final {
					return 0, more
				}
				return 0, reject
			}
			if text[j] != '.' {
				return 0, reject
			}
			j++
		}
		s, v := j, 0
		for j < n && isDigit(text[j]) && j-s < 4 {
			v = v*10 + int(text[j]-'0')
			j++
		}
		if j == n && !final {
			return 0, more
		}
		if l := j - s; l == 0 || l > 3 || v > 255 || (l > 1 && text[s] == '0') {
			return 0, reject
		}
	}
	if st := endOK(text, j, final); st != accept {
		return 0, st
	}
	if st := notContinued(text, j, final, "."); st != accept {
		return 0, st
	}
	return j, accept
}

// ---- IPv6 ----

func scanIPv6(dst []filters.Finding, text string, from int, final bool, act filters.Action) ([]filters.Finding, int) {
	if final && strings.IndexByte(text[from:], ':') < 0 {
		return dst, len(text) // an address has at least two colons
	}
	for i := from; i < len(text); i++ {
		c := text[i]
		if class[c]&cHex == 0 && c != ':' {
			continue
		}
		if i > 0 {
			pc := text[i-1]
			if class[pc]&cHex != 0 || pc == ':' {
				continue // inside a run
			}
			if !numberStartSpaced(text, i, ".-_%", false) {
				continue
			}
		}
		e, st := parseIPv6(text, i, final)
		switch st {
		case more:
			return dst, i
		case accept:
			dst = append(dst, finding(IPv6, i, e, act))
		}
	}
	return dst, len(text)
}

const maxIPv6 = len("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255")

func parseIPv6(text string, i int, final bool) (int, status) {
	n, j := len(text), i
	colons, hex := 0, false
	for j < n && j-i <= maxIPv6 {
		c := text[j]
		if c == ':' {
			colons++
		} else if class[c]&cHex != 0 {
			hex = true
		} else if c != '.' {
			break
		}
		j++
	}
	if j == n && !final {
		return 0, more
	}
	if j-i > maxIPv6 || colons < 2 || !hex {
		return 0, reject
	}
	// what follows must not continue a word (deadbeef::1g)
	if r, m := nextRune(text, j, final); m {
		return 0, more
	} else if isAlnumRune(r) {
		return 0, reject
	}
	for j > i && text[j-1] == '.' {
		j--
	}
	if j-i >= 2 && text[j-1] == ':' && text[j-2] != ':' {
		j--
	}
	a, err := netip.ParseAddr(text[i:j])
	if err != nil || !a.Is6() {
		return 0, reject
	}
	return j, accept
}

// ---- IBAN ----

// ibanLen is the IBAN length per country (ISO 13616 registry).
var ibanLen = map[string]int{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
	"BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
	"ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
	"HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
	"LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
	"MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
	"RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
	"TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}

func scanIBAN(dst []filters.Finding, text string, from int, final bool, act filters.Action) ([]filters.Finding, int) {
	for i := from; i < len(text); i++ {
		if !isLetter(text[i]) {
			continue
		}
		if i+3 < len(text) && (!isLetter(text[i+1]) || !isDigit(text[i+2])) {
			continue
		}
		if isAlnumRune(prevRune(text, i)) {
			continue
		}
		e, st := parseIBAN(text, i, final)
		switch st {
		case more:
			return dst, i
		case accept:
			dst = append(dst, finding(IBAN, i, e, act))
		}
	}
	return dst, len(text)
}

func parseIBAN(text string, i int, final bool) (int, status) {
	n := len(text)
	if i+4 > n {
		// not enough text to tell; a final text is too short
		for k := i; k < n; k++ {
			if (k < i+2 && !isLetter(text[k])) || (k >= i+2 && !isDigit(text[k])) {
				return 0, reject
			}
		}
		if final {
			return 0, reject
		}
		return 0, more
	}
	if !isLetter(text[i+1]) || !isDigit(text[i+2]) || !isDigit(text[i+3]) {
		return 0, reject
	}
	cc := [2]byte{text[i] &^ 0x20, text[i+1] &^ 0x20}
	want, ok := ibanLen[string(cc[:])]
	if !ok {
		return 0, reject
	}
	var buf [34]byte
	buf[0], buf[1], buf[2], buf[3] = cc[0], cc[1], text[i+2], text[i+3]
	cnt, j := 4, i+4
	for cnt < want {
		if j == n {
			if !final {
				return 0, more
			}
			return 0, reject
		}
		c := text[j]
		if c == ' ' {
			if j+1 == n {
				if !final {
					return 0, more
				}
				return 0, reject
			}
			if !isAlnum(text[j+1]) {
				return 0, reject
			}
			j++
			continue
		}
		if !isAlnum(c) {
			return 0, reject
		}
		if isLetter(c) {
			c &^= 0x20
		}
		buf[cnt] = c
		cnt++
		j++
	}
	if j < n && isAlnum(text[j]) {
		return 0, reject
	}
	if st := endOK(text, j, final); st != accept {
		return 0, st
	}
	if ibanMod97(buf[:want]) != 1 {
		return 0, reject
	}
	return j, accept
}

// ibanMod97 computes the ISO 7064 mod 97-10 remainder of an IBAN: the
// first four characters moved to the end, letters as 10..35.
func ibanMod97(b []byte) int {
	r := 0
	add := func(c byte) {
		if isDigit(c) {
			r = (r*10 + int(c-'0')) % 97
		} else {
			r = (r*100 + int(c-'A') + 10) % 97
		}
	}
	for _, c := range b[4:] {
		add(c)
	}
	for _, c := range b[:4] {
		add(c)
	}
	return r
}
