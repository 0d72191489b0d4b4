package simulator

import (
	"testing"

	"github.com/tidwall/gjson"
)

// The index answers every path as gjson does on the object itself,
// duplicates included (the first wins).
func FuzzFieldsGet(f *testing.F) {
	f.Add(`{"model":"m","messages":[{"role":"user"}],"stream":true,"stream_options":{"include_usage":true}}`, "stream_options.include_usage")
	f.Add(`{"n":1,"n":2,"a":{"b":{"c":3}}}`, "n")
	f.Add(`{"a":{"b":{"c":3}},"a.b":4}`, "a.b.c")
	f.Add(`{"tools":[{"function":{"name":"f"}}]}`, "tools.0.function.name")
	f.Add(`{"x":[1,2,3]}`, "x.#")
	f.Add(`{"k\"q":1}`, `k\"q`)
	f.Fuzz(func(t *testing.T, body, path string) {
		if !gjson.Valid(body) {
			return
		}
		root := gjson.Parse(body)
		if !root.IsObject() {
			return
		}
		got, want := indexFields(root).Get(path), root.Get(path)
		if got.Raw != want.Raw || got.Type != want.Type || got.Exists() != want.Exists() {
			t.Fatalf("Get(%q) on %s: index %q (%v), gjson %q (%v)", path, body, got.Raw, got.Type, want.Raw, want.Type)
		}
	})
}
