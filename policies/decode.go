package policies

import (
	"encoding"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"
)

// This file is a strict decoder from yaml.Node to Go values. yaml.v3's own
// decoder reports unknown fields only through yaml.Decoder.KnownFields,
// does not say which struct a field was unknown in, accepts duplicate keys
// in structs, turns null into zero values and reports wrong types as
// "cannot unmarshal !!str into int". Policies are written by people, so
// this decoder names the file, line and field path, refuses nulls, and
// suggests the field that was probably meant.

// pos is where a field was written: the line of its key and of its value.
// block is set when the value is a block scalar (| or >), whose text
// starts on the line after val.
type pos struct {
	key, val int
	block    bool
}

type decoder struct {
	e      *errs
	pos    map[string]pos // path → position; nil when not wanted
	budget int            // nodes left; guards alias expansion
	depth  int            // current nesting; guards alias cycles
}

// maxDepth bounds nesting (an alias inside its own anchor nests forever).
const maxDepth = 200

// maxNodes bounds how many nodes one decode visits, aliases expanded.
const maxNodes = 1 << 20

var (
	rawSectionType      = reflect.TypeFor[RawSection]()
	nodeType            = reflect.TypeFor[yaml.Node]()
	durationType        = reflect.TypeFor[time.Duration]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// decodeInto decodes n into v (a non-nil pointer), collecting problems in e.
func decodeInto(n *yaml.Node, v any, path string, e *errs) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return errNotPointer
	}
	d := &decoder{e: e, budget: maxNodes}
	d.decode(n, rv.Elem(), path)
	return nil
}

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = shortPath(path) + ": " + msg
	}
	d.e.add(line, path, "%s", msg)
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if !d.enter(n, path) {
		return
	}
	defer func() { d.depth-- }()
	for n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			d.fail(n, path, "expected a value, got nothing")
			return
		}
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			d.fail(n, path, "alias %q refers to nothing", n.Value)
			return
		}
		at := n
		n = n.Alias
		for n.Kind == yaml.AliasNode && n.Alias != nil && d.budget > 0 {
			d.budget--
			n = n.Alias
		}
		if n.Kind == yaml.AliasNode {
			d.fail(at, path, "alias %q does not resolve", at.Value)
			return
		}
	}
	if d.pos != nil {
		p := d.pos[path]
		p.val = n.Line
		p.block = n.Kind == yaml.ScalarNode && n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0
		d.pos[path] = p
	}
	t := v.Type()

	switch t {
	case rawSectionType:
		if isNull(n) {
			d.fail(n, path, "expected a mapping or a list, got %s (remove the key or give a value)", describe(n))
			return
		}
		v.Set(reflect.ValueOf(RawSection{Node: n, File: d.e.file, Line: n.Line, Path: path}))
		return
	case nodeType:
		v.Set(reflect.ValueOf(*n))
		return
	case durationType:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
			d.fail(n, path, "expected a duration such as 30s or 5m, got %s", describe(n))
			return
		}
		dur, err := time.ParseDuration(n.Value)
		if err != nil {
			d.fail(n, path, "expected a duration such as 30s or 5m, got %q", n.Value)
			return
		}
		v.SetInt(int64(dur))
		return
	}
	if v.CanAddr() && reflect.PointerTo(t).Implements(textUnmarshalerType) && t.Kind() != reflect.Pointer {
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
			d.fail(n, path, "expected a string, got %s", describe(n))
			return
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
			d.fail(n, path, "%v", err)
		}
		return
	}

	switch t.Kind() {
	case reflect.Pointer:
		if isNull(n) {
			v.SetZero()
			return
		}
		nv := reflect.New(t.Elem())
		d.decode(n, nv.Elem(), path)
		v.Set(nv)
	case reflect.Interface:
		if t.NumMethod() != 0 {
			d.fail(n, path, "cannot decode into %s", t)
			return
		}
		if x := d.generic(n, path); x != nil {
			v.Set(reflect.ValueOf(x))
		}
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.Slice:
		d.decodeSlice(n, v, path)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
			d.fail(n, path, "expected a string, got %s%s", describe(n), quoteHint(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			d.fail(n, path, "expected true or false, got %s", describe(n))
			return
		}
		var b bool
		if err := n.Decode(&b); err != nil {
			d.fail(n, path, "expected true or false, got %s", describe(n))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			d.fail(n, path, "expected an integer, got %s", describe(n))
			return
		}
		var i int64
		if err := n.Decode(&i); err != nil || v.OverflowInt(i) {
			d.fail(n, path, "integer %s is out of range", n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			d.fail(n, path, "expected a whole number, got %s", describe(n))
			return
		}
		var u uint64
		if err := n.Decode(&u); err != nil || v.OverflowUint(u) {
			d.fail(n, path, "expected a whole number in range, got %s", n.Value)
			return
		}
		v.SetUint(u)
	case reflect.Float32, reflect.Float64:
		tag := n.ShortTag()
		if n.Kind != yaml.ScalarNode || (tag != "!!float" && tag != "!!int") {
			d.fail(n, path, "expected a number, got %s", describe(n))
			return
		}
		var f float64
		if err := n.Decode(&f); err != nil || v.OverflowFloat(f) {
			d.fail(n, path, "number %s is out of range", n.Value)
			return
		}
		v.SetFloat(f)
	default:
		d.fail(n, path, "cannot decode into %s", t)
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping, got %s", describe(n))
		return
	}
	info := structInfoFor(v.Type())
	seen := make(map[string]int, len(n.Content)/2)
	where := path
	if where == "" {
		where = "the top level"
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.fail(k, path, "expected a field name, got %s", describe(k))
			continue
		}
		name := k.Value
		if k.ShortTag() == "!!merge" {
			d.e.add(k.Line, path, "merge keys (<<) are not supported in %s", where)
			continue
		}
		if first, dup := seen[name]; dup {
			d.e.add(k.Line, joinPath(path, name), "field %q is given twice in %s (first on line %d)", name, where, first)
			continue
		}
		seen[name] = k.Line
		f, ok := info.fields[name]
		if !ok {
			d.e.add(k.Line, joinPath(path, name), "field %q not found in %s%s", name, where, suggest(name, info.names))
			continue
		}
		fp := joinPath(path, name)
		if d.pos != nil {
			d.pos[fp] = pos{key: k.Line}
		}
		d.decode(val, v.FieldByIndex(f), fp)
	}
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		d.fail(n, path, "cannot decode into %s", t)
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping, got %s", describe(n))
		return
	}
	m := reflect.MakeMapWithSize(t, len(n.Content)/2)
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || isNull(k) {
			d.fail(k, path, "expected a key, got %s", describe(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			d.e.add(k.Line, path, "merge keys (<<) are not supported")
			continue
		}
		fp := joinPath(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.e.add(k.Line, fp, "key %q is given twice in %s (first on line %d)", k.Value, path, first)
			continue
		}
		seen[k.Value] = k.Line
		if d.pos != nil {
			d.pos[fp] = pos{key: k.Line}
		}
		ev := reflect.New(t.Elem()).Elem()
		d.decode(val, ev, fp)
		kv := reflect.New(t.Key()).Elem()
		kv.SetString(k.Value)
		m.SetMapIndex(kv, ev)
	}
	v.Set(m)
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string) {
	t := v.Type()
	if n.Kind == yaml.ScalarNode && !isNull(n) && isScalarKind(t.Elem().Kind()) {
		// A lone scalar where a list of scalars is expected: a list of one.
		s := reflect.MakeSlice(t, 1, 1)
		d.decode(n, s.Index(0), path+"[0]")
		v.Set(s)
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, "expected a list, got %s", describe(n))
		return
	}
	s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
	for i, c := range n.Content {
		d.decode(c, s.Index(i), path+"["+strconv.Itoa(i)+"]")
	}
	v.Set(s)
}

