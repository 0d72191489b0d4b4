package azuresearch

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

const (
	testKey       = "search-query-key-never-shown"
	testEmbKey    = "aoai-key-never-shown"
	testClient    = "search-client-id"
	testSecret    = "search-secret-never-shown"
	keyEnv        = "GROUNDGATE_TEST_SEARCH_KEY"
	embKeyEnv     = "GROUNDGATE_TEST_AOAI_KEY"
	secretEnv     = "GROUNDGATE_TEST_SEARCH_SECRET"
	testIndex     = "kb"
	searchPath    = "/indexes/kb/docs/search"
	embeddingPath = "/openai/deployments/text-embedding-3-small/embeddings"
)

func TestMain(m *testing.M) {
	os.Setenv(keyEnv, testKey)
	os.Setenv(embKeyEnv, testEmbKey)
	os.Setenv(secretEnv, testSecret)
	os.Exit(m.Run())
}

// fakeSearch is an Azure AI Search service, an Azure OpenAI embeddings
// deployment and an Entra ID token endpoint on loopback, speaking the
// documented wire formats.
type fakeSearch struct {
	t   testing.TB
	srv *httptest.Server
	URL string

	mu       sync.Mutex
	searches []fakeCall
	embeds   []fakeCall
	issued   map[string]bool
	// answer, when set, answers a search (n counts searches from 1).
	answer func(w http.ResponseWriter, body map[string]any, n int)

	tokenCalls atomic.Int64
}

type fakeCall struct {
	Query  string
	Header http.Header
	Body   string
}

func newFakeSearch(t testing.TB) *fakeSearch {
	f := &fakeSearch{t: t, issued: map[string]bool{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	f.URL = f.srv.URL
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeSearch) calls() (searches, embeds []fakeCall) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeCall(nil), f.searches...), append([]fakeCall(nil), f.embeds...)
}

func (f *fakeSearch) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	call := fakeCall{Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: string(body)}
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal; odata.streaming=true")
	switch {
	case strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token"):
		f.tokenCalls.Add(1)
		form, _ := url.ParseQuery(string(body))
		if r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" || form.Get("grant_type") != "client_credentials" ||
			form.Get("client_id") != testClient || form.Get("client_secret") != testSecret || form.Get("scope") != "https://search.azure.com/.default" {
			f.t.Errorf("token request %v", form)
		}
		tok := fmt.Sprintf("eyJ0eXAi.search-%d", f.tokenCalls.Load())
		f.mu.Lock()
		f.issued[tok] = true
		f.mu.Unlock()
		fmt.Fprintf(w, `{"token_type":"Bearer","expires_in":3599,"access_token":%q}`, tok)
	case r.URL.Path == embeddingPath:
		f.mu.Lock()
		f.embeds = append(f.embeds, call)
		f.mu.Unlock()
		if r.Method != http.MethodPost || r.URL.Query().Get("api-version") != "2024-10-21" || r.Header.Get("api-key") != testEmbKey {
			w.WriteHeader(401)
			io.WriteString(w, `{"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint."}}`)
			return
		}
		io.WriteString(w, `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.25,-0.5,0.125]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":5,"total_tokens":5}}`)
	case r.URL.Path == searchPath:
		f.mu.Lock()
		f.searches = append(f.searches, call)
		n := len(f.searches)
		answer := f.answer
		tokOK := f.issued[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		f.mu.Unlock()
		if r.Method != http.MethodPost || r.URL.Query().Get("api-version") != "2024-07-01" || r.Header.Get("Content-Type") != "application/json" {
			f.t.Errorf("search request %s ?%s Content-Type %q", r.Method, r.URL.RawQuery, r.Header.Get("Content-Type"))
		}
		if r.Header.Get("api-key") != testKey && !tokOK {
			w.WriteHeader(403)
			io.WriteString(w, `{"error":{"code":"","message":"Authorization failed."}}`)
			return
		}
		var req map[string]any
		if err := json.Unmarshal(body, &req); err != nil {
			w.WriteHeader(400)
			io.WriteString(w, `{"error":{"code":"","message":"The request is invalid."}}`)
			return
		}
		if answer != nil {
			answer(w, req, n)
			return
		}
		io.WriteString(w, semanticAnswer)
	default:
		w.WriteHeader(404)
		io.WriteString(w, `{"error":{"code":"","message":"Resource not found."}}`)
	}
}

// revoke makes the service refuse every token issued so far.
func (f *fakeSearch) revoke() {
	f.mu.Lock()
	f.issued = map[string]bool{}
	f.mu.Unlock()
}

// semanticAnswer is a semantic answer in the documented shape: the
// reranked order differs from the BM25 (@search.score) order.
const semanticAnswer = `{
  "@odata.count": 25,
  "@search.answers": [{"key": "4123", "text": "Sunlight heats the land all day.", "highlights": "Sunlight heats the land", "score": 0.94639826}],
  "@search.nextPageParameters": {"search": "how do clouds form", "skip": 3, "top": 3},
  "value": [
    {"@search.score": 0.5479723, "@search.rerankerScore": 1.0321671911515296,
     "@search.captions": [{"text": "Like all clouds, it forms when the air reaches its dew point.", "highlights": "Like all<em> clouds</em>, it<em> forms</em>."}],
     "id": "4123", "title": "Earth Atmosphere", "content": "Fog is essentially a cloud lying on the ground.", "locations": ["Pacific Northwest", "Vancouver"]},
    {"@search.score": 1.2, "@search.rerankerScore": 0.9,
     "@search.captions": [{"text": "Clouds form over mountains.", "highlights": null}],
     "id": "4124", "title": "Mountains", "content": "Air rises over mountains and cools."},
    {"@search.score": 0.8, "@search.rerankerScore": null, "id": "4125", "title": "Rain", "content": "Rain falls from clouds.", "rating": 4.5, "isinternal": false}
  ],
  "@odata.nextLink": "https://myservice.search.windows.net/indexes('myindex')/docs/search.post.search?api-version=2024-07-01"
}`

func provisionAS(t testing.TB, f *fakeSearch, mutate func(*AzureSearch)) *AzureSearch {
	t.Helper()
	s, err := tryProvisionAS(t, f, mutate)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func tryProvisionAS(t testing.TB, f *fakeSearch, mutate func(*AzureSearch)) (*AzureSearch, error) {
	t.Helper()
	s := &AzureSearch{Endpoint: f.URL, Index: testIndex, APIKey: "{env." + keyEnv + "}"}
	if mutate != nil {
		mutate(s)
	}
	js, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	s = new(AzureSearch)
	if err := json.Unmarshal(js, s); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := s.Provision(ctx); err != nil {
		return nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { s.Cleanup() })
	return s, nil
}

func (f *fakeSearch) embeddings() *Embeddings {
	return &Embeddings{URL: f.URL + "/openai/deployments/text-embedding-3-small", APIKey: "{env." + embKeyEnv + "}"}
}

func assertNoSecrets(t *testing.T, s string) {
	t.Helper()
	for _, secret := range []string{testKey, testEmbKey, testSecret, "eyJ0eXAi"} {
		if strings.Contains(s, secret) {
			t.Errorf("%q holds a secret", s)
		}
	}
}
