package policies

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func loadSchema(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile("schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("schema.json: %v", err)
	}
	if s["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema = %v", s["$schema"])
	}
	return s
}

// TestSchemaMatchesStructs keeps schema.json and the Go structs in step:
// at every level where the Go side is a struct, the schema's properties
// are exactly the struct's yaml names, and every property has a
// description.
func TestSchemaMatchesStructs(t *testing.T) {
	root := loadSchema(t)
	var walk func(path string, typ reflect.Type, node map[string]any)
	walk = func(path string, typ reflect.Type, node map[string]any) {
		for typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || typ == rawSectionType {
			return
		}
		props, _ := node["properties"].(map[string]any)
		if props == nil {
			t.Errorf("%s: schema has no properties for struct %s", path, typ)
			return
		}
		if node["additionalProperties"] != false {
			t.Errorf("%s: schema must set additionalProperties: false (the loader rejects unknown fields)", path)
		}
		info := structInfoFor(typ)
		goKeys := slices.Sorted(slices.Values(info.names))
		var schemaKeys []string
		for k := range props {
			schemaKeys = append(schemaKeys, k)
		}
		sort.Strings(schemaKeys)
		if !slices.Equal(goKeys, schemaKeys) {
			t.Errorf("%s: Go yaml keys %v, schema properties %v", path, goKeys, schemaKeys)
		}
		for _, k := range info.names {
			p, _ := props[k].(map[string]any)
			if p == nil {
				continue
			}
			if d, _ := p["description"].(string); d == "" {
				t.Errorf("%s.%s: no description", path, k)
			}
			walk(path+"."+k, typ.FieldByIndex(info.fields[k]).Type, p)
		}
	}
	walk("policy", reflect.TypeFor[policySpec](), root)
}

// schemaValidate checks v against a JSON Schema, supporting the keywords
// schema.json uses. An unknown keyword is an error, so the schema cannot
// grow constraints this test silently ignores.
func schemaValidate(root, s map[string]any, v any, path string) []string {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, path+": "+fmt.Sprintf(format, args...)) }
	for k, kw := range s {
		switch k {
		case "$schema", "$id", "title", "description", "$defs":
		case "$ref":
			ref := strings.TrimPrefix(kw.(string), "#/$defs/")
			def := root["$defs"].(map[string]any)[ref].(map[string]any)
			errs = append(errs, schemaValidate(root, def, v, path)...)
		case "type":
			types := []any{kw}
			if l, ok := kw.([]any); ok {
				types = l
			}
			ok := false
			for _, ty := range types {
				ok = ok || jsonType(v, ty.(string))
			}
			if !ok {
				bad("type %T, want %v", v, kw)
			}
		case "enum":
			if !slices.ContainsFunc(kw.([]any), func(e any) bool { return reflect.DeepEqual(e, v) }) {
				bad("%v not in %v", v, kw)
			}
		case "const":
			if !reflect.DeepEqual(kw, v) {
				bad("%v is not %v", v, kw)
			}
		case "not":
			if len(schemaValidate(root, kw.(map[string]any), v, path)) == 0 {
				bad("%v matches a forbidden schema", v)
			}
		case "anyOf":
			ok := false
			for _, sub := range kw.([]any) {
				ok = ok || len(schemaValidate(root, sub.(map[string]any), v, path)) == 0
			}
			if !ok {
				bad("%v matches none of anyOf", v)
			}
		case "pattern":
			if str, ok := v.(string); ok && !regexp.MustCompile(kw.(string)).MatchString(str) {
				bad("%q does not match %s", str, kw)
			}
		case "minLength":
			if str, ok := v.(string); ok && len([]rune(str)) < int(kw.(float64)) {
				bad("%q is too short", str)
			}
		case "required":
			if m, ok := v.(map[string]any); ok {
				for _, r := range kw.([]any) {
					if _, ok := m[r.(string)]; !ok {
						bad("missing %s", r)
					}
				}
			}
		case "properties", "additionalProperties", "propertyNames":
			m, ok := v.(map[string]any)
			if !ok || k != "properties" {
				continue
			}
			props := kw.(map[string]any)
			for key, val := range m {
				if ps, ok := props[key]; ok {
					errs = append(errs, schemaValidate(root, ps.(map[string]any), val, path+"."+key)...)
					continue
				}
				switch ap := s["additionalProperties"].(type) {
				case bool:
					if !ap {
						bad("unknown property %q", key)
					}
				case map[string]any:
					errs = append(errs, schemaValidate(root, ap, val, path+"."+key)...)
				}
			}
		case "items":
			if l, ok := v.([]any); ok {
				for i, x := range l {
					errs = append(errs, schemaValidate(root, kw.(map[string]any), x, fmt.Sprintf("%s[%d]", path, i))...)
				}
			}
		default:
			bad("schema keyword %q is not supported by this test's validator", k)
		}
	}
	// additionalProperties and propertyNames without properties.
	if m, ok := v.(map[string]any); ok {
		if _, hasProps := s["properties"]; !hasProps {
			if ap, ok := s["additionalProperties"].(map[string]any); ok {
				for key, val := range m {
					errs = append(errs, schemaValidate(root, ap, val, path+"."+key)...)
				}
			}
		}
		if pn, ok := s["propertyNames"].(map[string]any); ok {
			for key := range m {
				errs = append(errs, schemaValidate(root, pn, key, path+"."+key)...)
			}
		}
	}
	return errs
}