// enter counts a node against the budget and the depth limit; on false
// the caller returns at once (and must not call leave).
func (d *decoder) enter(n *yaml.Node, path string) bool {
	if d.budget <= 0 || d.depth >= maxDepth {
		if d.budget != -1 && d.depth >= maxDepth {
			d.fail(n, path, "nested too deeply (an alias inside its own anchor?)")
			d.budget = -1
		}
		return false
	}
	d.budget--
	if d.budget == 0 {
		d.fail(n, path, "document too large or contains excessive aliasing")
		d.budget = -1
		return false
	}
	d.depth++
	return true
}

// generic decodes n into map[string]any / []any / scalars.
func (d *decoder) generic(n *yaml.Node, path string) any {
	if !d.enter(n, path) {
		return nil
	}
	defer func() { d.depth-- }()
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil
		}
		return d.generic(n.Content[0], path)
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				d.fail(k, path, "expected a key, got %s", describe(k))
				continue
			}
			fp := joinPath(path, k.Value)
			if _, dup := m[k.Value]; dup {
				d.e.add(k.Line, fp, "key %q is given twice in %s", k.Value, path)
				continue
			}
			m[k.Value] = d.generic(val, fp)
		}
		return m
	case yaml.SequenceNode:
		s := make([]any, len(n.Content))
		for i, c := range n.Content {
			s[i] = d.generic(c, path+"["+strconv.Itoa(i)+"]")
		}
		return s
	case yaml.ScalarNode:
		var x any
		if err := n.Decode(&x); err != nil {
			d.fail(n, path, "%v", err)
			return nil
		}
		return x
	}
	return nil
}

