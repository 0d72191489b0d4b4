package localindex

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/groundgate/groundgate/grounding"
)

// Documents reads a corpus of FAQ, review or other documents from JSON
// files, with its fields mapped to what the index needs. Each document
// is a unit of its own: a rebuild re-indexes only the documents whose
// mapped content changed.
//
//	"documents": [{
//	  "paths": ["/srv/kb/knowledge.json"],
//	  "each": "*.*.docs.*",
//	  "title": "title",
//	  "body": ["body"],
//	  "entity": "../../name",
//	  "metadata": {"domain": "$1", "doc_type": "'faq'"}
//	}]
//
// Field references are dotted paths from the document ("title",
// "answer.text"); each leading "../" climbs to the enclosing object;
// "$1"…"$9" are the keys the "*"s of each matched; a value in single
// quotes is taken literally. A reference to an array or object takes its
// strings, in order, one per line.
type Documents struct {
	// Paths are JSON files or directories of .json files (read
	// recursively). Required.
	Paths []string `json:"paths"`
	// Each says where the documents are in a file: a dotted path whose
	// "*" segments match every member of an object or array. Default
	// "*": the elements of a top-level array (or the values of a
	// top-level object).
	Each string `json:"each,omitempty"`
	// ID is the document's id (and citation number). Default: its
	// location, the keys of each joined by dots (e.g. hotel.3.docs.0).
	ID string `json:"id,omitempty"`
	// Title is the title field. Default "title".
	Title string `json:"title,omitempty"`
	// Body are the fields that make up the text, joined by blank lines.
	// Default ["body"].
	Body []string `json:"body,omitempty"`
	// Entity is what the document is about (a product, a hotel): the
	// name conversations are matched against. Default: none.
	Entity string `json:"entity,omitempty"`
	// URL is a link to the document. Default: none.
	URL string `json:"url,omitempty"`
	// Metadata maps metadata names to field references (policies filter
	// and boost by them).
	Metadata map[string]string `json:"metadata,omitempty"`
}

const maxDocumentsFile = 256 << 20

// ref is a compiled field reference.
type ref struct {
	up      int      // "../" count
	path    []string // keys below that
	capture int      // $n (1-based), 0: none
	literal *string
}

func compileRef(s string) (ref, error) {
	var r ref
	if s == "" {
		return r, errors.New("empty field reference")
	}
	if len(s) >= 2 && s[0] == '\'' && s[len(s)-1] == '\'' {
		lit := s[1 : len(s)-1]
		r.literal = &lit
		return r, nil
	}
	if len(s) == 2 && s[0] == '$' && s[1] >= '1' && s[1] <= '9' {
		r.capture = int(s[1] - '0')
		return r, nil
	}
	for strings.HasPrefix(s, "../") {
		r.up++
		s = s[3:]
	}
	if s == "" {
		return r, errors.New("a reference must name a field after ../")
	}
	r.path = strings.Split(s, ".")
	for _, p := range r.path {
		if p == "" || p == "*" {
			return r, fmt.Errorf("%q: empty or wildcard segment", s)
		}
	}
	return r, nil
}

// mapping is a compiled Documents.
type mapping struct {
	each                   []string
	stars                  int
	id, title, entity, url *ref
	body                   []ref
	meta                   map[string]ref
	metaNames              []string
}

