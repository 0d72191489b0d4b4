package azuresearch

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`azure_search https://contoso.search.windows.net kb`, `{"endpoint":"https://contoso.search.windows.net","index":"kb"}`},
		{`azure_search {
			endpoint https://contoso.search.windows.net
			index kb
			api_version 2024-07-01
			api_key {env.AZURE_SEARCH_API_KEY}
			query_type hybrid
			semantic_configuration default
			captions extractive|highlight-false
			answers none
			fields {
				id chunk_id
				article parent_id
				number articlepublicnumber
				title title
				content chunk
				url url
				vector text_vector
				internal isinternal
			}
			k 50
			select chunk_id,parent_id, title chunk
			timeout 3s
			vector_query vector
			embeddings https://contoso.openai.azure.com/openai/deployments/emb {
				api_version 2024-10-21
				api_key {env.AZURE_OPENAI_API_KEY}
				dimensions 1536
			}
			chunk_tokens 300
			tokenizer gpt-4o
		}`, `{"endpoint":"https://contoso.search.windows.net","index":"kb","api_version":"2024-07-01","api_key":"{env.AZURE_SEARCH_API_KEY}",` +
			`"query_type":"hybrid","semantic_configuration":"default","captions":"extractive|highlight-false","answers":"none",` +
			`"fields":{"id":"chunk_id","article":"parent_id","number":"articlepublicnumber","title":"title","content":"chunk","url":"url","vector":"text_vector","internal":"isinternal"},` +
			`"k":50,"select":["chunk_id","parent_id","title","chunk"],"timeout":3000000000,"vector_query":"vector",` +
			`"embeddings":{"url":"https://contoso.openai.azure.com/openai/deployments/emb","api_version":"2024-10-21","api_key":"{env.AZURE_OPENAI_API_KEY}","dimensions":1536},` +
			`"chunk_tokens":300,"tokenizer":"gpt-4o"}`},
		{`azure_search https://c.search.windows.net kb {
			entra {
				tenant_id {env.AZURE_TENANT_ID}
				client_id id
				client_secret {env.SECRET}
				token_url https://login.example/t
				scope https://search.azure.com/.default
			}
			query_type vector
			vector_query text
			fields {
				vector v
			}
		}`, `{"endpoint":"https://c.search.windows.net","index":"kb","entra":{"tenant_id":"{env.AZURE_TENANT_ID}","client_id":"id","client_secret":"{env.SECRET}",` +
			`"token_url":"https://login.example/t","scope":"https://search.azure.com/.default"},"query_type":"vector","fields":{"vector":"v"},"vector_query":"text"}`},
	} {
		var s AzureSearch
		if err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.in)); err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		js, _ := json.Marshal(&s)
		if string(js) != tc.want {
			t.Errorf("%s\n got %s\nwant %s", tc.in, js, tc.want)
		}
	}
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	for in, want := range map[string]string{
		"azure_search {\n bogus 1\n}":                          `unrecognized azure_search subdirective "bogus"`,
		"azure_search a b c":                                   "wrong argument count",
		"azure_search {\n index\n}":                            "wrong argument count",
		"azure_search {\n index a\n index b\n}":                "index given twice",
		"azure_search {\n query_type fuzzy\n}":                 `query_type: expected keyword, semantic, vector or hybrid, got "fuzzy"`,
		"azure_search {\n vector_query image\n}":               `vector_query: expected vector or text, got "image"`,
		"azure_search {\n k fifty\n}":                          "k: expected a whole number",
		"azure_search {\n timeout -1s\n}":                      "expected a positive duration",
		"azure_search {\n select\n}":                           "wrong argument count",
		"azure_search {\n fields {\n  body x\n }\n}":           `unrecognized azure_search fields subdirective "body"`,
		"azure_search {\n fields {\n  id a\n  id b\n }\n}":     "fields: id given twice",
		"azure_search {\n fields x {\n }\n}":                   "wrong argument count",
		"azure_search {\n entra {\n  password x\n }\n}":        `unrecognized azure_search entra subdirective "password"`,
		"azure_search {\n embeddings {\n  model x\n }\n}":      `unrecognized azure_search embeddings subdirective "model"`,
		"azure_search {\n embeddings {\n  dimensions x\n }\n}": "dimensions: expected a whole number",
	} {
		var s AzureSearch
		err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want it to contain %q", in, err, want)
		}
	}
}

