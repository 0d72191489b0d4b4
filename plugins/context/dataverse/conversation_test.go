package dataverse

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/groundgate/groundgate/grounding"
)

// The policy's filters become clauses of the search filter on the mapped
// columns; boosts lead the search text.
func TestSearchQueryFiltersAndBoosts(t *testing.T) {
	f := newFakeDataverse(t)
	d := provisionDV(t, f, func(d *Dataverse) {
		searchOn(d)
		d.SearchConfig.MatchColumns = map[string]string{"product": "title"}
	})
	q := grounding.Query{Text: "pair a second phone?", Match: []grounding.FieldMatch{
		{Field: "product", Values: []string{"Pair Pulse headphones with a second phone", "O'Brien"}, Filter: true},
		{Field: "entity", Values: []string{"Pulse"}},
	}}
	hits, err := d.SearchQuery(context.Background(), q, 5, grounding.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) == 0 || hits[0].ArticleID != kaPairing {
		t.Fatalf("hits %+v", hits)
	}
	for _, h := range hits {
		if h.ArticleID != kaPairing {
			t.Fatalf("the filter let %s through", h.ArticleID)
		}
	}
	reqs := f.reqs()
	var body struct{ Search, Entities string }
	json.Unmarshal(reqs[len(reqs)-1].Body, &body)
	if body.Search != "Pulse pair a second phone?" ||
		!strings.Contains(body.Entities, `statecode eq 3 and (title eq 'Pair Pulse headphones with a second phone' or title eq 'O''Brien')`) {
		t.Fatalf("search %q entities %s", body.Search, body.Entities)
	}

	// A filter value that matches nothing finds nothing.
	q.Match = []grounding.FieldMatch{{Field: "product", Values: []string{"Vista TV"}, Filter: true}}
	if hits, err := d.SearchQuery(context.Background(), q, 5, grounding.Filter{}); err != nil || len(hits) != 0 {
		t.Fatalf("%+v %v", hits, err)
	}
	// A filter on a field no column is mapped to is an error.
	q.Match = []grounding.FieldMatch{{Field: "category", Values: []string{"audio"}, Filter: true}}
	if _, err := d.SearchQuery(context.Background(), q, 5, grounding.Filter{}); err == nil || !strings.Contains(err.Error(), `filters articles on "category"`) {
		t.Fatalf("err %v", err)
	}
	// Without matches, the query text as it is (cut to 100 characters).
	q = grounding.Query{Text: strings.Repeat("pairing ", 30)}
	if _, err := d.SearchQuery(context.Background(), q, 5, grounding.Filter{}); err != nil {
		t.Fatal(err)
	}
}

func TestMatchColumnsConfig(t *testing.T) {
	d := &Dataverse{URL: "https://x.crm.dynamics.com", ClientID: "c", ClientSecret: "s", TenantID: "t",
		SearchConfig: &SearchConfig{Enabled: true, MatchColumns: map[string]string{"product": "bad column"}}}
	if err := d.Validate(); err == nil || !strings.Contains(err.Error(), "match_columns product") {
		t.Fatalf("err %v", err)
	}
}
