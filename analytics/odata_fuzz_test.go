package analytics

import (
	"net/url"
	"strings"
	"testing"

	"github.com/groundgate/groundgate/analytics/dvfake"
)

// Any value the console filters by becomes an OData literal that means
// exactly that value, once the query string is decoded: no quote or
// operator in it escapes the literal.
func FuzzLiteral(f *testing.F) {
	for _, s := range []string{"support", "it's", "' or 1 eq 1 or gg_team eq '", "a+b c&d=e%20", "''", "é ü 名前"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q := query([][2]string{{"$filter", "gg_team eq " + lit(s) + " and gg_status ge 200"}})
		v, err := url.ParseQuery(q)
		if err != nil {
			t.Fatalf("%q: %v", q, err)
		}
		e, err := dvfake.ParseFilter(v.Get("$filter"))
		if err != nil {
			t.Fatalf("%q: %v", v.Get("$filter"), err)
		}
		row := map[string]any{"gg_team": s, "gg_status": float64(200)}
		if !e.Eval(row) {
			t.Fatalf("%q does not match itself", s)
		}
		row["gg_team"] = s + "x"
		if e.Eval(row) {
			t.Fatalf("%q matches %q", s, s+"x")
		}
		if strings.Count(q, "&") != 0 {
			t.Fatalf("unescaped & in %q", q)
		}
	})
}
