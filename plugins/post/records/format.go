package records

import (
	"fmt"

	"github.com/groundgate/groundgate/post"
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

// fieldNames are the placeholders, in the order of the fields above.
var fieldNames = []string{"number", "id", "entity", "title"}

// format is a compiled format.
type format struct{ post.Format }

// compileFormat parses a format such as "[{number}](https://…&id={id})".
func compileFormat(s string) (format, error) {
	if s == "" {
		return format{}, fmt.Errorf("empty format")
	}
	f, err := post.CompileFormat(s, fieldNames...)
	return format{f}, err
}

// appendTo writes the format for l.
func (f format) appendTo(b []byte, l *link) []byte {
	for _, s := range f.Format {
		switch field(s.Field) {
		case fLiteral:
			b = append(b, s.Lit...)
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
