package localindex

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/groundgate/groundgate/grounding"
	"github.com/groundgate/groundgate/policies"
)

var testNames = []string{
	"A AND B GUEST HOUSE", "ACORN GUEST HOUSE", "ARBURY LODGE GUEST HOUSE", "ALEXANDER BED AND BREAKFAST",
	"ASHLEY HOTEL", "AVALON HOTEL", "GONVILLE HOTEL", "CITY CENTRE NORTH B AND B", "THE GOLDEN CURRY", "THE GOLDEN WOK",
	"MAHARAJAH TANDOORI RESTAURANT", "GRAFTON HOTEL RESTAURANT", "CITY STOP RESTAURANT", "ASK RESTAURANT",
}

func testTable() *entityTable {
	return buildEntities(testNames, func(string, []int32) bool { return true }, func(w string) bool {
		return w == "north" || w == "golden" || w == "house"
	})
}

func names(t *entityTable, text string) []string {
	var out []string
	for _, m := range t.find(text, 0, 1, nil, &scratch{}) {
		out = append(out, t.names[m.entity])
	}
	slices.Sort(out)
	return out
}

func TestEntityMentions(t *testing.T) {
	tab := testTable()
	for text, want := range map[string][]string{
		"I'd like the Ashley Hotel please":                 {"ASHLEY HOTEL"},
		"what about ashley?":                               {"ASHLEY HOTEL"},                  // a distinctive word alone
		"How about the Ashly?":                             {"ASHLEY HOTEL"},                  // one letter missing
		"Maharajah Tandoori, is it fun?":                   {"MAHARAJAH TANDOORI RESTAURANT"}, // shared word left out
		"the Maharaja Tandori":                             {"MAHARAJAH TANDOORI RESTAURANT"}, // typos in two words
		"Is the A and B Guesthouse clean?":                 {"A AND B GUEST HOUSE"},           // compound written as one word
		"Does A and B have parking?":                       {"A AND B GUEST HOUSE"},           // trailing shared words left out
		"I want a place on the north side of town":         nil,                               // a common word of a long name needs its capital
		"City Centre North B and B, please":                {"CITY CENTRE NORTH B AND B"},
		"rooms at the Acorn or Avalon?":                    {"ACORN GUEST HOUSE", "AVALON HOTEL"},
		"The Golden Wok":                                   {"THE GOLDEN WOK"}, // the golden is the start of two names: no trimmed form
		"Rosa's, Alexander Bed & Breakfast":                {"ALEXANDER BED AND BREAKFAST"},
		"I need a hotel with a guest house feel and a bed": nil,
	} {
		if got := names(tab, text); !slices.Equal(got, want) {
			t.Errorf("%q: %v, want %v", text, got, want)
		}
	}
}

// placesIndex is the places test corpus.
func placesIndex(t *testing.T) *LocalIndex {
	return provision(t, placesConfig("testdata/places/knowledge.json", t.TempDir()))
}

func conversation(msgs ...string) grounding.Query {
	var conv []grounding.Turn
	for i, m := range msgs {
		role := "user"
		if i%2 == 1 {
			role = "assistant"
		}
		conv = append(conv, grounding.Turn{Role: role, Text: m})
	}
	return grounding.BuildQuery(conv, (*policies.ArticleQuery)(nil).WithDefaults())
}

func TestSearchQueryEntities(t *testing.T) {
	li := placesIndex(t)
	ctx := context.Background()
	q := conversation("I'm looking for a hotel called Avalon.", "The Avalon is in the north.", "Is the room spacious?")
	hits, err := li.SearchQuery(ctx, q, 10, grounding.Filter{PerArticle: 1})
	if err != nil {
		t.Fatal(err)
	}
	// Boost: the Avalon's documents first, its review of a spacious
	// room on top; other spacious rooms after them.
	if len(hits) < 2 || hits[0].Number != "hotel.1.reviews.0" {
		t.Fatalf("boost: %v", numbers(hits))
	}
	last := slices.IndexFunc(hits, func(h grounding.Hit) bool { return h.Entity != "AVALON" })
	if last < 0 || slices.ContainsFunc(hits[last:], func(h grounding.Hit) bool { return h.Entity == "AVALON" }) {
		t.Fatalf("boost keeps other entities: %v", numbers(hits))
	}
	// Filter: only the Avalon's documents.
	q.Entities = policies.ModeFilter
	hits, _ = li.SearchQuery(ctx, q, 5, grounding.Filter{PerArticle: 1})
	for _, h := range hits {
		if h.Entity != "AVALON" {
			t.Fatalf("filter: %v", numbers(hits))
		}
	}
	// The newest naming wins: Avalon, then the Acorn (misspelt).
	q = conversation("Tell me about the Avalon.", "It is a hotel.", "And the Acron Guest House, is the room clean?")
	q.Entities = policies.ModeFilter
	hits, _ = li.SearchQuery(ctx, q, 3, grounding.Filter{PerArticle: 1})
	if len(hits) == 0 || hits[0].Number != "hotel.2.reviews.0" {
		t.Fatalf("newest: %v", numbers(hits))
	}
	for _, h := range hits {
		if h.Entity != "ACORN GUEST HOUSE" {
			t.Fatalf("newest: %v", numbers(hits))
		}
	}
	// Off: entity names are only words.
	q.Entities = policies.ModeOff
	hits, _ = li.SearchQuery(ctx, q, 10, grounding.Filter{})
	if !slices.ContainsFunc(hits, func(h grounding.Hit) bool { return h.Entity == "AVALON" }) {
		t.Fatalf("off: %v", numbers(hits))
	}
}

