package records

import (
	"fmt"
	"strings"
)

// field is a placeholder of a format.
type field uint8

const (
	fLiteral field = iota
	fNumber        // {number}
	fID            // {id}
	fEntity        // {entity}
	fTitle         // {title}: public records only, else the number
)

var fieldNames = map[string]field{"number": fNumber, "id": fID, "entity": fEntity, "title": fTitle}

type segment struct {
	f   field
	lit string
}

// format is a compiled format.
type format []segment

// compileFormat parses a format such as "[{number}](https://…&id={id})".
func compileFormat(s string) (format, error) {
	if s == "" {
		return nil, fmt.Errorf("empty format")
	}
	var f format
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			f = append(f, segment{lit: lit.String()})
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
			fd, ok := fieldNames[name]
			if !ok {
				return nil, fmt.Errorf("format %q: unknown placeholder {%s} (want {number}, {id}, {entity} or {title}; write {{ for a literal brace)", s, name)
			}
			flush()
			f = append(f, segment{f: fd})
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

// appendTo writes the format for l.
func (f format) appendTo(b []byte, l *link) []byte {
	for _, s := range f {
		switch s.f {
		case fLiteral:
			b = append(b, s.lit...)
		case fNumber:
			b = append(b, l.number...)
		case fID:
			b = append(b, l.id...)
		case fEntity:
			b = append(b, l.entity...)
		case fTitle:
			// Escape Markdown link brackets so a title cannot end the link.
			for i := 0; i < len(l.title); i++ {
				if c := l.title[i]; c == '[' || c == ']' || c == '\\' {
					b = append(b, '\\')
				}
				b = append(b, l.title[i])
			}
		}
	}
	return b
}
