package redis

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
		{"redis", Store{}},
		{"redis 10.0.0.5:6380", Store{Address: "10.0.0.5:6380"}},
		{`redis {
			address 127.0.0.1:6379
			password {env.REDIS_PASSWORD}
			db 0
			prefix gg:
			timeout 50ms
		}`, Store{Address: "127.0.0.1:6379", Password: "{env.REDIS_PASSWORD}", Prefix: "gg:", Timeout: caddy.Duration(50 * time.Millisecond)}},
		{`redis {env.REDIS_ADDR} {
			username gateway
			password "{env.REDIS_PASSWORD}"
			db 3
			dial_timeout 2s
			pool_size 32
			tls
		}`, Store{Address: "{env.REDIS_ADDR}", Username: "gateway", Password: "{env.REDIS_PASSWORD}", DB: 3,
			DialTimeout: caddy.Duration(2 * time.Second), PoolSize: 32, TLS: true}},
		{`redis {
			mode cluster
			addresses 10.0.0.1:6379 10.0.0.2:6379
			addresses 10.0.0.3:6379
		}`, Store{Mode: "cluster", Addresses: []string{"10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"}}},
		{`redis {
			master_name gg-primary
			addresses 10.0.0.1:26379 10.0.0.2:26379
			sentinel_password {env.SENTINEL_PASSWORD}
		}`, Store{MasterName: "gg-primary", Addresses: []string{"10.0.0.1:26379", "10.0.0.2:26379"}, SentinelPassword: "{env.SENTINEL_PASSWORD}"}},
	} {
		var s Store
		if err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.in)); err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(s, tc.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", tc.in, s, tc.want)
		}
	}
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	for in, want := range map[string]string{
		"redis {\n cluster on\n}":       `unrecognized redis store subdirective "cluster"`,
		"redis {\n passwd x\n}":         `unrecognized redis store subdirective "passwd"`,
		"redis a b":                     "wrong argument count",
		"redis {\n mode ring\n}":        `mode: must be standalone, cluster or sentinel, not "ring"`,
		"redis {\n addresses\n}":        "wrong argument count",
		"redis {\n master_name\n}":      "wrong argument count",
		"redis {\n address\n}":          "wrong argument count",
		"redis {\n password a b\n}":     "wrong argument count",
		"redis {\n db\n}":               "wrong argument count",
		"redis {\n db -1\n}":            `db: invalid value "-1"`,
		"redis {\n db zero\n}":          `db: invalid value "zero"`,
		"redis {\n pool_size 0\n}":      `pool_size: invalid value "0"`,
		"redis {\n timeout soon\n}":     `timeout: invalid duration "soon"`,
		"redis {\n timeout 0s\n}":       `timeout: invalid duration "0s"`,
		"redis {\n dial_timeout -1s\n}": `dial_timeout: invalid duration "-1s"`,
		"redis {\n tls yes\n}":          "wrong argument count",
		"redis {\n prefix\n}":           "wrong argument count",
	} {
		var s Store
		err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want it to contain %q", in, err, want)
		}
	}
}

// TestUnmarshalAsGuest parses the block the way the gateway's `store`
// subdirective hands it over, and checks the JSON it becomes.
func TestUnmarshalAsGuest(t *testing.T) {
	d := caddyfile.NewTestDispenser("store redis {\n address 127.0.0.1:6379\n password {env.REDIS_PASSWORD}\n db 0\n prefix gg:\n timeout 50ms\n}")
	d.Next() // store
	if !d.NextArg() {
		t.Fatal("no module name")
	}
	unm, err := caddyfile.UnmarshalModule(d, "llm_gateway.stores."+d.Val())
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(unm)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"address":"127.0.0.1:6379","password":"{env.REDIS_PASSWORD}","prefix":"gg:","timeout":50000000}`
	if string(js) != want {
		t.Errorf("JSON %s\nwant %s", js, want)
	}
}
