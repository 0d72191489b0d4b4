package redis

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/groundgate/groundgate/budgets"
)

// FuzzUnmarshalCaddyfile: any token stream is either refused with an error
// or gives a store that validates and survives a JSON round trip; never a
// panic. Seeds are in testdata/fuzz/FuzzUnmarshalCaddyfile.
func FuzzUnmarshalCaddyfile(f *testing.F) {
	f.Add("redis {\n address 127.0.0.1:6379\n timeout 50ms\n}")
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

var fuzzWindows = []budgets.Window{budgets.Minute, budgets.Day, budgets.Month}

// FuzzBucketKey: two counters share a Redis key only if they are the same
// limit key, window and bucket, whatever the limit keys contain.
func FuzzBucketKey(f *testing.F) {
	f.Add("a:minute:5", uint8(1), int64(100), "a", uint8(0), int64(5))
	f.Fuzz(func(t *testing.T, k1 string, w1 uint8, t1 int64, k2 string, w2 uint8, t2 int64) {
		l1 := budgets.Limit{Key: k1, Window: fuzzWindows[w1%3]}
		l2 := budgets.Limit{Key: k2, Window: fuzzWindows[w2%3]}
		s1, s2 := time.Unix(t1%(1<<40), 0), time.Unix(t2%(1<<40), 0)
		a, b := bucketKey("gg:", &l1, s1), bucketKey("gg:", &l2, s2)
		same := k1 == k2 && l1.Window == l2.Window && s1.Unix() == s2.Unix()
		if (a == b) != same {
			t.Fatalf("keys %q and %q for (%q %s %d) and (%q %s %d)", a, b, k1, l1.Window, s1.Unix(), k2, l2.Window, s2.Unix())
		}
	})
}
