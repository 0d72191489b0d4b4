package tokens

import (
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"github.com/tidwall/gjson"
)

// A chat request's system message, with the knowledge articles a policy
// injects, is several kilobytes of escaped JSON. gjson's ForEach copies
// every escaped string value it visits; counting walks a message's members
// itself and unescapes a string into a pooled buffer only to count it.

// members calls fn with each member of the JSON object obj: its key
// (unescaped) and the raw JSON of its value. It stops at the first thing
// that is not well-formed (callers validate the body first).
func members(obj string, fn func(key, raw string)) {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return
	}
	i++
	for {
		i = skipSpace(obj, i)
		if i >= len(obj) || obj[i] != '"' {
			return // '}' or malformed
		}
		kEnd, ok := stringEnd(obj, i)
		if !ok {
			return
		}
		key := obj[i+1 : kEnd-1]
		if strings.IndexByte(key, '\\') >= 0 {
			key = gjson.Parse(obj[i:kEnd]).Str
		}
		i = skipSpace(obj, kEnd)
		if i >= len(obj) || obj[i] != ':' {
			return
		}
		i = skipSpace(obj, i+1)
		vEnd, ok := valueEnd(obj, i)
		if !ok {
			return
		}
		fn(key, obj[i:vEnd])
		i = skipSpace(obj, vEnd)
		if i >= len(obj) || obj[i] != ',' {
			return
		}
		i++
	}
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the string literal starting at
// s[i] == '"'.
func stringEnd(s string, i int) (int, bool) {
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case '"':
			return j + 1, true
		}
	}
	return 0, false
}

// valueEnd returns the index just past the JSON value starting at s[i].
func valueEnd(s string, i int) (int, bool) {
	if i >= len(s) {
		return 0, false
	}
	switch s[i] {
	case '"':
		return stringEnd(s, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(s); j++ {
			switch s[j] {
			case '"':
				e, ok := stringEnd(s, j)
				if !ok {
					return 0, false
				}
				j = e - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, true
				}
			}
		}
		return 0, false
	}
	j := i
	for j < len(s) && s[j] != ',' && s[j] != '}' && s[j] != ']' && s[j] != ' ' && s[j] != '\t' && s[j] != '\n' && s[j] != '\r' {
		j++
	}
	return j, j > i
}

var unescapeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

// countRawString counts the text of a JSON string literal (quotes
// included), as countString counts its gjson value.
func (e *Encoder) countRawString(raw string) int {
	body := raw[1 : len(raw)-1]
	if strings.IndexByte(body, '\\') < 0 {
		return e.Count(body) // gjson takes such a body as it is
	}
	bp := unescapeBufs.Get().(*[]byte)
	*bp = appendUnescaped((*bp)[:0], body)
	// Count keeps no reference to the text (its cache keys are hashes).
	n := e.Count(unsafe.String(unsafe.SliceData(*bp), len(*bp)))
	if cap(*bp) <= 1<<20 {
		unescapeBufs.Put(bp)
	}
	return n
}

// appendUnescaped appends the unescaped text of a JSON string's body,
// exactly as gjson unescapes it (its Result.Str), quirks included: the
// text ends at a raw control character or an invalid escape.
func appendUnescaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		default:
			dst = append(dst, c)
		case c < ' ':
			return dst
		case c == '\\':
			i++
			if i >= len(s) {
				return dst
			}
			switch s[i] {
			default:
				return dst
			case '\\':
				dst = append(dst, '\\')
			case '/':
				dst = append(dst, '/')
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case '"':
				dst = append(dst, '"')
			case 'u':
				if i+5 > len(s) {
					return dst
				}
				r := hexRune(s[i+1:])
				i += 5
				if r >= 0xD800 && r < 0xDC00 && len(s[i:]) >= 6 && s[i] == '\\' && s[i+1] == 'u' {
					if r2 := hexRune(s[i+2:]); r2 >= 0xDC00 && r2 < 0xE000 {
						r = utf16.DecodeRune(r, r2)
						i += 6
					}
				}
				dst = utf8.AppendRune(dst, r)
				i--
			}
		}
	}
	return dst
}

func hexRune(s string) rune {
	n, _ := strconv.ParseUint(s[:4], 16, 64)
	return rune(n)
}

// countValue counts a member's raw JSON value as countString counts it.
func (e *Encoder) countValue(raw string) int {
	if raw[0] == '"' {
		return e.countRawString(raw)
	}
	return e.countString(gjson.Parse(raw))
}
