package azuresearch

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/groundgate/groundgate/grounding"
)

func semanticConfig(s *AzureSearch) {
	s.QueryType = Semantic
	s.SemanticConfiguration = "my-semantic-config"
}

// TestSemantic: the request body is the documented semantic query, and
// the answer maps to hits scored by the reranker with both ranks.
func TestSemantic(t *testing.T) {
	f := newFakeSearch(t)
	s := provisionAS(t, f, semanticConfig)
	hits, err := s.Search(context.Background(), " how do\tclouds form ", 3, grounding.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	searches, _ := f.calls()
	if len(searches) != 1 {
		t.Fatalf("%d searches", len(searches))
	}
	want := `{"search":"how do clouds form","queryType":"semantic","semanticConfiguration":"my-semantic-config","captions":"extractive","select":"id, title, content","top":3}`
	if searches[0].Body != want {
		t.Errorf("body\n got %s\nwant %s", searches[0].Body, want)
	}
	if searches[0].Header.Get("api-key") != testKey || searches[0].Header.Get("Authorization") != "" {
		t.Errorf("auth headers %v", searches[0].Header)
	}
	wantHits := []grounding.Hit{
		{Chunk: grounding.Chunk{ArticleID: "4123", ChunkID: "0", Title: "Earth Atmosphere", Text: "Fog is essentially a cloud lying on the ground."}, Score: 1.0321671911515296, Semantic: 1, Lexical: 3},
		{Chunk: grounding.Chunk{ArticleID: "4124", ChunkID: "0", Title: "Mountains", Text: "Air rises over mountains and cools."}, Score: 0.9, Semantic: 2, Lexical: 1},
		{Chunk: grounding.Chunk{ArticleID: "4125", ChunkID: "0", Title: "Rain", Text: "Rain falls from clouds."}, Score: 0.8, Semantic: 3, Lexical: 2},
	}
	for i := range hits {
		if hits[i].Tokens == 0 {
			t.Errorf("hit %d has no token count", i)
		}
		hits[i].Tokens = 0
	}
	if !reflect.DeepEqual(hits, wantHits) {
		t.Errorf("hits\n got %+v\nwant %+v", hits, wantHits)
	}
}

// TestHybridSemantic: semantic hybrid, as in the docs: the query is
// embedded by the embeddings deployment, k is 50, answers as configured.
func TestHybridSemantic(t *testing.T) {
	f := newFakeSearch(t)
	s := provisionAS(t, f, func(s *AzureSearch) {
		s.QueryType = Hybrid
		s.SemanticConfiguration = "my-semantic-config"
		s.Answers = "extractive"
		s.Fields = Fields{ID: "HotelId", Title: "HotelName", Content: "Description", Vector: "DescriptionVector"}
		s.Select = []string{"HotelId", "HotelName", "Description", "Tags"}
		s.Embeddings = f.embeddings()
	})
	f.answer = func(w http.ResponseWriter, _ map[string]any, _ int) {
		io.WriteString(w, `{"value":[{"@search.score":0.03333,"@search.rerankerScore":2.5,"HotelId":"1","HotelName":"Old Century Hotel","Description":"Historic hotel near shops.","Tags":["pool","view"]},
			{"@search.score":0.0328,"@search.rerankerScore":2.1,"HotelId":"2","HotelName":"Gastronomic Landscape Hotel","Description":"Walk to restaurants."}]}`)
	}
	for range 2 {
		hits, err := s.Search(context.Background(), "historic hotel walk to restaurants and shopping", 5, grounding.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(hits) != 2 || hits[0].Score != 2.5 || hits[0].Semantic != 1 || hits[0].Lexical != 0 || hits[1].Semantic != 2 ||
			hits[0].Title != "Old Century Hotel" || hits[0].ArticleID != "1" {
			t.Errorf("hits %+v", hits)
		}
	}
	searches, embeds := f.calls()
	want := `{"search":"historic hotel walk to restaurants and shopping","queryType":"semantic","semanticConfiguration":"my-semantic-config",` +
		`"captions":"extractive","answers":"extractive","vectorQueries":[{"kind":"vector","vector":[0.25,-0.5,0.125],"fields":"DescriptionVector","k":50}],` +
		`"select":"HotelId, HotelName, Description, Tags","top":5}`
	if searches[0].Body != want {
		t.Errorf("body\n got %s\nwant %s", searches[0].Body, want)
	}
	if len(embeds) != 1 {
		t.Fatalf("%d embeddings requests for the same query twice", len(embeds))
	}
	if embeds[0].Body != `{"input":"historic hotel walk to restaurants and shopping"}` || embeds[0].Query != "api-version=2024-10-21" {
		t.Errorf("embeddings request %+v", embeds[0])
	}
}

// TestHybridTextVectorizer: the index's vectorizer embeds the text
// ("kind": "text"); without the semantic ranker the body is a simple
// query plus the vector subquery, and the fused order sets no rank.
func TestHybridTextVectorizer(t *testing.T) {
	f := newFakeSearch(t)
	s := provisionAS(t, f, func(s *AzureSearch) {
		s.QueryType = Hybrid
		s.VectorQuery = VectorQueryText
		s.Fields = Fields{Vector: "text_vector", Internal: "isinternal"}
	})
	hits, err := s.Search(context.Background(), "clouds", 4, grounding.Filter{ExcludeInternal: true})
	if err != nil {
		t.Fatal(err)
	}
	searches, embeds := f.calls()
	want := `{"search":"clouds","queryType":"simple","vectorQueries":[{"kind":"text","text":"clouds","fields":"text_vector","k":4}],"filter":"isinternal ne true","select":"id, title, content, isinternal","top":4}`
	if searches[0].Body != want || len(embeds) != 0 {
		t.Errorf("body\n got %s\nwant %s (%d embeds)", searches[0].Body, want, len(embeds))
	}
	for _, h := range hits {
		if h.Lexical != 0 || h.Semantic != 0 {
			t.Errorf("hybrid hit with ranks %+v", h)
		}
	}
	if hits[0].Score != 1.0321671911515296 || hits[2].Score != 0.8 {
		t.Errorf("scores %v %v", hits[0].Score, hits[2].Score)
	}
}

// TestVectorOnly: no search text; the vector ranking is the Semantic rank.
func TestVectorOnly(t *testing.T) {
	f := newFakeSearch(t)
	s := provisionAS(t, f, func(s *AzureSearch) {
		s.QueryType = Vector
		s.K = 10
		s.Fields = Fields{Vector: "v"}
		s.Embeddings = f.embeddings()
		s.Embeddings.Dimensions = 3
	})
	hits, err := s.Search(context.Background(), "clouds", 3, grounding.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	searches, embeds := f.calls()
	want := `{"vectorQueries":[{"kind":"vector","vector":[0.25,-0.5,0.125],"fields":"v","k":10}],"select":"id, title, content","top":3}`
	if searches[0].Body != want {
		t.Errorf("body\n got %s\nwant %s", searches[0].Body, want)
	}
	if embeds[0].Body != `{"dimensions":3,"input":"clouds"}` {
		t.Errorf("embeddings body %s", embeds[0].Body)
	}
	if hits[0].Semantic != 1 || hits[2].Semantic != 3 || hits[0].Lexical != 0 {
		t.Errorf("hits %+v", hits)
	}
}

// TestKeywordFilter: keyword queries, filter values escaped, chunks of
// one article capped per article.
func TestKeywordFilter(t *testing.T) {
	f := newFakeSearch(t)
	s := provisionAS(t, f, func(s *AzureSearch) {
		s.Fields = Fields{ID: "chunk_id", Article: "parent_id", Number: "articlepublicnumber", Title: "title", Content: "chunk", URL: "url", Internal: "isinternal"}
	})
	f.answer = func(w http.ResponseWriter, _ map[string]any, _ int) {
		io.WriteString(w, `{"value":[
			{"@search.score":3.1,"chunk_id":"k1_0","parent_id":"k1","articlepublicnumber":"KA-01042","title":"Pairing","chunk":"Hold the button.","url":"https://kb/KA-01042","isinternal":false},
			{"@search.score":2.9,"chunk_id":"k1_1","parent_id":"k1","articlepublicnumber":"KA-01042","title":"Pairing","chunk":"Pick Pulse.","isinternal":false},
			{"@search.score":2.5,"chunk_id":"k1_2","parent_id":"k1","articlepublicnumber":"KA-01042","title":"Pairing","chunk":"Done.","isinternal":false},
			{"@search.score":2.0,"chunk_id":"k2_0","parent_id":"k2","articlepublicnumber":"KA-'1","title":"Reset","chunk":"Reset it.","isinternal":true},
			{"@search.score":1.0,"chunk_id":"k3_0","parent_id":"k3","articlepublicnumber":"KA-01044","title":"No text","chunk":""}]}`)
	}
	hits, err := s.Search(context.Background(), "pair", 5, grounding.Filter{PerArticle: 2, Numbers: []string{"KA-01042", "KA-'1", "bad\nnumber"}})
	if err != nil {
		t.Fatal(err)
	}
	searches, _ := f.calls()
	want := `{"search":"pair","queryType":"simple","filter":"(articlepublicnumber eq 'KA-01042' or articlepublicnumber eq 'KA-''1')",` +
		`"select":"chunk_id, parent_id, articlepublicnumber, title, chunk, url, isinternal","top":10}`
	if searches[0].Body != want {
		t.Errorf("body\n got %s\nwant %s", searches[0].Body, want)
	}
	var got []string
	for _, h := range hits {
		got = append(got, h.ArticleID+"/"+h.ChunkID)
	}
	if !reflect.DeepEqual(got, []string{"k1/k1_0", "k1/k1_1", "k2/k2_0"}) {
		t.Errorf("hits %v", got)
	}
	if hits[0].Number != "KA-01042" || hits[0].URL != "https://kb/KA-01042" || hits[0].Lexical != 1 || hits[2].Lexical != 4 || !hits[2].Internal || hits[2].Number != "KA-'1" {
		t.Errorf("hits %+v", hits)
	}
	// Numbers that cannot be literals send nothing.
	if hits, err := s.Search(context.Background(), "pair", 5, grounding.Filter{Numbers: []string{"a\x00"}}); hits != nil || err != nil {
		t.Errorf("%v %v", hits, err)
	}
}

// TestChunkTokens: a whole-article document longer than chunk_tokens is
// split; the parts holding the query's words come first.
func TestChunkTokens(t *testing.T) {
	f := newFakeSearch(t)
	s := provisionAS(t, f, func(s *AzureSearch) { s.ChunkTokens = 40 })
	long := "# Setup\n\n" + strings.Repeat("Unbox the device and read the safety leaflet first. ", 6) +
		"\n\n# Pairing\n\nHold the power button until the light flashes blue, then pick Pulse."
	f.answer = func(w http.ResponseWriter, _ map[string]any, _ int) {
		b, _ := json.Marshal(map[string]any{"value": []any{map[string]any{"@search.score": 2.0, "id": "ka1", "title": "Pulse", "content": long}}})
		w.Write(b)
	}
	hits, err := s.Search(context.Background(), "flashes blue light", 5, grounding.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) < 1 || hits[0].Heading != "Pairing" || !strings.Contains(hits[0].Text, "flashes blue") || hits[0].Tokens > 40 {
		t.Fatalf("hits %+v", hits)
	}
	for _, h := range hits {
		if h.ArticleID != "ka1" || h.Score != 2.0 {
			t.Errorf("hit %+v", h)
		}
	}
}

// TestCaptionsWhenNoContent: a document without its content field still
// grounds with its captions.
func TestCaptionsWhenNoContent(t *testing.T) {
	f := newFakeSearch(t)
	s := provisionAS(t, f, func(s *AzureSearch) { semanticConfig(s); s.Fields.Content = "body" })
	hits, err := s.Search(context.Background(), "clouds", 3, grounding.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != 2 || hits[0].Text != "Like all clouds, it forms when the air reaches its dew point." || hits[1].Text != "Clouds form over mountains." {
		t.Errorf("hits %+v", hits)
	}
}

// TestEntra: a client-credentials token for https://search.azure.com/.default
// is sent as a bearer token, cached, and refreshed after a 401.
func TestEntra(t *testing.T) {
	f := newFakeSearch(t)
	s := provisionAS(t, f, func(s *AzureSearch) {
		s.APIKey = ""
		s.Entra = &Entra{TenantID: "t", ClientID: testClient, ClientSecret: "{env." + secretEnv + "}", TokenURL: f.URL + "/t/oauth2/v2.0/token"}
	})
	for range 2 {
		if _, err := s.Search(context.Background(), "clouds", 3, grounding.Filter{}); err != nil {
			t.Fatal(err)
		}
	}
	searches, _ := f.calls()
	if !strings.HasPrefix(searches[0].Header.Get("Authorization"), "Bearer eyJ0eXAi.search-") || searches[0].Header.Get("api-key") != "" {
		t.Errorf("headers %v", searches[0].Header)
	}
	if f.tokenCalls.Load() != 1 {
		t.Errorf("%d token requests", f.tokenCalls.Load())
	}
	// A 403 (the app lacks the Search Index Data Reader role) is not
	// retried with a new token.
	f.revoke()
	_, err := s.Search(context.Background(), "clouds", 3, grounding.Filter{})
	var e *Error
	if !errors.As(err, &e) || e.Status != 403 || e.Message != "Authorization failed." || f.tokenCalls.Load() != 1 {
		t.Errorf("err %v, %d token requests", err, f.tokenCalls.Load())
	}
}

func TestEntraRefusedTokenRefreshed(t *testing.T) {
	f := newFakeSearch(t)
	s := provisionAS(t, f, func(s *AzureSearch) {
		s.APIKey = ""
		s.Entra = &Entra{ClientID: testClient, ClientSecret: "{env." + secretEnv + "}", TokenURL: f.URL + "/t/oauth2/v2.0/token"}
	})
	f.answer = func(w http.ResponseWriter, _ map[string]any, n int) {
		if n == 2 {
			w.WriteHeader(401)
			io.WriteString(w, `{"error":{"code":"","message":"Authentication failed."}}`)
			return
		}
		io.WriteString(w, semanticAnswer)
	}
	for range 2 {
		if _, err := s.Search(context.Background(), "clouds", 3, grounding.Filter{}); err != nil {
			t.Fatal(err)
		}
	}
	if f.tokenCalls.Load() != 2 {
		t.Errorf("%d token requests, want 2", f.tokenCalls.Load())
	}
}

// TestThrottled: 429 with Retry-After is waited out (for real) and the
// retry succeeds; 503 with retry-after-ms too.
func TestThrottled(t *testing.T) {
	f := newFakeSearch(t)
	s := provisionAS(t, f, nil)
	f.answer = func(w http.ResponseWriter, _ map[string]any, n int) {
		switch n {
		case 1:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(429)
			io.WriteString(w, `{"error":{"code":"","message":"You are sending too many requests. Please try again later."}}`)
		case 3:
			w.Header().Set("retry-after-ms", "150")
			w.WriteHeader(503)
			io.WriteString(w, `{"error":{"code":"","message":"Service unavailable."}}`)
		default:
			io.WriteString(w, semanticAnswer)
		}
	}
	start := time.Now()
	hits, err := s.Search(context.Background(), "clouds", 3, grounding.Filter{})
	if err != nil || len(hits) != 3 {
		t.Fatalf("%v %v", hits, err)
	}
	if el := time.Since(start); el < time.Second {
		t.Errorf("retried after %s", el)
	}
	start = time.Now()
	if _, err := s.Search(context.Background(), "clouds", 3, grounding.Filter{}); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 150*time.Millisecond {
		t.Errorf("retried after %s", el)
	}
	if searches, _ := f.calls(); len(searches) != 4 {
		t.Errorf("%d searches", len(searches))
	}
}

func TestThrottledBeyondTimeout(t *testing.T) {
	f := newFakeSearch(t)
	s := provisionAS(t, f, func(s *AzureSearch) { s.Timeout = caddyDuration(time.Second) })
	var slept int
	s.c.sleep = func(context.Context, time.Duration) error { slept++; return nil }
	f.answer = func(w http.ResponseWriter, _ map[string]any, n int) {
		w.Header().Set("Retry-After", "10")
		w.WriteHeader(429)
		io.WriteString(w, `{"error":{"code":"","message":"You are sending too many requests. Please try again later."}}`)
	}
	_, err := s.Search(context.Background(), "clouds", 3, grounding.Filter{})
	var e *Error
	if !errors.As(err, &e) || e.Status != 429 || e.RetryAfter != 10*time.Second || slept != 0 {
		t.Fatalf("err %v slept %d", err, slept)
	}
	for _, want := range []string{"POST indexes/kb/docs/search", "429 Too Many Requests", "too many requests", "retry after 10s"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
}

// TestErrorSurfaced: the service's error code and message are reported;
// keys are not.
func TestErrorSurfaced(t *testing.T) {
	f := newFakeSearch(t)
	s := provisionAS(t, f, semanticConfig)
	f.answer = func(w http.ResponseWriter, _ map[string]any, _ int) {
		w.WriteHeader(400)
		io.WriteString(w, `{"error":{"code":"InvalidRequestParameter","message":"Unknown semantic configuration 'my-semantic-config'.","details":[]}}`)
	}
	_, err := s.Search(context.Background(), "clouds", 3, grounding.Filter{})
	want := "azure_search: POST indexes/kb/docs/search: 400 Bad Request: InvalidRequestParameter: Unknown semantic configuration 'my-semantic-config'."
	if err == nil || err.Error() != want {
		t.Errorf("err %v\nwant %s", err, want)
	}
	if searches, _ := f.calls(); len(searches) != 1 {
		t.Errorf("a 400 was retried")
	}
	assertNoSecrets(t, err.Error())

	// An embeddings failure names the embeddings request.
	s2 := provisionAS(t, f, func(s *AzureSearch) {
		s.QueryType, s.Fields.Vector, s.Embeddings = Hybrid, "v", f.embeddings()
		s.Embeddings.APIKey = "wrong-key"
	})
	_, err = s2.Search(context.Background(), "clouds", 3, grounding.Filter{})
	if err == nil || !strings.Contains(err.Error(), "POST embeddings: 401 Unauthorized: 401: Access denied") {
		t.Errorf("err %v", err)
	}
	assertNoSecrets(t, err.Error())
}

func TestSearchEmpty(t *testing.T) {
	f := newFakeSearch(t)
	s := provisionAS(t, f, nil)
	for _, q := range []string{"", " \n "} {
		if hits, err := s.Search(context.Background(), q, 3, grounding.Filter{}); hits != nil || err != nil {
			t.Errorf("%q: %v %v", q, hits, err)
		}
	}
	if hits, err := s.Search(context.Background(), "x", 0, grounding.Filter{}); hits != nil || err != nil {
		t.Errorf("k=0: %v %v", hits, err)
	}
	if searches, _ := f.calls(); len(searches) != 0 {
		t.Error("searched")
	}
}

func caddyDuration(d time.Duration) caddy.Duration { return caddy.Duration(d) }