func TestSearchQueryMatch(t *testing.T) {
	li := placesIndex(t)
	ctx := context.Background()
	q := grounding.Query{Text: "breakfast", Entities: policies.ModeOff,
		Match: []grounding.FieldMatch{{Field: "domain", Values: []string{"Restaurant"}, Filter: true}}}
	hits, _ := li.SearchQuery(ctx, q, 10, grounding.Filter{})
	if len(hits) == 0 {
		t.Fatal("no hits")
	}
	for _, h := range hits {
		if h.Metadata["domain"] != "restaurant" {
			t.Fatalf("filter domain: %v", numbers(hits))
		}
	}
	// Boost the FAQs; an entity named by a record (a match on the
	// entity field, compared by its words).
	q = grounding.Query{Text: "breakfast", Entities: policies.ModeOff, Match: []grounding.FieldMatch{
		{Field: "type", Values: []string{"faq"}}, {Field: "entity", Values: []string{"City Centre North B&B"}, Filter: true}}}
	hits, _ = li.SearchQuery(ctx, q, 10, grounding.Filter{})
	if len(hits) != 2 || hits[0].Number != "hotel.3.faqs.0" || hits[1].Number != "hotel.3.reviews.0" {
		t.Fatalf("boost type, filter entity: %v", numbers(hits))
	}
	// A filter nothing matches finds nothing.
	q.Match = []grounding.FieldMatch{{Field: "product", Values: []string{"x"}, Filter: true}}
	if hits, _ := li.SearchQuery(ctx, q, 10, grounding.Filter{}); len(hits) != 0 {
		t.Fatalf("unknown field: %v", numbers(hits))
	}
}

// The term vectors learn that words used in the same contexts are near.
func TestSemanticNeighbors(t *testing.T) {
	var texts [][]string
	for i := 0; i < semMinDocs/8+1; i++ {
		for _, s := range []string{
			"the room was spacious and bright with a view", "the room was large and bright with a view",
			"our room felt spacious and airy", "our room felt large and airy",
			"the curry tasted spicy and hot", "the curry tasted delicious and hot",
			"the staff were friendly and quick", "the waiters were friendly and quick",
		} {
			texts = append(texts, analyze(s+" "+strings.Repeat("x", i%5+2), nil))
		}
	}
	df := map[string]int{}
	for _, ws := range texts {
		seen := map[string]bool{}
		for _, w := range ws {
			if !seen[w] {
				seen[w] = true
				df[w]++
			}
		}
	}
	s := buildSemantic(texts, func(w string) int { return df[w] })
	near := s.neighbors(stem("large"))
	if len(near) == 0 || near[0].term != stem("spacious") {
		t.Fatalf("large: %+v", near)
	}
	for _, n := range near {
		if n.term == stem("delicious") || n.term == stem("spicy") {
			t.Fatalf("large is near %s: %+v", n.term, near)
		}
	}
	terms := s.expand([]wterm{{term: stem("large"), w: 1}})
	if len(terms) < 2 || terms[1].term != stem("spacious") || terms[1].w >= 1 || terms[1].w <= 0 {
		t.Fatalf("expand: %+v", terms)
	}
	// Texts: a large room is nearer a spacious one than a spicy curry.
	vec := func(text string) []float32 {
		var ts []wterm
		for _, w := range analyze(text, nil) {
			ts = append(ts, wterm{term: w, w: 1})
		}
		return s.textVec(ts, func(string) float32 { return 1 })
	}
	cos := func(a, b []float32) (d float32) {
		for i := range a {
			d += a[i] * b[i]
		}
		return d
	}
	q := vec("a large room")
	if near, far := cos(q, vec("spacious and airy")), cos(q, vec("spicy and delicious")); near <= far {
		t.Fatalf("cos to spacious %v, to spicy %v", near, far)
	}
	if (*semantic)(nil).textVec(terms, nil) != nil || s.textVec([]wterm{{term: "zzz", w: 1}}, nil) != nil {
		t.Fatal("no vector expected")
	}
	if (*semantic)(nil).expand(terms[:1]) == nil || s.neighbors("unknown") != nil {
		t.Fatal("nil model or unknown term")
	}
}

func BenchmarkSearchQuery(b *testing.B) {
	li := provision(b, `{"dir": "`+b.TempDir()+`"}`)
	qs := loadQuestions(b)
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		q := conversation("My Vista TV is stuck.", "Which model?", qs[i%len(qs)].Q)
		if _, err := li.SearchQuery(ctx, q, 5, grounding.Filter{PerArticle: 2}); err != nil {
			b.Fatal(err)
		}
	}
}

// best keeps exactly what a full sort would put first.
func TestBest(t *testing.T) {
	for n := 0; n < 300; n += 7 {
		var all []scored
		for i := 0; i < n; i++ {
			all = append(all, scored{doc: int32(i), score: float32((i * 7919) % 97)})
		}
		want := slices.Clone(all)
		slices.SortFunc(want, byScore)
		for _, m := range []int{1, 5, 50, 400} {
			got := best(slices.Clone(all), m)
			if !slices.Equal(got, want[:min(m, n)]) {
				t.Fatalf("n %d m %d: %v, want %v", n, m, got, want[:min(m, n)])
			}
		}
	}
}
