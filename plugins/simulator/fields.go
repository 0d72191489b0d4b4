package simulator

import (
	"strings"

	"github.com/tidwall/gjson"
)

// fields is a request object with its top-level members indexed. The
// simulator reads a dozen of them, mostly absent ones, and each lookup
// on the bare object would skip over the whole messages array again: on
// a grounded prompt (kilobytes of articles) that was most of a request's
// cost.
type fields struct {
	gjson.Result
	members map[string]gjson.Result // the first of duplicates, as gjson reads
}

func indexFields(root gjson.Result) fields {
	f := fields{Result: root, members: make(map[string]gjson.Result, 8)}
	root.ForEach(func(k, v gjson.Result) bool {
		if _, dup := f.members[k.Str]; !dup {
			f.members[k.Str] = v
		}
		return true
	})
	return f
}

// Get is gjson's Get on the object; a plain path (names of letters,
// digits and '_' joined by dots) starts from the index, any other path
// syntax goes to gjson.
func (f fields) Get(path string) gjson.Result {
	if f.members == nil || !plainPath(path) {
		return f.Result.Get(path)
	}
	first, rest, nested := strings.Cut(path, ".")
	v := f.members[first]
	if !nested {
		return v
	}
	return v.Get(rest)
}

func plainPath(p string) bool {
	if p == "" || p[0] == '.' || p[len(p)-1] == '.' || strings.Contains(p, "..") {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
