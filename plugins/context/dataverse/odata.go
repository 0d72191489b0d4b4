package dataverse

import (
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxValueLen bounds a key value; longer ones cannot be keys (the
// extractor refuses them too).
const maxValueLen = 256

// maxClauses bounds the comparisons of one $filter, which keeps the URL
// far below Dataverse's 32 KB limit.
const maxClauses = 20

// literal writes v as an OData literal for a column of kind: a GUID bare
// and lower-cased, text in single quotes with every quote doubled (OData
// ABNF: SQUOTE-in-string = SQUOTE SQUOTE). ok is false for a value that
// cannot be one (not a GUID, empty, too long, control characters): such
// a key matches nothing and is never sent.
func literal(kind int, v string) (lit string, ok bool) {
	if kind == kindGUID {
		if !isGUID(v) {
			return "", false
		}
		return strings.ToLower(v), true
	}
	if v == "" || len(v) > maxValueLen || !utf8.ValidString(v) {
		return "", false
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return "", false
		}
	}
	return "'" + strings.ReplaceAll(v, "'", "''") + "'", true
}

// isGUID accepts 8-4-4-4-12 hex digits.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// clause is one comparison of a $filter: prop eq lit. prop comes from an
// allow-list and lit from literal, so neither can end the comparison.
type clause struct{ prop, lit string }

// anyOf joins comparisons with or, in parentheses.
func anyOf(cs []clause) string {
	var b strings.Builder
	b.WriteByte('(')
	for i, c := range cs {
		if i > 0 {
			b.WriteString(" or ")
		}
		b.WriteString(c.prop)
		b.WriteString(" eq ")
		b.WriteString(c.lit)
	}
	b.WriteByte(')')
	return b.String()
}

// encodeQuery writes OData system query options name=value&… with every
// value percent-encoded (spaces as %20: a + is not a space to every
// server).
func encodeQuery(pairs ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(pairs[i])
		b.WriteByte('=')
		b.WriteString(strings.ReplaceAll(url.QueryEscape(pairs[i+1]), "+", "%20"))
	}
	return b.String()
}
