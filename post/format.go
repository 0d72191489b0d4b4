package post

import (
	"fmt"
	"strings"
)

// Format is a compiled output template of a post-processor, such as a
// citation's "[{number}]({url})": literal text and {name} placeholders,
// "{{" and "}}" standing for literal braces. Each part is a literal (Field
// 0) or the placeholder names[Field-1] of CompileFormat, so a plugin
// numbers its fields from 1 in the order it names them.
type Format []FormatPart

// FormatPart is a literal or a placeholder of a Format.
type FormatPart struct {
	Field int // 0: Lit; else the placeholder's 1-based index in names
	Lit   string
}

// CompileFormat parses s with the placeholders names.
func CompileFormat(s string, names ...string) (Format, error) {
	var f Format
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			f = append(f, FormatPart{Lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '{':
			if i+1 < len(s) && s[i+1] == '{' {
				lit.WriteByte('{')
				i++
				continue
			}
			end := strings.IndexByte(s[i+1:], '}')
			if end < 0 {
				return nil, fmt.Errorf("format %q: unclosed '{' at byte %d", s, i)
			}
			name := s[i+1 : i+1+end]
			field := 0
			for j, n := range names {
				if n == name {
					field = j + 1
				}
			}
			if field == 0 {
				return nil, fmt.Errorf("format %q: unknown placeholder {%s} (want %s; write {{ for a literal brace)", s, name, placeholders(names))
			}
			flush()
			f = append(f, FormatPart{Field: field})
			i += end + 1
		case '}':
			if i+1 < len(s) && s[i+1] == '}' {
				lit.WriteByte('}')
				i++
				continue
			}
			return nil, fmt.Errorf("format %q: lone '}' at byte %d (write }} for a literal brace)", s, i)
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return f, nil
}

// Uses reports whether the format has the placeholder field.
func (f Format) Uses(field int) bool {
	for _, p := range f {
		if p.Field == field {
			return true
		}
	}
	return false
}

// placeholders lists names as "{a}, {b} or {c}".
func placeholders(names []string) string {
	var b strings.Builder
	for i, n := range names {
		switch {
		case i == 0:
		case i == len(names)-1:
			b.WriteString(" or ")
		default:
			b.WriteString(", ")
		}
		b.WriteString("{" + n + "}")
	}
	return b.String()
}
