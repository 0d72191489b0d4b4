package wire

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/tidwall/gjson"
)

// MaxDepth is how deeply a request body may nest arrays and objects. Real
// requests (JSON schemas of tools and response formats included) stay far
// below it; deeper bodies only serve to exhaust the parsers after ours.
const MaxDepth = 400

// smallObject is the member count up to which duplicate keys are found by
// comparing with each earlier key; larger objects switch to a set.
const smallObject = 16

// Check verifies in one pass over body that it is one JSON value
// (RFC 8259), that it nests no deeper than MaxDepth, and that no object
// in it has the same member twice. Parsers disagree on duplicates (the
// gateway's gjson reads the first, Python, Node, Go and .NET the last),
// so a body with one would be filtered and capped on one value and
// answered on another: it is refused. Errors are *Error values ready to
// send (400); a syntax error reports its line and column.
func Check(body []byte) error {
	s := checkers.Get().(*checker)
	s.data = body
	s.frames, s.keys = s.frameBuf[:0], s.keyBuf[:0]
	err := s.run()
	// Keep no reference to the body or to the sets of large objects.
	s.data = nil
	clear(s.frameBuf[:])
	if cap(s.frames) == len(s.frameBuf) && cap(s.keys) == len(s.keyBuf) {
		checkers.Put(s)
	}
	return err
}

// checkers are reused: a checker's room for typical requests is 2 KB.
var checkers = sync.Pool{New: func() any { return new(checker) }}

type checker struct {
	data   []byte
	frames []frame
	keys   []keyRef // the keys of the open objects, innermost last

	// Room for typical requests, so a check allocates once.
	frameBuf [16]frame
	keyBuf   [64]keyRef
}

type frame struct {
	obj   bool
	n     int // members or elements so far
	keys0 int // this object's first key in checker.keys
	set   map[string]struct{}
}

type keyRef struct {
	start, end int // the key's bytes between its quotes
	esc        bool
}

func (s *checker) run() error {
	d := s.data
	i := skipSpace(d, 0)
	for {
		// A value starts at i.
		if i >= len(d) {
			return syntaxError(d)
		}
		switch c := d[i]; {
		case c == '{' || c == '[':
			if len(s.frames) == MaxDepth {
				return s.tooDeep()
			}
			s.frames = append(s.frames, frame{obj: c == '{', keys0: len(s.keys)})
			i = skipSpace(d, i+1)
			if i < len(d) && d[i] == c+2 { // '}' and ']' follow '{' and '[' by two
				i = s.pop(i + 1)
				goto after
			}
			if c == '{' {
				var err error
				if i, err = s.member(i); err != nil {
					return err
				}
			}
			continue
		case c == '"':
			end, _, ok := scanString(d, i)
			if !ok {
				return syntaxError(d)
			}
			i = end
		case c == '-' || c >= '0' && c <= '9':
			end, ok := scanNumber(d, i)
			if !ok {
				return syntaxError(d)
			}
			i = end
		case c == 't':
			if !bytes.HasPrefix(d[i:], []byte("true")) {
				return syntaxError(d)
			}
			i += 4
		case c == 'f':
			if !bytes.HasPrefix(d[i:], []byte("false")) {
				return syntaxError(d)
			}
			i += 5
		case c == 'n':
			if !bytes.HasPrefix(d[i:], []byte("null")) {
				return syntaxError(d)
			}
			i += 4
		default:
			return syntaxError(d)
		}
	after:
		// A value ended just before i.
		for {
			i = skipSpace(d, i)
			if len(s.frames) == 0 {
				if i != len(d) {
					return syntaxError(d)
				}
				return nil
			}
			if i >= len(d) {
				return syntaxError(d)
			}
			top := &s.frames[len(s.frames)-1]
			switch {
			case d[i] == ',':
				top.n++
				i = skipSpace(d, i+1)
				if top.obj {
					var err error
					if i, err = s.member(i); err != nil {
						return err
					}
				}
			case top.obj && d[i] == '}' || !top.obj && d[i] == ']':
				i = s.pop(i + 1)
				continue
			default:
				return syntaxError(d)
			}
			break
		}
	}
}

// member reads `"key" :` at i, refusing a key its object already has, and
// returns where the member's value starts.
func (s *checker) member(i int) (int, error) {
	d := s.data
	if i >= len(d) || d[i] != '"' {
		return 0, syntaxError(d)
	}
	end, esc, ok := scanString(d, i)
	if !ok {
		return 0, syntaxError(d)
	}
	k := keyRef{start: i + 1, end: end - 1, esc: esc}
	if s.seen(k) {
		return 0, s.duplicate(k)
	}
	s.keys = append(s.keys, k)
	i = skipSpace(d, end)
	if i >= len(d) || d[i] != ':' {
		return 0, syntaxError(d)
	}
	return skipSpace(d, i+1), nil
}

