package azuresearch

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/groundgate/groundgate/grounding"
)

func TestSearchQueryFiltersAndBoosts(t *testing.T) {
	f := newFakeSearch(t)
	s := provisionAS(t, f, func(s *AzureSearch) {
		s.Fields = Fields{Entity: "hotel_name", Metadata: map[string]string{"domain": "domain"}, Internal: "isinternal"}
		s.Boost = &Boost{ScoringProfile: "places", Parameters: map[string]string{"entity": "places"}}
	})
	f.answer = func(w http.ResponseWriter, _ map[string]any, _ int) {
		io.WriteString(w, `{"value":[{"@search.score":2.5,"id":"h1","title":"Avalon","content":"Spacious rooms."}]}`)
	}
	q := grounding.Query{Text: "is the room big? the Avalon", Match: []grounding.FieldMatch{
		{Field: "domain", Values: []string{"hotel", "b&b's"}, Filter: true},
		{Field: "entity", Values: []string{"Avalon", "Acorn, Guest House"}},
		{Field: "product", Values: []string{"Gold Plan"}},
	}}
	hits, err := s.SearchQuery(context.Background(), q, 3, grounding.Filter{ExcludeInternal: true})
	if err != nil || len(hits) != 1 || hits[0].ArticleID != "h1" {
		t.Fatalf("%+v %v", hits, err)
	}
	searches, _ := f.calls()
	want := `{"search":"\"Gold Plan\" is the room big? the Avalon","queryType":"simple","filter":"isinternal ne true and (domain eq 'hotel' or domain eq 'b\u0026b''s')",` +
		`"scoringProfile":"places","scoringParameters":["places-Avalon"],"select":"id, title, content, isinternal","top":3}`
	if searches[0].Body != want {
		t.Errorf("body\n got %s\nwant %s", searches[0].Body, want)
	}

	// A filter on an unmapped field is an error; nothing is sent.
	q.Match = []grounding.FieldMatch{{Field: "category", Values: []string{"x"}, Filter: true}}
	if _, err := s.SearchQuery(context.Background(), q, 3, grounding.Filter{}); err == nil || !strings.Contains(err.Error(), `filters on "category"`) {
		t.Fatalf("err %v", err)
	}
	// Without matches the query is a plain search of its text.
	if _, err := s.SearchQuery(context.Background(), grounding.Query{Text: "clouds"}, 3, grounding.Filter{}); err != nil {
		t.Fatal(err)
	}
	searches, _ = f.calls()
	if len(searches) != 2 || !strings.HasPrefix(searches[1].Body, `{"search":"clouds","queryType":"simple","select"`) {
		t.Fatalf("searches %+v", searches)
	}
}

func TestBoostConfig(t *testing.T) {
	s := new(AzureSearch)
	err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`azure_search https://x.search.windows.net kb {
		api_key {env.K}
		fields {
			entity hotel_name
			metadata domain domain_field
		}
		boost places {
			entity places
		}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.Fields.Entity != "hotel_name" || s.Fields.Metadata["domain"] != "domain_field" || s.Boost.ScoringProfile != "places" || s.Boost.Parameters["entity"] != "places" {
		t.Fatalf("%+v %+v", s.Fields, s.Boost)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	s.Boost.Parameters["entity"] = "bad name"
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "boost parameters entity") {
		t.Fatalf("err %v", err)
	}
	s.Boost = &Boost{}
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "boost needs") {
		t.Fatalf("err %v", err)
	}
	for in, msg := range map[string]string{
		"azure_search {\n fields {\n metadata a\n }\n}": "expected <policy field> <index field>",
		"azure_search {\n boost\n}":                     "expected the scoring profile's name",
		"azure_search {\n boost p {\n entity\n }\n}":    "expected <policy field> <tag parameter>",
		"azure_search {\n boost p\n boost q\n}":         "boost given twice",
	} {
		if err := new(AzureSearch).UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: %v", in, err)
		}
	}
}
