package localindex

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/groundgate/groundgate/grounding"
	"github.com/groundgate/groundgate/policies"
)

// placesConfig indexes testdata/places (or a copy in dir): FAQs and
// reviews of hotels and restaurants with their place as entity.
func placesConfig(file, dir string) string {
	docs := []Documents{
		{Paths: []string{file}, Each: "*.*.faqs.*", Title: "question", Body: []string{"answer"}, Entity: "../../name",
			Metadata: map[string]string{"domain": "$1", "type": "'faq'"}},
		{Paths: []string{file}, Each: "*.*.reviews.*", Title: "../../name", Body: []string{"sentences"}, Entity: "../../name",
			Metadata: map[string]string{"domain": "$1", "type": "'review'", "traveler": "traveler_type"}},
	}
	b, _ := json.Marshal(map[string]any{"dir": dir, "documents": docs})
	return string(b)
}

func copyPlaces(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("testdata/places/knowledge.json")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "knowledge.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDocumentsMapping(t *testing.T) {
	li := provision(t, placesConfig("testdata/places/knowledge.json", t.TempDir()))
	st := li.Stats()
	if st.Articles != 13 || st.Units != 13 || st.Reindexed != 13 {
		t.Fatalf("stats %+v", st)
	}
	ix := li.shared.ix
	var faq, review *grounding.Chunk
	for i := range ix.chunks {
		switch ix.chunks[i].Number {
		case "hotel.1.faqs.0":
			faq = &ix.chunks[i]
		case "hotel.1.reviews.1":
			review = &ix.chunks[i]
		}
	}
	if faq == nil || faq.Title != "Is there free parking at Avalon?" || faq.Text != "Yes, parking is free at the Avalon." || faq.Entity != "AVALON" ||
		faq.Metadata["domain"] != "hotel" || faq.Metadata["type"] != "faq" || faq.ArticleID != "hotel.1.faqs.0" {
		t.Fatalf("faq %+v", faq)
	}
	if review == nil || review.Title != "AVALON" || review.Text != "Breakfast at Avalon was cold.\nThe street was noisy at night." ||
		review.Metadata["traveler"] != "Couples" || review.Metadata["type"] != "review" {
		t.Fatalf("review %+v", review)
	}
}

// Only the documents whose mapped content changed are indexed again.
func TestDocumentsIncremental(t *testing.T) {
	file, dir := copyPlaces(t), t.TempDir()
	cfg := placesConfig(file, dir)
	li := provision(t, cfg)
	if st := li.Stats(); st.Reindexed != 13 || !st.Saved {
		t.Fatalf("first build %+v", st)
	}
	li.Cleanup()

	b, _ := os.ReadFile(file)
	b = []byte(strings.Replace(string(b), "Free wifi is available in all rooms.", "Wifi costs 3 pounds a day.", 1))
	b = []byte(strings.Replace(string(b), `"1": {"traveler_type": "Couples", "sentences": {"0": "Our room was large and bright.", "1": "A quiet street."}}`, `"2": {"traveler_type": "Business", "sentences": {"0": "Fast wifi."}}`, 1))
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	li = provision(t, cfg)
	st := li.Stats()
	// One answer changed, one review replaced by another.
	if st.Reindexed != 2 || st.Reused != 11 || st.Removed != 1 || st.Articles != 13 {
		t.Fatalf("rebuild %+v", st)
	}
	hits, err := li.SearchQuery(context.Background(), grounding.Query{Text: "wifi price", Entities: policies.ModeOff}, 1, grounding.Filter{})
	if err != nil || len(hits) != 1 || hits[0].Number != "hotel.1.faqs.1" || !strings.Contains(hits[0].Text, "3 pounds") {
		t.Fatalf("%+v %v", hits, err)
	}
}

func TestDocumentsErrors(t *testing.T) {
	file := copyPlaces(t)
	for _, c := range []struct {
		d    Documents
		want string
	}{
		{Documents{}, "paths is required"},
		{Documents{Paths: []string{file}, Each: "*..faqs"}, "empty segment"},
		{Documents{Paths: []string{file}, Each: "*.*", Title: "$3"}, "$3 but each has 2 wildcards"},
		{Documents{Paths: []string{file}, Each: "*", Entity: "../../name"}, "climbs above the top"},
		{Documents{Paths: []string{file}, Body: []string{"a.*"}}, "wildcard segment"},
		{Documents{Paths: []string{file}, Body: []string{"../"}}, "must name a field"},
		{Documents{Paths: []string{file}, Each: "*.*.faqs.*", ID: "'same'", Title: "question"}, `id "same" in`},
		{Documents{Paths: []string{file}, Each: "*.nothing"}, "no document under each"},
		{Documents{Paths: []string{filepath.Join(filepath.Dir(file), "missing.json")}}, "no such file"},
	} {
		b, _ := json.Marshal(map[string]any{"dir": t.TempDir(), "documents": []Documents{c.d}})
		_, err := tryProvision(t, string(b))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err %v, want %q", c.d, err, c.want)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"a": [1,`), 0o600)
	b, _ := json.Marshal(map[string]any{"dir": t.TempDir(), "documents": []Documents{{Paths: []string{filepath.Dir(bad)}}}})
	if _, err := tryProvision(t, string(b)); err == nil || !strings.Contains(err.Error(), "not valid JSON") {
		t.Errorf("bad JSON: %v", err)
	}
}

// A folder of JSON files of flat FAQ documents, the simplest corpus.
func TestDocumentsFolder(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "sub"), 0o700)
	os.WriteFile(filepath.Join(dir, "a.json"), []byte(`[{"id":"f1","q":"How do I pair the earbuds?","a":"Hold both buttons.","product":"Pulse Buds"}]`), 0o600)
	os.WriteFile(filepath.Join(dir, "sub", "b.json"), []byte(`[{"id":"f2","q":"How do I reset the TV?","a":"Hold power for 10 s.","product":"Vista TV","cat":"tv"}]`), 0o600)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte(`not json`), 0o600)
	b, _ := json.Marshal(map[string]any{"dir": t.TempDir(), "documents": []Documents{{Paths: []string{dir}, ID: "id", Title: "q", Body: []string{"a"},
		Entity: "product", Metadata: map[string]string{"category": "cat"}}}})
	li := provision(t, string(b))
	if st := li.Stats(); st.Articles != 2 {
		t.Fatalf("%+v", st)
	}
	hits, _ := li.SearchQuery(context.Background(), grounding.Query{Text: "reset", Entities: policies.ModeBoost}, 2, grounding.Filter{})
	if len(hits) != 1 || hits[0].Number != "f2" || hits[0].Entity != "Vista TV" || hits[0].Metadata["category"] != "tv" {
		t.Fatalf("%+v", hits)
	}
}