// seen reports whether the innermost object already has key k.
func (s *checker) seen(k keyRef) bool {
	f := &s.frames[len(s.frames)-1]
	prev := s.keys[f.keys0:]
	if f.set == nil && len(prev) < smallObject {
		for _, p := range prev {
			if s.sameKey(p, k) {
				return true
			}
		}
		return false
	}
	if f.set == nil {
		f.set = make(map[string]struct{}, 2*len(prev))
		for _, p := range prev {
			f.set[s.keyString(p)] = struct{}{}
		}
	}
	name := s.keyString(k)
	if _, dup := f.set[name]; dup {
		return true
	}
	f.set[name] = struct{}{}
	return false
}

func (s *checker) sameKey(a, b keyRef) bool {
	if !a.esc && !b.esc {
		return bytes.Equal(s.data[a.start:a.end], s.data[b.start:b.end])
	}
	return s.keyString(a) == s.keyString(b)
}

// keyString is the key's text, escapes resolved: "content" and
// "\u0063ontent" are the same member to every parser.
func (s *checker) keyString(k keyRef) string {
	if !k.esc {
		return string(s.data[k.start:k.end])
	}
	return gjson.ParseBytes(s.data[k.start-1 : k.end+1]).Str
}

// pop closes the innermost container; i is just past its last byte.
func (s *checker) pop(i int) int {
	f := s.frames[len(s.frames)-1]
	s.keys = s.keys[:f.keys0]
	s.frames = s.frames[:len(s.frames)-1]
	return i
}

func (s *checker) duplicate(k keyRef) *Error {
	where, path := "the request body", s.path()
	if path != "" {
		where = "'" + path + "'"
	}
	name := s.keyString(k)
	param := name
	if path != "" {
		param = path + "." + name
	}
	return BadRequest(param, "duplicate_key", fmt.Sprintf(
		"Invalid request body: %s has the member '%s' more than once. Send each member once.", where, OneLine(name, 100)))
}

func (s *checker) tooDeep() *Error {
	return BadRequest(s.path(), "nesting_too_deep", fmt.Sprintf(
		"Invalid request body: arrays and objects nest more than %d levels deep.", MaxDepth))
}

// path names the innermost open value the way errors name parameters
// (messages[0].content); "" at the top level. Long paths are cut: they
// are for people to read.
func (s *checker) path() string {
	var b strings.Builder
	for fi := 1; fi < len(s.frames); fi++ {
		if b.Len() > 200 {
			b.WriteString("…")
			break
		}
		s.appendStep(&b, s.frames[fi-1], fi)
	}
	return b.String()
}

// appendStep writes how parent reaches its child frame number child.
func (s *checker) appendStep(b *strings.Builder, parent frame, child int) {
	if parent.obj {
		// The parent's current key is the last one it recorded, just
		// before the child's own keys.
		k := s.keys[s.frames[child].keys0-1]
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(OneLine(s.keyString(k), 100))
		return
	}
	b.WriteByte('[')
	b.WriteString(strconv.Itoa(parent.n))
	b.WriteByte(']')
}

func skipSpace(d []byte, i int) int {
	for i < len(d) {
		switch d[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scanString reads the string whose opening quote is at i and returns
// the index just past its closing quote, and whether it has escapes.
func scanString(d []byte, i int) (end int, esc bool, ok bool) {
	for i++; i < len(d); i++ {
		switch c := d[i]; {
		case c == '"':
			return i + 1, esc, true
		case c == '\\':
			esc = true
			i++
			if i >= len(d) {
				return 0, false, false
			}
			switch d[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(d) {
					return 0, false, false
				}
				for _, h := range d[i+1 : i+5] {
					if !isHex(h) {
						return 0, false, false
					}
				}
				i += 4
			default:
				return 0, false, false
			}
		case c < 0x20:
			return 0, false, false
		}
	}
	return 0, false, false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// scanNumber reads -?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)? at i.
func scanNumber(d []byte, i int) (int, bool) {
	if d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		i = digits(d, i)
	default:
		return 0, false
	}
	if i < len(d) && d[i] == '.' {
		j := digits(d, i+1)
		if j == i+1 {
			return 0, false
		}
		i = j
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		j := digits(d, i)
		if j == i {
			return 0, false
		}
		i = j
	}
	return i, true
}

func digits(d []byte, i int) int {
	for i < len(d) && d[i] >= '0' && d[i] <= '9' {
		i++
	}
	return i
}