func isScalarKind(k reflect.Kind) bool {
	switch k {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names what a node is, for "expected X, got Y".
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	v := n.Value
	if len(v) > 40 {
		v = v[:40] + "…"
	}
	switch n.ShortTag() {
	case "!!null":
		return "null"
	case "!!bool":
		return "the boolean " + v
	case "!!int", "!!float":
		return "the number " + v
	case "!!timestamp":
		return "the timestamp " + v
	case "!!str":
		if n.Value == "" {
			return "an empty string"
		}
		return "the string " + strconv.Quote(v)
	}
	return "a value tagged " + n.Tag
}

// quoteHint suggests quoting a scalar YAML did not read as a string.
func quoteHint(n *yaml.Node) string {
	if n.Kind != yaml.ScalarNode {
		return ""
	}
	switch n.ShortTag() {
	case "!!int", "!!float", "!!bool", "!!timestamp":
		return " (put it in quotes: \"" + n.Value + "\")"
	case "!!null":
		return " (remove the key or give a value)"
	}
	return ""
}

// shortPath keeps very long paths (deep nesting) readable.
func shortPath(p string) string {
	if len(p) <= 120 {
		return p
	}
	return p[:60] + "…" + p[len(p)-40:]
}

func joinPath(path, name string) string {
	if !isPlainName(name) {
		name = strconv.Quote(name)
		if path == "" {
			return name
		}
		return path + "[" + name + "]"
	}
	if path == "" {
		return name
	}
	return path + "." + name
}

func isPlainName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

type structInfo struct {
	fields map[string][]int
	names  []string
}

var structCache sync.Map // reflect.Type → *structInfo

// structInfoFor maps yaml names to field indexes: the yaml tag's name, or
// the lower-cased field name without one (as yaml.v3 does); "-" skips a
// field; ",inline" flattens an embedded or nested struct.
func structInfoFor(t reflect.Type) *structInfo {
	if si, ok := structCache.Load(t); ok {
		return si.(*structInfo)
	}
	si := &structInfo{fields: map[string][]int{}}
	var walk func(t reflect.Type, index []int)
	walk = func(t reflect.Type, index []int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			tag := f.Tag.Get("yaml")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			idx := append(append([]int(nil), index...), i)
			if strings.Contains(","+opts+",", ",inline,") && f.Type.Kind() == reflect.Struct {
				walk(f.Type, idx)
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			if _, dup := si.fields[name]; dup {
				continue
			}
			si.fields[name] = idx
			si.names = append(si.names, name)
		}
	}
	walk(t, nil)
	got, _ := structCache.LoadOrStore(t, si)
	return got.(*structInfo)
}
