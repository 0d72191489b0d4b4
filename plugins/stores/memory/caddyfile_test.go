package memory

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Store
	}{
		{"memory", Store{}},
		{"memory budgets", Store{Name: "budgets"}},
		{"memory {\n name shared\n sweep_interval 10s\n}", Store{Name: "shared", SweepInterval: caddy.Duration(10 * time.Second)}},
		{"memory first {\n name second\n}", Store{Name: "second"}},
	} {
		var s Store
		if err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.in)); err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(s, tc.want) {
			t.Errorf("%q: got %+v, want %+v", tc.in, s, tc.want)
		}
	}
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	for in, want := range map[string]string{
		"memory {\n bogus 1\n}":             `unrecognized memory store subdirective "bogus"`,
		"memory a b":                        "wrong argument count",
		"memory {\n name\n}":                "wrong argument count",
		"memory {\n name a b\n}":            "wrong argument count",
		"memory {\n sweep_interval\n}":      "wrong argument count",
		"memory {\n sweep_interval soon\n}": `sweep_interval: invalid duration "soon"`,
		"memory {\n sweep_interval -1s\n}":  "must be positive",
		"memory {\n sweep_interval 0s\n}":   "must be positive",
	} {
		var s Store
		err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want it to contain %q", in, err, want)
		}
	}
}

// TestUnmarshalAsGuest parses the block the way the gateway's `store`
// subdirective hands it over: by module ID through the Caddy registry.
func TestUnmarshalAsGuest(t *testing.T) {
	d := caddyfile.NewTestDispenser("store memory shared {\n sweep_interval 1m\n}")
	d.Next() // store
	if !d.NextArg() {
		t.Fatal("no module name")
	}
	unm, err := caddyfile.UnmarshalModule(d, "llm_gateway.stores."+d.Val())
	if err != nil {
		t.Fatal(err)
	}
	s := unm.(*Store)
	if s.Name != "shared" || time.Duration(s.SweepInterval) != time.Minute {
		t.Errorf("got %+v", s)
	}
	js, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if string(js) != `{"name":"shared","sweep_interval":60000000000}` {
		t.Errorf("JSON %s", js)
	}
}
