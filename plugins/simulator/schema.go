package simulator

import (
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// Answers that clients parse: a JSON value satisfying a JSON Schema (a
// function tool's parameters, response_format json_schema, the Responses
// API's text.format), built deterministically from the schema: const and
// enum take their first value, the first branch of anyOf/oneOf/allOf is
// followed, objects get every property, arrays minItems items (at least
// one), strings honour format and minLength, numbers minimum and maximum.
// Local $refs (#/$defs/..., #/definitions/...) are resolved.

// maxSchemaDepth bounds nesting (and recursive $refs); maxExampleBytes
// bounds the value, which a recursive schema with minItems could make
// exponential: past it, nested values are null.
const (
	maxSchemaDepth  = 12
	maxExampleBytes = 64 << 10
)

// exampleJSON appends a value satisfying schema to dst.
func exampleJSON(dst []byte, schema gjson.Result) []byte {
	return appendExample(dst, schema, schema, 0)
}

func appendExample(dst []byte, root, s gjson.Result, depth int) []byte {
	if depth > maxSchemaDepth || len(dst) > maxExampleBytes {
		return append(dst, "null"...)
	}
	if !s.IsObject() {
		return append(dst, "{}"...)
	}
	if ref := s.Get(`\$ref`); ref.Type == gjson.String {
		return appendExample(dst, root, resolveRef(root, ref.Str), depth+1)
	}
	if c := s.Get("const"); c.Exists() {
		return append(dst, c.Raw...)
	}
	if e := s.Get("enum"); e.IsArray() {
		if first := e.Get("0"); first.Exists() {
			return append(dst, first.Raw...)
		}
	}
	for _, k := range [...]string{"anyOf", "oneOf", "allOf"} {
		if alt := s.Get(k); alt.IsArray() {
			var pick gjson.Result
			alt.ForEach(func(_, a gjson.Result) bool {
				if !pick.Exists() || a.Get("type").Str != "null" {
					pick = a
				}
				return a.Get("type").Str == "null"
			})
			if pick.Exists() {
				return appendExample(dst, root, pick, depth+1)
			}
		}
	}
	typ := s.Get("type")
	t := typ.Str
	if typ.IsArray() {
		typ.ForEach(func(_, v gjson.Result) bool {
			t = v.Str
			return v.Str == "null"
		})
	}
	if t == "" {
		switch {
		case s.Get("properties").Exists():
			t = "object"
		case s.Get("items").Exists():
			t = "array"
		}
	}
	switch t {
	case "object":
		dst = append(dst, '{')
		n := 0
		s.Get("properties").ForEach(func(k, v gjson.Result) bool {
			if n > 0 {
				dst = append(dst, ',')
			}
			n++
			dst = appendJSONString(dst, k.Str)
			dst = append(dst, ':')
			dst = appendExample(dst, root, v, depth+1)
			return true
		})
		return append(dst, '}')
	case "array":
		items := max(int(s.Get("minItems").Int()), 1)
		if mx := s.Get("maxItems"); mx.Exists() && int(mx.Int()) < items {
			items = int(mx.Int())
		}
		dst = append(dst, '[')
		for i := 0; i < items && i < 8; i++ {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendExample(dst, root, s.Get("items"), depth+1)
		}
		return append(dst, ']')
	case "string":
		return appendJSONString(dst, exampleString(s))
	case "integer", "number":
		return strconv.AppendInt(dst, exampleNumber(s), 10)
	case "boolean":
		return append(dst, "true"...)
	case "null":
		return append(dst, "null"...)
	}
	return append(dst, "{}"...)
}

// resolveRef finds a local reference such as #/$defs/Address.
func resolveRef(root gjson.Result, ref string) gjson.Result {
	if !strings.HasPrefix(ref, "#/") {
		return gjson.Result{}
	}
	cur := root
	for _, seg := range strings.Split(ref[2:], "/") {
		seg = strings.ReplaceAll(strings.ReplaceAll(seg, "~1", "/"), "~0", "~")
		cur = cur.Get(gjson.Escape(seg))
	}
	return cur
}

func exampleString(s gjson.Result) string {
	var v string
	switch s.Get("format").Str {
	case "date-time":
		v = "2024-01-01T00:00:00Z"
	case "date":
		v = "2024-01-01"
	case "time":
		v = "00:00:00"
	case "email":
		v = "user@example.com"
	case "uri", "url":
		v = "https://example.com"
	case "uuid":
		v = "00000000-0000-4000-8000-000000000000"
	default:
		v = "example"
	}
	if mn := int(s.Get("minLength").Int()); len(v) < mn {
		v += strings.Repeat("x", mn-len(v))
	}
	if mx := s.Get("maxLength"); mx.Exists() && int(mx.Int()) < len(v) {
		v = v[:max(int(mx.Int()), 0)]
	}
	return v
}

func exampleNumber(s gjson.Result) int64 {
	n := int64(1)
	if mn := s.Get("minimum"); mn.Exists() {
		n = int64(mn.Num)
		if float64(n) < mn.Num {
			n++
		}
	}
	if mn := s.Get("exclusiveMinimum"); mn.Type == gjson.Number && float64(n) <= mn.Num {
		n = int64(mn.Num) + 1
	}
	if mx := s.Get("maximum"); mx.Exists() && float64(n) > mx.Num {
		n = int64(mx.Num)
		if float64(n) > mx.Num {
			n--
		}
	}
	if mx := s.Get("exclusiveMaximum"); mx.Type == gjson.Number && float64(n) >= mx.Num {
		n = int64(mx.Num) - 1
	}
	return n
}