func (d *Documents) compile() (*mapping, error) {
	if len(d.Paths) == 0 {
		return nil, errors.New("documents: paths is required")
	}
	m := &mapping{meta: map[string]ref{}}
	each := d.Each
	if each == "" {
		each = "*"
	}
	m.each = strings.Split(each, ".")
	for _, s := range m.each {
		if s == "" {
			return nil, fmt.Errorf("documents: each %q has an empty segment", each)
		}
		if s == "*" {
			m.stars++
		}
	}
	one := func(name, s, def string) (*ref, error) {
		if s == "" {
			s = def
		}
		if s == "" {
			return nil, nil
		}
		r, err := compileRef(s)
		if err != nil {
			return nil, fmt.Errorf("documents: %s: %v", name, err)
		}
		if r.capture > m.stars {
			return nil, fmt.Errorf("documents: %s: $%d but each has %d wildcards", name, r.capture, m.stars)
		}
		if r.up > len(m.each) {
			return nil, fmt.Errorf("documents: %s: climbs above the top of the file", name)
		}
		return &r, nil
	}
	var err error
	if m.id, err = one("id", d.ID, ""); err != nil {
		return nil, err
	}
	if m.title, err = one("title", d.Title, "title"); err != nil {
		return nil, err
	}
	if m.entity, err = one("entity", d.Entity, ""); err != nil {
		return nil, err
	}
	if m.url, err = one("url", d.URL, ""); err != nil {
		return nil, err
	}
	body := d.Body
	if len(body) == 0 {
		body = []string{"body"}
	}
	for i, b := range body {
		r, err := one(fmt.Sprintf("body[%d]", i), b, "")
		if err != nil {
			return nil, err
		}
		m.body = append(m.body, *r)
	}
	for name, s := range d.Metadata {
		if name == "" || len(name) > 64 {
			return nil, fmt.Errorf("documents: metadata name %q: 1 to 64 characters", name)
		}
		r, err := one("metadata "+name, s, "")
		if err != nil {
			return nil, err
		}
		m.meta[strings.ToLower(name)] = *r
		m.metaNames = append(m.metaNames, strings.ToLower(name))
	}
	sort.Strings(m.metaNames)
	return m, nil
}

// located is one document found in a file: its value, the values
// enclosing it (outermost first) and the keys its path took.
type located struct {
	doc       gjson.Result
	ancestors []gjson.Result
	keys      []string // every key of the path (literal and matched)
	captures  []string // the keys the wildcards matched
}

// walk finds the documents of data under m.each, in file order.
func (m *mapping) walk(data gjson.Result, visit func(located) error) error {
	var rec func(v gjson.Result, depth int, loc located) error
	rec = func(v gjson.Result, depth int, loc located) error {
		if depth == len(m.each) {
			loc.doc = v
			return visit(loc)
		}
		seg := m.each[depth]
		next := func(k string, child gjson.Result, star bool) error {
			l := located{
				ancestors: append(append([]gjson.Result(nil), loc.ancestors...), v),
				keys:      append(append([]string(nil), loc.keys...), k),
				captures:  loc.captures,
			}
			if star {
				l.captures = append(append([]string(nil), loc.captures...), k)
			}
			return rec(child, depth+1, l)
		}
		if seg == "*" {
			var err error
			i := 0
			v.ForEach(func(k, child gjson.Result) bool {
				key := k.String()
				if v.IsArray() {
					key = strconv.Itoa(i)
				}
				i++
				err = next(key, child, true)
				return err == nil
			})
			return err
		}
		child, ok := member(v, seg)
		if !ok {
			return nil
		}
		return next(seg, child, false)
	}
	return rec(data, 0, located{})
}

// member is v[key] for an object or v[index] for an array.
func member(v gjson.Result, key string) (gjson.Result, bool) {
	var out gjson.Result
	found := false
	i := 0
	v.ForEach(func(k, child gjson.Result) bool {
		name := k.String()
		if v.IsArray() {
			name = strconv.Itoa(i)
		}
		i++
		if name == key {
			out, found = child, true
			return false
		}
		return true
	})
	return out, found
}

// text resolves r at loc as text: strings as they are, numbers and
// booleans as written, arrays and objects as their strings one per line.
func (loc located) text(r *ref) string {
	if r == nil {
		return ""
	}
	switch {
	case r.literal != nil:
		return *r.literal
	case r.capture > 0:
		return loc.captures[r.capture-1]
	}
	v := loc.doc
	if r.up > 0 {
		v = loc.ancestors[len(loc.ancestors)-r.up]
	}
	for _, k := range r.path {
		var ok bool
		if v, ok = member(v, k); !ok {
			return ""
		}
	}
	var b strings.Builder
	flatten(v, &b)
	return strings.TrimSpace(b.String())
}

