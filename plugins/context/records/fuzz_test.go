package records

import (
	"context"
	"strings"
	"testing"

	"github.com/groundgate/groundgate/grounding"
)

// storeFrom builds a store from rows of every entity and looks some keys
// up: the store must not panic on any row content (lookups pointing to
// themselves, to missing rows, odd annotations).
func storeFrom(t *testing.T, rows []row) {
	data := map[string][]row{}
	for i, r := range rows {
		e := grounding.KnownEntities[i%len(grounding.KnownEntities)]
		if r[primaryKey(e)] == "" && e != grounding.EntityKnowledgeArticle {
			r[primaryKey(e)] = "id" + string(rune('a'+i%26))
		}
		data[e] = append(data[e], r)
	}
	st, err := newStore(data, nil, nil)
	if err != nil {
		return
	}
	l := &Loaded{store: st}
	for _, r := range rows {
		for c, v := range r {
			recs, den, _ := l.Lookup(context.Background(), []grounding.RecordKey{{Entity: "incident", Field: c, Value: v}, {Entity: "contact", Field: c, Value: v}}, &grounding.Scope{Accounts: []string{v}})
			if len(recs) > 2*maxPerKey || len(den) > 2*maxPerKey {
				t.Fatalf("too many results")
			}
			break
		}
	}
	l.Articles(context.Background())
}

func FuzzParseRowsCSV(f *testing.F) {
	f.Add([]byte("incidentid,ticketnumber,title,_customerid_value,_customerid_value@Microsoft.Dynamics.CRM.lookuplogicalname\ni1,CAS-00001-AAAAAA,\"A, b\",i1,incident\n"))
	f.Add([]byte("\ufeffa,b\n\"x\"\"y\",2\n"))
	f.Add([]byte("a\n\"unterminated\n"))
	f.Add([]byte("a,a\n1,2\n"))
	f.Add([]byte(",\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rows, err := parseRowsCSV(data)
		if err != nil {
			return
		}
		if len(rows) > strings.Count(string(data), "\n")+1 {
			t.Fatalf("%d rows from %d lines", len(rows), strings.Count(string(data), "\n")+1)
		}
		for _, r := range rows {
			for k, v := range r {
				if k == "" || v == "" {
					t.Fatalf("empty column or value kept: %q=%q", k, v)
				}
			}
		}
		storeFrom(t, rows)
	})
}

func FuzzParseRowsJSON(f *testing.F) {
	f.Add([]byte(`{"@odata.context":"x","value":[{"contactid":"c1","_parentcustomerid_value":"c1","_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname":"contact"}]}`))
	f.Add([]byte(`[{"incidentid":"i1","statecode":1e400,"x":null,"y":[1],"z":{"a":true}}]`))
	f.Add([]byte(`{"annotationid":"n1","_objectid_value":"n1"}`))
	f.Add([]byte(`[1,2]`))
	f.Add([]byte(`{"value":{}}`))
	f.Add([]byte(`[] []`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rows, err := parseRowsJSON(data)
		if err != nil {
			return
		}
		for _, r := range rows {
			for k := range r {
				if strings.HasPrefix(k, "@odata.") || k == "" {
					t.Fatalf("kept column %q", k)
				}
			}
		}
		storeFrom(t, rows)
	})
}
