package citations

import (
	"strconv"

	"github.com/groundgate/groundgate/grounding"
	"github.com/groundgate/groundgate/post"
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

// fieldNames are the placeholders, in the order of the fields above.
var fieldNames = []string{"n", "doc", "number", "title", "url", "id", "chunk_id"}

// format is a compiled format template.
type format struct{ post.Format }

// compileFormat parses a template such as "[{number}]({url})": text with
// placeholders {n}, {doc}, {number}, {title}, {url}, {id}, {chunk_id};
// "{{" and "}}" stand for literal braces.
func compileFormat(s string) (format, error) {
	f, err := post.CompileFormat(s, fieldNames...)
	return format{f}, err
}

// uses reports whether the template uses placeholder fd.
func (f format) uses(fd field) bool { return f.Uses(int(fd)) }

// appendTo renders the template for doc d (index i in Packed.Docs) cited
// as number n.
func (f format) appendTo(dst []byte, d *grounding.Doc, i, n int) []byte {
	for _, s := range f.Format {
		switch field(s.Field) {
		case fLiteral:
			dst = append(dst, s.Lit...)
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
