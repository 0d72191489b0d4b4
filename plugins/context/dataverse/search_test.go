package dataverse

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/groundgate/groundgate/grounding"
)

func TestArticles(t *testing.T) {
	f := newFakeDataverse(t)
	d := provisionDV(t, f, func(d *Dataverse) { d.PageSize = 1; d.ArticleURL = "https://support.contoso.com/kb/{number}" })
	arts, err := d.Articles(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(arts) != 2 {
		t.Fatalf("%d articles: %+v", len(arts), arts)
	}
	a := arts[0]
	if a.ID != kaPairing || a.Number != "KA-01042" || a.Title != "Pair Pulse headphones with a second phone" ||
		a.URL != "https://support.contoso.com/kb/KA-01042" || a.Internal ||
		!reflect.DeepEqual(a.Keywords, []string{"headphones", "bluetooth", "pairing"}) {
		t.Errorf("article %+v", a)
	}
	wantContent := "## Before you start\n\nCharge the headphones.\n\n## Pairing\n\nHold the power button for 5 seconds until the light flashes blue, then pick Pulse in the phone's Bluetooth list."
	if a.Content != wantContent {
		t.Errorf("content\n%q\nwant\n%q", a.Content, wantContent)
	}
	if !arts[1].Internal || arts[1].Number != "KA-01043" {
		t.Errorf("second article %+v", arts[1])
	}
	reqs := f.reqs()
	if len(reqs) != 2 { // page size 1: two pages
		t.Fatalf("%d requests", len(reqs))
	}
	if got := reqs[0].Query.Get("$filter"); got != "statecode eq 3 and islatestversion eq true" {
		t.Errorf("$filter %q", got)
	}
}

func TestArticlesTooManyPages(t *testing.T) {
	f := newFakeDataverse(t)
	d := provisionDV(t, f, func(d *Dataverse) { d.PageSize = 1; d.MaxPages = 1 })
	if _, err := d.Articles(context.Background()); err == nil || !strings.Contains(err.Error(), "max_pages") {
		t.Errorf("err %v", err)
	}
}

func searchOn(d *Dataverse) { d.SearchConfig = &SearchConfig{Enabled: true, ChunkTokens: 32} }

// TestSearchRequest: the body is exactly the documented shape, with
// entities as a JSON-encoded string.
func TestSearchRequest(t *testing.T) {
	f := newFakeDataverse(t)
	d := provisionDV(t, f, searchOn)
	if _, err := d.Search(context.Background(), "  How do I pair\n my headphones?  ", 5, grounding.Filter{ExcludeInternal: true, Numbers: []string{"KA-01042", "KA-'1"}}); err != nil {
		t.Fatal(err)
	}
	reqs := f.reqs()
	if len(reqs) != 1 || reqs[0].Method != "POST" || reqs[0].Path != "/api/search/v2.0/query" {
		t.Fatalf("requests %+v", reqs)
	}
	want := `{"search":"How do I pair my headphones?","entities":"[{\"Name\":\"knowledgearticle\",\"SelectColumns\":[\"articlepublicnumber\",\"title\",\"description\",\"keywords\",\"content\",\"isinternal\"],\"SearchColumns\":[\"title\",\"keywords\",\"description\",\"content\"],\"Filter\":\"statecode eq 3 and isinternal eq false and (articlepublicnumber eq 'KA-01042' or articlepublicnumber eq 'KA-''1')\"}]","top":5}`
	if got := string(reqs[0].Body); got != want {
		t.Errorf("body\n got %s\nwant %s", got, want)
	}
	if p := reqs[0].Header.Get("Prefer"); p != "" {
		t.Errorf("Prefer %q on search", p)
	}
}

// TestSearchHits: the doubly encoded response is decoded, articles are
// chunked, the relevant chunks come first, ranks and scores are set, and
// internal articles are left out when asked.
func TestSearchHits(t *testing.T) {
	f := newFakeDataverse(t)
	d := provisionDV(t, f, searchOn)
	hits, err := d.Search(context.Background(), "pairing blue light", 10, grounding.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) < 2 {
		t.Fatalf("hits %+v", hits)
	}
	h := hits[0]
	if h.ArticleID != kaPairing || h.Number != "KA-01042" || h.Lexical != 1 || h.Semantic != 0 || h.Score != 3.25 {
		t.Errorf("first hit %+v", h)
	}
	if h.Heading != "Pairing" || !strings.Contains(h.Text, "flashes blue") || h.Tokens == 0 || h.Tokens > 32 {
		t.Errorf("first hit is not the pairing chunk: %+v", h)
	}
	var internal bool
	for i, h := range hits {
		if h.Lexical != i+1 {
			t.Errorf("hit %d rank %d", i, h.Lexical)
		}
		internal = internal || h.Internal
	}
	if !internal {
		t.Error("internal article missing without ExcludeInternal")
	}
	hits, err = d.Search(context.Background(), "pairing blue light", 10, grounding.Filter{ExcludeInternal: true, PerArticle: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != 1 || hits[0].ArticleID != kaPairing || hits[0].Heading != "Pairing" {
		t.Errorf("filtered hits %+v", hits)
	}
	hits, _ = d.Search(context.Background(), "pairing", 1, grounding.Filter{})
	if len(hits) != 1 {
		t.Errorf("k=1: %d hits", len(hits))
	}
}

// TestSearchFetchesMissingContent: when search does not return content,
// the articles are read from the Web API in one request.
func TestSearchFetchesMissingContent(t *testing.T) {
	f := newFakeDataverse(t)
	f.searchOmits = map[string]bool{"content": true}
	d := provisionDV(t, f, searchOn)
	hits, err := d.Search(context.Background(), "pairing", 10, grounding.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) == 0 || !strings.Contains(hits[0].Text+hits[len(hits)-1].Text, "pairing") {
		t.Fatalf("hits %+v", hits)
	}
	reqs := f.reqs()
	if len(reqs) != 2 || reqs[1].Path != "/api/data/v9.2/knowledgearticles" {
		t.Fatalf("requests %+v", reqs)
	}
	if got := reqs[1].Query.Get("$filter"); got != "(knowledgearticleid eq "+kaPairing+" or knowledgearticleid eq "+kaInternal+")" {
		t.Errorf("$filter %q", got)
	}
}

func TestSearchOffAndEmpty(t *testing.T) {
	f := newFakeDataverse(t)
	d := provisionDV(t, f, nil)
	if _, err := d.Search(context.Background(), "pairing", 3, grounding.Filter{}); err == nil || !strings.Contains(err.Error(), "search is off") {
		t.Errorf("err %v", err)
	}
	d = provisionDV(t, f, searchOn)
	for _, q := range []string{"", "  \n\t "} {
		if hits, err := d.Search(context.Background(), q, 3, grounding.Filter{}); hits != nil || err != nil {
			t.Errorf("%q: %v %v", q, hits, err)
		}
	}
	if len(f.reqs()) != 0 {
		t.Error("requests sent")
	}
}

func TestSearchErrorInResponse(t *testing.T) {
	f := newFakeDataverse(t)
	d := provisionDV(t, f, searchOn)
	f.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
		inner := `{"Error":{"code":"InvalidFilter","message":"Invalid expression: Could not find a property named 'isinternal'."},"Value":null,"Facets":null,"QueryContext":null,"Count":-1}`
		b, _ := json.Marshal(map[string]string{"@odata.context": "x", "response": inner})
		w.Write(b)
		return true
	}
	_, err := d.Search(context.Background(), "pairing", 3, grounding.Filter{})
	if err == nil || !strings.Contains(err.Error(), "InvalidFilter: Invalid expression") {
		t.Errorf("err %v", err)
	}
}

func TestSearchText(t *testing.T) {
	long := strings.Repeat("word ", 40)
	got := searchText(long)
	if len([]rune(got)) > maxSearchText || strings.HasSuffix(got, " ") || !strings.HasPrefix(got, "word word") {
		t.Errorf("%q", got)
	}
	if got := searchText(strings.Repeat("é", 150)); len([]rune(got)) != maxSearchText {
		t.Errorf("%d runes", len([]rune(got)))
	}
	if got := searchText("a\x00b\u2028c"); got != "a b c" {
		t.Errorf("%q", got)
	}
}

func TestQueryTerms(t *testing.T) {
	got := queryTerms("How do I pair my Pulse?", []string{"{crmhit}Bluetooth{/crmhit} pairing … {crmhit}multipoint{/crmhit}", "{crmhit}broken"})
	want := []string{"how", "pair", "pulse", "bluetooth", "multipoint"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%v", got)
	}
}
