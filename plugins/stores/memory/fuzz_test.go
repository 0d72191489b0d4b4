package memory

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// FuzzUnmarshalCaddyfile: any token stream is either refused with an error
// or gives a store that validates and survives a JSON round trip; never a
// panic. Seeds are in testdata/fuzz/FuzzUnmarshalCaddyfile.
func FuzzUnmarshalCaddyfile(f *testing.F) {
	f.Add("memory {\n name x\n sweep_interval 5s\n}")
	f.Fuzz(func(t *testing.T, in string) {
		tokens, err := caddyfile.Tokenize([]byte(in), "Caddyfile")
		if err != nil {
			return
		}
		var s Store
		if err := s.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens)); err != nil {
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("parsed %q but Validate: %v", in, err)
		}
		js, err := json.Marshal(&s)
		if err != nil {
			t.Fatal(err)
		}
		var back Store
		if err := json.Unmarshal(js, &back); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(s, back) {
			t.Fatalf("JSON round trip of %q: %+v became %+v", in, s, back)
		}
	})
}
