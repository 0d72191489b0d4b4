package policies

import (
	"strings"
	"unicode/utf8"
)

// Fencing. Retrieved records and articles and the user's own text reach a
// meta prompt only inside fences:
//
//	<<<article ref="doc1" id="KA-0042">>>
//	title: Resetting the X200 headphones
//	Hold the power button for ten seconds…
//	<<<end article>>>
//
// or, for one-line values, inline: <<<text>>>Phone won't charge<<<end text>>>.
//
// The fence markers are the runs "<<<" and ">>>". Untrusted text is
// escaped so that it can never contain either run, so it can never close
// its fence or open a fake one: the third '<' (or '>') of a run becomes
// '‹' (U+2039) ('›', U+203A), and in inline fences a leading '>' or a
// trailing '<' is replaced the same way so that nothing straddles the
// marker. The escaping also drops control characters (except tab and
// newline) and bidirectional-override characters, turns CR and CRLF into
// LF, replaces invalid UTF-8 with U+FFFD, and breaks chat-markup tokens
// such as <|im_start|> ('<|' → '‹|', '|>' → '|›'). Attribute values are
// reduced to a safe character set, so quotes and markers never reach them.

const (
	fenceOpen  = "<<<"
	fenceClose = ">>>"
	ltSubst    = "‹" // U+2039
	gtSubst    = "›" // U+203A
)

// Escape returns s as it appears inside a fence: it cannot contain "<<<"
// or ">>>", control or bidi-override characters, or chat-markup tokens.
// Text without '<', '>', '|', CR or control characters is returned as is.
func Escape(s string) string {
	if !needsEscape(s) {
		return s
	}
	return string(appendEscaped(nil, s, ""))
}

// Fence wraps untrusted content in a fence labelled label (reduced to
// [a-z0-9_-], "text" when empty): inline when the escaped content is one
// line, as a block otherwise. The result contains exactly two "<<<" and
// two ">>>" runs: the fence's own.
func Fence(label, content string) string {
	return string(appendFence(nil, label, nil, content))
}

func needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 && c != '\t' && c != '\n' || c == 0x7f || c == '<' || c == '>' || c == '|' || c >= 0x80 {
			return true
		}
	}
	return false
}

// plainByte marks bytes that escaping copies as they are, whatever
// surrounds them: printable ASCII and tab, except '<', '>' and '|'.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '<' && c != '>' && c != '|'
	}
	t['\t'] = true
	return t
}()

