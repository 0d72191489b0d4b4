package post

import (
	"reflect"
	"strings"
	"testing"
)

var testNames = []string{"number", "url", "id"}

func TestCompileFormat(t *testing.T) {
	f, err := CompileFormat("[{number}]({url}) {{x}}", testNames...)
	want := Format{{Lit: "["}, {Field: 1}, {Lit: "]("}, {Field: 2}, {Lit: ") {x}"}}
	if err != nil || !reflect.DeepEqual(f, want) {
		t.Fatalf("%#v %v", f, err)
	}
	if !f.Uses(2) || f.Uses(3) {
		t.Error("Uses")
	}
	for s, msg := range map[string]string{
		"{nope}": "unknown placeholder {nope} (want {number}, {url} or {id}; write {{ for a literal brace)",
		"[{url":  "unclosed '{' at byte 1",
		"a}b":    "lone '}' at byte 1",
	} {
		if _, err := CompileFormat(s, testNames...); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: %v, want %q", s, err, msg)
		}
	}
}

// FuzzCompileFormat checks that a compiled format written back (braces
// doubled, placeholders by name) compiles to the same parts.
func FuzzCompileFormat(f *testing.F) {
	for _, s := range []string{"[{number}]({url})", "{{{id}}}", "", "}", "{", "{{x}} {url}{id}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		parts, err := CompileFormat(s, testNames...)
		if err != nil {
			return
		}
		var b strings.Builder
		for _, p := range parts {
			if p.Field == 0 {
				b.WriteString(strings.NewReplacer("{", "{{", "}", "}}").Replace(p.Lit))
			} else {
				b.WriteString("{" + testNames[p.Field-1] + "}")
			}
		}
		again, err := CompileFormat(b.String(), testNames...)
		if err != nil || !reflect.DeepEqual(again, parts) {
			t.Fatalf("%q → %q → %#v %v, want %#v", s, b.String(), again, err, parts)
		}
	})
}