func flatten(v gjson.Result, b *strings.Builder) {
	switch {
	case v.IsArray() || v.IsObject():
		v.ForEach(func(_, child gjson.Result) bool {
			flatten(child, b)
			return true
		})
	case v.Type == gjson.String, v.Type == gjson.Number, v.Type == gjson.True, v.Type == gjson.False:
		s := strings.TrimSpace(v.String())
		if s != "" {
			if b.Len() > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(s)
		}
	}
}

// article maps one located document.
func (m *mapping) article(loc located) grounding.Article {
	id := loc.text(m.id)
	if id == "" {
		id = strings.Join(loc.keys, ".")
	}
	a := grounding.Article{ID: id, Number: id, Title: loc.text(m.title), URL: loc.text(m.url), Entity: loc.text(m.entity)}
	var body []string
	for i := range m.body {
		if t := loc.text(&m.body[i]); t != "" {
			body = append(body, t)
		}
	}
	a.Content = strings.Join(body, "\n\n")
	for _, name := range m.metaNames {
		r := m.meta[name]
		if t := loc.text(&r); t != "" {
			if a.Metadata == nil {
				a.Metadata = make(map[string]string, len(m.metaNames))
			}
			a.Metadata[name] = t
		}
	}
	return a
}

// documentUnits reads the files of d and returns one unit per document.
// Documents without text are skipped; a document id seen twice is an
// error naming both places.
func documentUnits(d *Documents, m *mapping, resolve func(string) string) ([]unit, error) {
	var files []string
	for _, p := range d.Paths {
		p = resolve(p)
		fs, err := jsonFiles(p)
		if err != nil {
			return nil, err
		}
		files = append(files, fs...)
	}
	var out []unit
	where := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("documents: %v", err)
		}
		if !gjson.ValidBytes(b) {
			return nil, fmt.Errorf("documents: %s is not valid JSON", f)
		}
		n := 0
		err = m.walk(gjson.ParseBytes(b), func(loc located) error {
			a := m.article(loc)
			if strings.TrimSpace(a.Content) == "" && a.Title == "" {
				return nil
			}
			if prev, dup := where[a.ID]; dup {
				return fmt.Errorf("documents: id %q in %s and in %s (map id to a unique field)", a.ID, prev, f)
			}
			where[a.ID] = f
			u, err := documentUnit(f, a)
			if err != nil {
				return err
			}
			out = append(out, u)
			n++
			return nil
		})
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, fmt.Errorf("documents: %s: no document under each %q", f, strings.Join(m.each, "."))
		}
	}
	return out, nil
}

func documentUnit(file string, a grounding.Article) (unit, error) {
	b, err := json.Marshal(a)
	if err != nil {
		return unit{}, err
	}
	sum := sha256.Sum256(b)
	return unit{key: "doc:" + file + "#" + a.ID, name: file + " " + a.ID, hash: hex.EncodeToString(sum[:]), article: &a}, nil
}

// jsonFiles lists a JSON file, or the .json files under a directory.
func jsonFiles(p string) ([]string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("documents: %v", err)
	}
	if !fi.IsDir() {
		if fi.Size() > maxDocumentsFile {
			return nil, fmt.Errorf("documents: %s: larger than %d bytes", abs, maxDocumentsFile)
		}
		return []string{abs}, nil
	}
	var files []string
	err = filepath.WalkDir(abs, func(f string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() && strings.EqualFold(filepath.Ext(f), ".json") {
			files = append(files, f)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("documents: %v", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("documents: %s holds no .json files", abs)
	}
	return files, nil
}