// appendEscaped appends the escaped form of s; indent, when not "", is
// written after every newline (continuation lines of a field).
func appendEscaped(dst []byte, s, indent string) []byte {
	lt, gt := 0, 0 // length of the current run of '<' / '>' in the output
	for i := 0; i < len(s); {
		if plainByte[s[i]] {
			j := i + 1
			for j < len(s) && plainByte[s[j]] {
				j++
			}
			dst = append(dst, s[i:j]...)
			lt, gt = 0, 0
			i = j
			continue
		}
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			switch {
			case c == '\r':
				if i < len(s) && s[i] == '\n' {
					i++
				}
				c = '\n'
			case c < 0x20 && c != '\t' && c != '\n', c == 0x7f:
				continue
			}
			switch c {
			case '<':
				if lt == 2 || i < len(s) && s[i] == '|' {
					dst = append(dst, ltSubst...)
					lt, gt = 0, 0
					continue
				}
				lt++
				gt = 0
				dst = append(dst, '<')
				continue
			case '>':
				if gt == 2 || len(dst) > 0 && dst[len(dst)-1] == '|' {
					dst = append(dst, gtSubst...)
					lt, gt = 0, 0
					continue
				}
				gt++
				lt = 0
				dst = append(dst, '>')
				continue
			}
			lt, gt = 0, 0
			dst = append(dst, c)
			if c == '\n' && indent != "" {
				dst = append(dst, indent...)
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		lt, gt = 0, 0
		switch {
		case r == utf8.RuneError && size == 1:
			r = utf8.RuneError
		case r >= 0x80 && r <= 0x9f, // C1 controls
			r >= 0x202a && r <= 0x202e, // bidi embeddings and overrides
			r >= 0x2066 && r <= 0x2069, // bidi isolates
			r == 0x2028 || r == 0x2029: // line/paragraph separators
			continue
		}
		dst = utf8.AppendRune(dst, r)
	}
	return dst
}

// appendFence appends a fence around content. attrs are name, value
// pairs; values are reduced to a safe character set.
func appendFence(dst []byte, label string, attrs []string, content string) []byte {
	label = fenceLabel(label)
	dst = append(dst, fenceOpen...)
	dst = append(dst, label...)
	for i := 0; i+1 < len(attrs); i += 2 {
		if attrs[i+1] == "" {
			continue
		}
		dst = append(dst, ' ')
		dst = append(dst, attrs[i]...)
		dst = append(dst, '=', '"')
		dst = appendAttr(dst, attrs[i+1])
		dst = append(dst, '"')
	}
	dst = append(dst, fenceClose...)
	start := len(dst)
	dst = appendEscaped(dst, content, "")
	body := dst[start:]
	if !containsNewline(body) {
		// Inline: keep '>' at the start and '<' at the end from touching
		// the markers.
		if len(body) > 0 && body[0] == '>' {
			dst = append(dst[:start], append([]byte(gtSubst), body[1:]...)...)
			body = dst[start:]
		}
		if len(body) > 0 && body[len(body)-1] == '<' {
			dst = append(dst[:len(dst)-1], ltSubst...)
		}
	} else {
		// Block: content on its own lines.
		dst = append(dst, 0)
		copy(dst[start+1:], dst[start:len(dst)-1])
		dst[start] = '\n'
		if dst[len(dst)-1] != '\n' {
			dst = append(dst, '\n')
		}
	}
	dst = append(dst, fenceOpen...)
	dst = append(dst, "end "...)
	dst = append(dst, label...)
	return append(dst, fenceClose...)
}

func containsNewline(b []byte) bool {
	for _, c := range b {
		if c == '\n' {
			return true
		}
	}
	return false
}

// fenceLabel reduces a label to [a-z0-9_-], at most 32 bytes.
func fenceLabel(s string) string {
	ok := s != "" && len(s) <= 32
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-'
	}
	if ok {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < 32; i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_', c == '-':
			b.WriteByte(c)
		case c >= 'A' && c <= 'Z':
			b.WriteByte(c + 'a' - 'A')
		}
	}
	if b.Len() == 0 {
		return "text"
	}
	return b.String()
}

// appendAttr appends an attribute value: URL and identifier characters
// pass, everything else becomes '_'; at most 512 bytes.
func appendAttr(dst []byte, s string) []byte {
	if len(s) > 512 {
		s = s[:512]
	}
	for i := 0; i < len(s); i++ {
		if isAttrByte(s[i]) {
			dst = append(dst, s[i])
		} else {
			dst = append(dst, '_')
		}
	}
	return dst
}

func isAttrByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("-._~:/?#[]@!$&'()*+,;=%", c) >= 0
}

// Ident reduces an identifier-like value (an id, a record number, an
// entity or field name, a citation ref) to [A-Za-z0-9._-], other bytes
// becoming '_', at most 64 bytes. Templates get these values in this
// form, unfenced: no spaces, quotes, colons or markers survive, so an id
// cannot break a fence or read as a sentence. They are expected to be
// system-generated (Dataverse numbers and GUIDs, gateway refs); never
// route free text through them.
func Ident(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	clean := true
	for i := 0; i < len(s) && clean; i++ {
		clean = isIdentByte(s[i])
	}
	if clean {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if !isIdentByte(c) {
			b[i] = '_'
		}
	}
	return string(b)
}

func isIdentByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// SafeURL reduces a URL to URL characters (others percent-encoded), at
// most 2048 bytes; quotes, spaces, '<' and '>' never survive.
func SafeURL(s string) string {
	if len(s) > 2048 {
		s = s[:2048]
	}
	clean := true
	for i := 0; i < len(s) && clean; i++ {
		clean = isAttrByte(s[i]) && s[i] != '\''
	}
	if clean {
		return s
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+16)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isAttrByte(c) && c != '\'' {
			b = append(b, c)
		} else {
			b = append(b, '%', hex[c>>4], hex[c&15])
		}
	}
	return string(b)
}