func jsonType(v any, ty string) bool {
	switch ty {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "integer":
		f, ok := v.(float64)
		return ok && f == float64(int64(f))
	case "number":
		_, ok := v.(float64)
		return ok
	}
	return false
}

// yamlToJSON turns a policy file into the JSON value editors validate.
func yamlToJSON(t *testing.T, src []byte) any {
	t.Helper()
	var x any
	if err := yaml.Unmarshal(src, &x); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(x)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestExamplesValidateAgainstSchema: every shipped example is valid under
// schema.json and loads; and mistakes are caught by both the schema and
// the loader, so the two agree.
func TestExamplesValidateAgainstSchema(t *testing.T) {
	root := loadSchema(t)
	files, _ := filepath.Glob("examples/*.yaml")
	if len(files) != 6 {
		t.Fatalf("%d example files", len(files))
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if errs := schemaValidate(root, root, yamlToJSON(t, src), "policy"); len(errs) > 0 {
			t.Errorf("%s:\n%s", f, strings.Join(errs, "\n"))
		}
		if _, err := Load(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}

	base, _ := os.ReadFile("examples/draft_email.yaml")
	for _, m := range []struct{ name, old, new string }{
		{"unknown upstream field", "  pool: gpt-4o\n", "  pool: gpt-4o\n  temprature: 0.2\n"},
		{"unknown top-level field", "feature: draft_email\n", "feature: draft_email\nfeatures: x\n"},
		{"bad api", "  route: [chat.completions, responses]\n", "  route: [chat.completions, responses]\n  api: soap\n"},
		{"bad route in list", "  route: [chat.completions, responses]\n", "  route: [chat.completions, images]\n"},
		{"bad mode", "  mode: prepend\n", "  mode: inject\n"},
		{"priority not integer", "feature: draft_email\n", "feature: draft_email\npriority: 1.5\n"},
		{"default not boolean", "feature: draft_email\n", "feature: draft_email\ndefault: \"true\"\n"},
		{"bad name", "name: draft-email\n", "name: Draft Email\n"},
		{"bad feature", "feature: draft_email\n", "feature: Draft-Email\n"},
		{"var not string", "  tone: warm, clear and professional\n", "  tone: 3\n"},
		{"bad var name", "  tone: warm, clear and professional\n", "  tone: warm\n  bad-name: x\n"},
		{"disabled star", "  disabled: [billing]\n", "  disabled: [\"*\"]\n"},
		{"section scalar", "budgets:\n  completion_tokens: 900\n", "budgets: 900\n"},
		{"alias with star", "  aliases: [copilot-draft-email]\n", "  aliases: [copilot-*]\n"},
		{"empty team", "  enabled: [support, escalations]\n", "  enabled: [support, \"\"]\n"},
		{"missing name", "name: draft-email\n", ""},
	} {
		src := strings.Replace(string(base), m.old, m.new, 1)
		if src == string(base) {
			t.Fatalf("%s: mutation did not apply", m.name)
		}
		if errs := schemaValidate(root, root, yamlToJSON(t, []byte(src)), "policy"); len(errs) == 0 {
			t.Errorf("%s: schema accepts it", m.name)
		}
		if _, err := parseOne("m.yaml", src); err == nil {
			t.Errorf("%s: loader accepts it", m.name)
		}
	}
}
