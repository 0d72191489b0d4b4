package dataverse

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParsePage: any bytes are either refused with an error or give rows
// whose values are the texts the JSON held; never a panic. Seeds are in
// testdata/fuzz/FuzzParsePage.
func FuzzParsePage(f *testing.F) {
	f.Add([]byte(`{"@odata.context":"x","value":[{"@odata.etag":"W/\"1\"","name":"A","statecode":0,"statecode@OData.Community.Display.V1.FormattedValue":"Active"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rows, next, err := parsePage(data)
		if err != nil {
			if rows != nil || next != "" {
				t.Fatal("rows with an error")
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		for _, r := range rows {
			for k := range r {
				if k == "" || strings.HasPrefix(k, "@") {
					t.Fatalf("kept key %q", k)
				}
			}
		}
	})
}

// FuzzParseSearchResponse: the doubly encoded search answer never panics,
// and whatever it accepts was JSON at both levels.
func FuzzParseSearchResponse(f *testing.F) {
	f.Add([]byte(`{"response":"{\"Error\":null,\"Value\":[{\"Id\":\"1\",\"EntityName\":\"knowledgearticle\",\"Attributes\":{\"title\":\"T\"},\"Highlights\":{\"title\":[\"{crmhit}T{/crmhit}\"]},\"Score\":1.5}],\"Count\":1}"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		items, err := parseSearchResponse(data)
		if err != nil {
			if items != nil {
				t.Fatal("items with an error")
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		for _, it := range items {
			if it.Attrs == nil {
				t.Fatal("nil attributes")
			}
			_ = queryTerms("q", it.Highlights)
		}
	})
}

// FuzzLiteral: whatever a key value holds, the filter built from it is
// one comparison whose literal is exactly the value.
func FuzzLiteral(f *testing.F) {
	for _, s := range []string{"CAS-01234-ABCDEF", "x' or 1 eq 1 or 'a'='a", "''", "O'Brien", "a)b(c", "é'\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		lit, ok := literal(kindText, v)
		if !ok {
			if v != "" && len(v) <= maxValueLen && utf8.ValidString(v) && !hasControl(v) {
				t.Fatalf("refused %q", v)
			}
			return
		}
		filter := anyOf([]clause{{prop: "ticketnumber", lit: lit}, {prop: "title", lit: lit}})
		e, err := parseFilter(filter)
		if err != nil {
			t.Fatalf("%q: %q does not parse: %v", v, filter, err)
		}
		got := e.comparisons()
		if len(got) != 2 || got[0] != (cmp{"ticketnumber", v}) || got[1] != (cmp{"title", v}) {
			t.Fatalf("%q: %q parses to %+v", v, filter, got)
		}
	})
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r >= 0x7f && r < 0xa0 {
			return true
		}
	}
	return false
}
