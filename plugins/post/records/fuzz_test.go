package records

import (
	"regexp"
	"strings"
	"testing"
)

// mentionRe is an independent scanner for the built-in patterns of all
// three entities, matched as whole words the way grounding's message keys
// are.
var mentionRe = regexp.MustCompile(`(?i)\b(?:(CAS-[0-9]{5}-[A-Z0-9]{6})|(ACC-[0-9]{6})|(KA-[0-9]{5}))\b`)

var fuzzEntities = []string{"incident", "account", "knowledgearticle"}

// reference rewrites s with mentionRe, resolving like fakeSource.
func reference(s string) (string, string) {
	var b strings.Builder
	seen := map[string]bool{}
	var unresolved []string
	prev := 0
	for _, m := range mentionRe.FindAllStringSubmatchIndex(s, -1) {
		b.WriteString(s[prev:m[0]])
		prev = m[1]
		ent := ""
		for g := 1; g <= 3; g++ {
			if m[2*g] >= 0 {
				ent = fuzzEntities[g-1]
			}
		}
		v := strings.ToUpper(s[m[0]:m[1]])
		key := ent + "\x00" + v
		if !seen[key] {
			if len(seen) >= MaxLookups {
				b.WriteString(s[m[0]:m[1]])
				continue
			}
			seen[key] = true
			if strings.HasSuffix(v, "Z") {
				unresolved = append(unresolved, v)
			}
		}
		if strings.HasSuffix(v, "Z") {
			b.WriteString(s[m[0]:m[1]])
			continue
		}
		b.WriteString("<" + ent + ":" + v + "|id-" + strings.ToLower(v) + ">")
	}
	b.WriteString(s[prev:])
	ctx := ""
	if len(unresolved) > 0 {
		ctx = `{"unresolved_records":["` + strings.Join(unresolved, `","`) + `"]}`
	}
	return b.String(), ctx
}

// FuzzScanner checks the mention scanner against a regular expression,
// non-streamed and split at two points.
func FuzzScanner(f *testing.F) {
	f.Add("CAS-01001-K7M2Q9", uint16(3), uint16(9))
	f.Add("see ACC-100231, KA-01001 and cas-01001-k7m2qz.", uint16(5), uint16(20))
	r, err := New(Records{Unknown: UnknownFlag, Formats: map[string]string{
		"incident": "<{entity}:{number}|{id}>", "account": "<{entity}:{number}|{id}>", "knowledgearticle": "<{entity}:{number}|{id}>",
	}}, new(fakeSource))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string, a, b uint16) {
		want, wantCtx := reference(s)
		got, ctx := rewrite(r, s)
		if got != want || ctx != wantCtx {
			t.Fatalf("rewrite(%q):\n got %q %s\nwant %q %s", s, got, ctx, want, wantCtx)
		}
		i, j := int(a)%(len(s)+1), int(b)%(len(s)+1)
		if i > j {
			i, j = j, i
		}
		if got, ctx := stream(t, r, s[:i], s[i:j], s[j:]); got != want || ctx != wantCtx {
			t.Fatalf("stream(%q | %q | %q):\n got %q %s\nwant %q %s", s[:i], s[i:j], s[j:], got, ctx, want, wantCtx)
		}
	})
}
