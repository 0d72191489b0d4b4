package citations

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/groundgate/groundgate/grounding"
)

// field is a placeholder of the format template.
type field uint8

const (
	fLiteral field = iota
	fN             // {n}: the citation's number in the answer
	fDoc           // {doc}: the marker as injected, "doc3"
	fNumber        // {number}: article public number, else article id
	fTitle         // {title}
	fURL           // {url}
	fID            // {id}: article id
	fChunkID       // {chunk_id}
)

var fieldNames = map[string]field{
	"n": fN, "doc": fDoc, "number": fNumber, "title": fTitle, "url": fURL, "id": fID, "chunk_id": fChunkID,
}

type segment struct {
	f   field
	lit string
}

// format is a compiled format template.
type format []segment

// compileFormat parses a template such as "[{number}]({url})": text with
// placeholders {n}, {doc}, {number}, {title}, {url}, {id}, {chunk_id};
// "{{" and "}}" stand for literal braces.
func compileFormat(s string) (format, error) {
	var f format
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			f = append(f, segment{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
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
				return nil, fmt.Errorf("format %q: unknown placeholder {%s} (want {n}, {doc}, {number}, {title}, {url}, {id} or {chunk_id}; write {{ for a literal brace)", s, name)
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

// uses reports whether the template uses placeholder fd.
func (f format) uses(fd field) bool {
	for _, s := range f {
		if s.f == fd {
			return true
		}
	}
	return false
}

// appendTo renders the template for doc d (index i in Packed.Docs) cited
// as number n.
func (f format) appendTo(dst []byte, d *grounding.Doc, i, n int) []byte {
	for _, s := range f {
		switch s.f {
		case fLiteral:
			dst = append(dst, s.lit...)
		case fN:
			dst = strconv.AppendInt(dst, int64(n), 10)
		case fDoc:
			dst = append(dst, "doc"...)
			dst = strconv.AppendInt(dst, int64(i+1), 10)
		case fNumber:
			if d.Number != "" {
				dst = append(dst, d.Number...)
			} else {
				dst = append(dst, d.ArticleID...)
			}
		case fTitle:
			dst = append(dst, d.Title...)
		case fURL:
			dst = append(dst, d.URL...)
		case fID:
			dst = append(dst, d.ArticleID...)
		case fChunkID:
			dst = append(dst, d.ChunkID...)
		}
	}
	return dst
}
