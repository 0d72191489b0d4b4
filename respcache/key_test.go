package respcache

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func digest(t testing.TB, body string) string {
	h := sha256.New()
	if !Digest(h, []byte(body)) {
		t.Fatalf("Digest refused %q", body)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestDigestCanonical(t *testing.T) {
	same := [][]string{
		{`{"a":1,"b":[1,2,{"x":true,"y":null}]}`, ` { "b" : [ 1 , 2 , { "y" : null , "x" : true } ] , "a" : 1 } `},
		{`{"messages":[{"role":"user","content":"hi"}],"model":"gpt-4o"}`, `{"model":"gpt-4o","messages":[{"content":"hi","role":"user"}]}`},
		{`{}`, "{\n}"},
	}
	for _, s := range same {
		if digest(t, s[0]) != digest(t, s[1]) {
			t.Errorf("differ: %s / %s", s[0], s[1])
		}
	}
	different := []string{
		`{"a":1}`, `{"a":2}`, `{"b":1}`, `{"a":"1"}`, `{"a":[1]}`, `[1,2]`, `[2,1]`, `[[1],2]`, `[1,[2]]`,
		`{"a":{"b":1}}`, `{"a":{"b":1},"c":{}}`, `{"a":{},"c":{"b":1}}`, `["a","b"]`, `["a,b"]`, `"a"`, `{"a":[]}`, `{"a":{}}`,
		`{"a":"x","b":"y"}`, `{"a":"y","b":"x"}`,
	}
	seen := map[string]string{}
	for _, b := range different {
		d := digest(t, b)
		if prev, ok := seen[d]; ok {
			t.Errorf("%s and %s share a digest", prev, b)
		}
		seen[d] = b
	}
}

func TestDigestRefusesBrokenJSON(t *testing.T) {
	for _, b := range []string{``, `{`, `{"a"}`, `[1`, `"abc`, `{"a":1 "b":2}`, strings.Repeat("[", maxDepth+2)} {
		if Digest(sha256.New(), []byte(b)) {
			t.Errorf("accepted %q", b)
		}
	}
}

// nested is the memory-bomb shape: arrays nested depth deep (a 64 KB body
// nests 32,768 levels; the request checker refuses over 400 first, so the
// key sees at most 400).
func nested(depth int) []byte {
	return []byte(`{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"x":` +
		strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}`)
}

// The key costs a bounded number of allocations whatever the depth and
// size: memory grows with the depth of objects only, never with the
// square of anything.
func TestDigestAllocations(t *testing.T) {
	small, big := nested(10), nested(400)
	wide := []byte(`{"messages":[` + strings.Repeat(`{"role":"user","content":"hello there"},`, 5000) + `{"role":"user","content":"x"}]}`)
	for name, body := range map[string][]byte{"shallow": small, "deep": big, "wide": wide} {
		if !json.Valid(body) {
			t.Fatal("test body is not JSON")
		}
		h := sha256.New()
		allocs := testing.AllocsPerRun(20, func() {
			h.Reset()
			Digest(h, body)
		})
		if allocs > 16 {
			t.Errorf("%s (%d bytes): %.0f allocations per key", name, len(body), allocs)
		}
	}
}

func BenchmarkDigestNested400(b *testing.B) {
	body := nested(400)
	h := sha256.New()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		h.Reset()
		Digest(h, body)
	}
}

func BenchmarkDigestChat(b *testing.B) {
	body := []byte(`{"model":"gpt-4o","stream":false,"messages":[{"role":"system","content":"` + strings.Repeat("You are a helpful support agent. ", 40) + `"},{"role":"user","content":"My TV won't turn on after the firmware update, what can I do?"}],"max_tokens":300}`)
	h := sha256.New()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		h.Reset()
		Digest(h, body)
	}
}

func FuzzDigest(f *testing.F) {
	for _, s := range []string{`{"a":1,"b":[1,2,{"x":true}]}`, `[[[]]]`, `"a\"b"`, `{"k":"\u0041"}`, `-1.5e3`, `{"a":{"b":{"c":null}}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ok := Digest(sha256.New(), body)
		if !json.Valid(body) || strings.Count(string(body), "[")+strings.Count(string(body), "{") > maxDepth {
			return // no panic is all that is asked of broken or very deep input
		}
		if !ok {
			t.Fatalf("valid JSON refused: %q", body)
		}
		// Re-encoded by encoding/json (members sorted, whitespace gone,
		// strings and numbers as they were), the digest is the same
		// whenever the re-encoding keeps every token's bytes.
		var v any
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.UseNumber()
		if dec.Decode(&v) != nil {
			return
		}
		again, err := json.Marshal(v)
		if err != nil || !sameTokens(body, again) {
			return
		}
		if digest(t, string(body)) != digest(t, string(again)) {
			t.Fatalf("%q and its re-encoding %q differ", body, again)
		}
	})
}

// sameTokens reports whether b is a re-ordering of a's members with
// every token's bytes kept: no whitespace, no escapes, valid UTF-8 that
// encoding/json leaves alone, no duplicate dropped (same length).
func sameTokens(a, b []byte) bool {
	return len(a) == len(b) && utf8.Valid(a) && !strings.Contains(string(a), `\`) &&
		!strings.ContainsAny(string(a), "<>&\u2028\u2029") && len(strings.Fields(string(a))) == 1
}