func TestUnmarshalAsGuest(t *testing.T) {
	d := caddyfile.NewTestDispenser("azure_search https://c.search.windows.net kb {\n api_key {env.K}\n}")
	d.Next()
	unm, err := caddyfile.UnmarshalModule(d, "llm_gateway.context.azure_search")
	if err != nil {
		t.Fatal(err)
	}
	if err := unm.(*AzureSearch).Validate(); err != nil {
		t.Fatal(err)
	}
	js := caddyconfig.JSONModuleObject(unm, "source", "azure_search", nil)
	if want := `{"api_key":"{env.K}","endpoint":"https://c.search.windows.net","index":"kb","source":"azure_search"}`; string(js) != want {
		t.Errorf("JSON %s", js)
	}
}

func TestProvisionErrors(t *testing.T) {
	f := newFakeSearch(t)
	emb := f.embeddings()
	for _, tc := range []struct {
		name   string
		mutate func(*AzureSearch)
		want   string
	}{
		{"no endpoint", func(s *AzureSearch) { s.Endpoint = "" }, "endpoint is required"},
		{"http elsewhere", func(s *AzureSearch) { s.Endpoint = "http://contoso.search.windows.net" }, "endpoint must use https"},
		{"index", func(s *AzureSearch) { s.Index = "KB/../x" }, "index must be an index name"},
		{"no auth", func(s *AzureSearch) { s.APIKey = "" }, "api_key or entra is required"},
		{"both auth", func(s *AzureSearch) { s.Entra = &Entra{ClientID: "a", ClientSecret: "b", TenantID: "t"} }, "not both"},
		{"entra incomplete", func(s *AzureSearch) { s.APIKey, s.Entra = "", &Entra{ClientID: "a", TenantID: "t"} }, "client_id and client_secret are required"},
		{"unset key", func(s *AzureSearch) { s.APIKey = "{env.GROUNDGATE_TEST_UNSET_VARIABLE}" }, "api_key"},
		{"query type", func(s *AzureSearch) { s.QueryType = "fuzzy" }, "query_type must be"},
		{"semantic conf", func(s *AzureSearch) { s.QueryType = Semantic }, "needs semantic_configuration"},
		{"vector semantic", func(s *AzureSearch) {
			s.QueryType, s.SemanticConfiguration, s.Fields.Vector, s.Embeddings = Vector, "c", "v", emb
		}, "use query_type hybrid"},
		{"vector field", func(s *AzureSearch) { s.QueryType, s.Embeddings = Hybrid, emb }, "needs fields.vector"},
		{"embeddings", func(s *AzureSearch) { s.QueryType, s.Fields.Vector = Hybrid, "v" }, "needs embeddings"},
		{"embeddings http", func(s *AzureSearch) {
			s.QueryType, s.Fields.Vector, s.Embeddings = Hybrid, "v", &Embeddings{URL: "http://aoai.example/openai/deployments/e", APIKey: "k"}
		}, "embeddings url must use https"},
		{"field name", func(s *AzureSearch) { s.Fields.Title = "title eq 'x'" }, "is not a field name"},
		{"select", func(s *AzureSearch) { s.Select = []string{"a,b"} }, "is not a field name"},
		{"api version", func(s *AzureSearch) { s.APIVersion = "latest" }, "api_version must look like"},
		{"chunk tokens", func(s *AzureSearch) { s.ChunkTokens = 5 }, "chunk_tokens must be at least 32"},
		{"tokenizer", func(s *AzureSearch) { s.Tokenizer = "no-such-model" }, "tokenizer"},
	} {
		_, err := tryProvisionAS(t, f, tc.mutate)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to contain %q", tc.name, err, tc.want)
		}
		if err != nil {
			assertNoSecrets(t, err.Error())
		}
	}
}

func TestProvisionDefaults(t *testing.T) {
	f := newFakeSearch(t)
	s := provisionAS(t, f, nil)
	if s.url != f.URL+"/indexes/kb/docs/search?api-version=2024-07-01" || s.c.timeout.String() != "5s" || s.plan.queryType != Keyword {
		t.Errorf("url %s timeout %s plan %+v", s.url, s.c.timeout, s.plan)
	}
	s = provisionAS(t, f, func(s *AzureSearch) { semanticConfig(s); s.Captions = "none"; s.Answers = "extractive" })
	if s.plan.captions != "" || s.plan.answers != "extractive" || s.plan.k != 50 || !s.plan.reranked {
		t.Errorf("plan %+v", s.plan)
	}
}
