// Package azuresearch is the llm_gateway.context.azure_search module: an
// Azure AI Search index as the knowledge index grounding searches
// (grounding.Index), for gateways that run as several instances and
// share one index. Keyword, semantic (semantic ranker), vector and
// hybrid queries are supported, with an api-key or a Microsoft Entra ID
// client-credentials token.
//
// JSON config:
//
//	{
//	  "source": "azure_search",
//	  "endpoint": "https://contoso-search.search.windows.net",
//	  "index": "kb",
//	  "api_key": "{env.AZURE_SEARCH_API_KEY}",
//	  "query_type": "hybrid",
//	  "semantic_configuration": "default",
//	  "fields": {"id": "chunk_id", "article": "parent_id", "number": "articlepublicnumber",
//	             "title": "title", "content": "chunk", "url": "url",
//	             "vector": "text_vector", "internal": "isinternal"},
//	  "embeddings": {"url": "https://contoso-aoai.openai.azure.com/openai/deployments/text-embedding-3-small",
//	                 "api_key": "{env.AZURE_OPENAI_API_KEY}"}
//	}
//
// Documents are taken as chunks (one hit each); an index of whole
// articles can be split at query time with chunk_tokens.
package azuresearch

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/groundgate/groundgate/grounding"
	"github.com/groundgate/groundgate/tokens"

	"github.com/groundgate/groundgate/entra"

	"github.com/groundgate/groundgate/wire"
)

func init() {
	caddy.RegisterModule(new(AzureSearch))
}

// Defaults.
const (
	DefaultAPIVersion = "2024-07-01"
	DefaultTimeout    = 5 * time.Second
	DefaultScope      = "https://search.azure.com/.default"
	DefaultTokenizer  = "gpt-4o"
	// DefaultSemanticK is the vector k with semantic reranking: the
	// ranker reads the top 50, so the vector query should supply 50.
	DefaultSemanticK = 50
)

// AzureSearch is the llm_gateway.context.azure_search module.
type AzureSearch struct {
	// Endpoint is the search service URL, https://<service>.search.windows.net
	// (plain http only for loopback test servers).
	Endpoint string `json:"endpoint"`
	// Index is the index name.
	Index string `json:"index"`
	// APIVersion is the REST api-version. Default 2024-07-01.
	APIVersion string `json:"api_version,omitempty"`
	// APIKey is a query (or admin) key, sent as the api-key header. Use a
	// placeholder such as {env.AZURE_SEARCH_API_KEY}. Give api_key or
	// entra, not both.
	APIKey string `json:"api_key,omitempty"`
	// Entra authenticates with a Microsoft Entra ID client-credentials
	// token (scope https://search.azure.com/.default) instead of a key.
	Entra *Entra `json:"entra,omitempty"`
	// QueryType is keyword (default), semantic, vector or hybrid.
	QueryType string `json:"query_type,omitempty"`
	// SemanticConfiguration names the index's semantic configuration.
	// Required for semantic; with hybrid it turns on semantic reranking.
	SemanticConfiguration string `json:"semantic_configuration,omitempty"`
	// Captions is the captions parameter of semantic queries. Default
	// "extractive"; "none" leaves it out.
	Captions string `json:"captions,omitempty"`
	// Answers is the answers parameter of semantic queries, e.g.
	// "extractive|count-3". Default: none (answers are not used).
	Answers string `json:"answers,omitempty"`
	// Fields maps the index's fields to what a hit needs.
	Fields Fields `json:"fields,omitzero"`
	// K is the number of nearest neighbours of vector queries. Default
	// 50 with semantic reranking, else the number of results asked for.
	K int `json:"k,omitempty"`
	// Select lists the fields returned. Default: the mapped fields but
	// the vector.
	Select []string `json:"select,omitempty"`
	// Timeout bounds one request (the embeddings request and the search
	// each), retries after 429 and 503 included. Default 5s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// VectorQuery says how vector and hybrid queries get their vector:
	// "vector" (default) embeds the query text with Embeddings; "text"
	// sends the text ("kind": "text") for the index's vectorizer to embed.
	VectorQuery string `json:"vector_query,omitempty"`
	// Embeddings is the embeddings deployment for vector_query "vector".
	Embeddings *Embeddings `json:"embeddings,omitempty"`
	// ChunkTokens, when set, splits documents longer than this many
	// tokens with grounding's chunker and returns their parts that hold
	// the query's words (for indexes of whole articles). Default 0: each
	// document is one hit.
	ChunkTokens int `json:"chunk_tokens,omitempty"`
	// Tokenizer is the model whose tokenizer counts hit tokens. Default
	// gpt-4o.
	Tokenizer string `json:"tokenizer,omitempty"`
	// Boost sends policy boosts as a scoring profile's tag parameters.
	Boost *Boost `json:"boost,omitempty"`

	url     string
	creds   credentials
	poolKey string
	c       *client
	plan    plan
	emb     *embedder
	enc     *tokens.Encoder
	logger  *zap.Logger
}

// Fields maps index fields to hit attributes.
type Fields struct {
	// ID is the document key. Default "id".
	ID string `json:"id,omitempty"`
	// Article is the id of the article a chunk belongs to (e.g.
	// parent_id); chunks of one article share it. Default: the document
	// key (every document is its own article).
	Article string `json:"article,omitempty"`
	// Number is the article's public number (articlepublicnumber).
	Number string `json:"number,omitempty"`
	// Title is the article title. Default "title".
	Title string `json:"title,omitempty"`
	// Content is the text that reaches the model. Default "content".
	Content string `json:"content,omitempty"`
	// URL is the article's link.
	URL string `json:"url,omitempty"`
	// Vector is the vector field searched by vector and hybrid queries.
	Vector string `json:"vector,omitempty"`
	// Internal is a boolean field marking internal articles; with it,
	// searches that exclude internal articles filter on it.
	Internal string `json:"internal,omitempty"`
	// Entity is the field naming what a document is about (a product, a
	// hotel); policies filter and boost on it (field "entity").
	Entity string `json:"entity,omitempty"`
	// Metadata maps the metadata fields policies filter and boost on
	// (e.g. product, category) to index fields.
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Boost says how a policy's boosts reach the service. Without it, boost
// values are added to the search text.
type Boost struct {
	// ScoringProfile is the index's scoring profile with tag functions.
	ScoringProfile string `json:"scoring_profile"`
	// Parameters maps the policy's fields (entity, product …) to the
	// tag parameters of the profile's functions, sent as
	// scoringParameters "<parameter>-<value>,<value>".
	Parameters map[string]string `json:"parameters"`
}

// Entra configures Microsoft Entra ID client credentials.
type Entra struct {
	// TenantID is the directory (tenant) id. Required unless token_url
	// is given.
	TenantID string `json:"tenant_id,omitempty"`
	// ClientID is the application (client) id.
	ClientID string `json:"client_id"`
	// ClientSecret is the client secret; use a placeholder such as
	// {env.AZURE_SEARCH_CLIENT_SECRET}.
	ClientSecret string `json:"client_secret"`
	// TokenURL overrides the token endpoint
	// (https://login.microsoftonline.com/<tenant_id>/oauth2/v2.0/token).
	TokenURL string `json:"token_url,omitempty"`
	// Scope is the token scope. Default https://search.azure.com/.default.
	Scope string `json:"scope,omitempty"`
}

var (
	indexNameRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,127}$`)
	fieldNameRE  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,127}(/[A-Za-z][A-Za-z0-9_]{0,127})*$`)
	apiVersionRE = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}(-preview)?$`)
)

// CaddyModule returns the Caddy module information.
func (*AzureSearch) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "llm_gateway.context.azure_search",
		New: func() caddy.Module { return new(AzureSearch) },
	}
}

// Provision resolves placeholders and sets up the client, the
// credentials and the query plan.
func (s *AzureSearch) Provision(ctx caddy.Context) error {
	s.logger = ctx.Logger()
	if err := s.Validate(); err != nil {
		return err
	}
	repl := caddy.NewReplacer()
	resolve := func(name, v string) (string, error) {
		out, err := repl.ReplaceOrErr(v, v != "", true)
		if err != nil {
			return "", fmt.Errorf("azure_search: %s: %v", name, err)
		}
		return strings.TrimSpace(out), nil
	}
	endpoint, err := resolve("endpoint", s.Endpoint)
	if err != nil {
		return err
	}
	u, err := checkURL("endpoint", endpoint)
	if err != nil {
		return err
	}
	version := s.APIVersion
	if version == "" {
		version = DefaultAPIVersion
	}
	s.url = strings.ToLower(u.Scheme+"://"+u.Host) + "/indexes/" + url.PathEscape(s.Index) + "/docs/search?api-version=" + url.QueryEscape(version)
	timeout := time.Duration(s.Timeout)
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	s.c = &client{http: newHTTPClient(), timeout: timeout, sleep: sleepCtx}

	if s.Entra != nil {
		if err := s.provisionEntra(resolve); err != nil {
			return err
		}
	} else {
		key, err := resolve("api_key", s.APIKey)
		if err != nil {
			return err
		}
		if key == "" {
			return errors.New("azure_search: api_key is empty")
		}
		if !strings.Contains(s.APIKey, "{") {
			s.logger.Warn("azure_search api_key is written in the config; use a placeholder such as {env.AZURE_SEARCH_API_KEY}")
		}
		s.creds = keyCreds{key: key}
	}

	s.plan = s.makePlan()
	if (s.plan.queryType == Vector || s.plan.queryType == Hybrid) && s.plan.vectorKind == VectorQueryVector {
		eu, err := resolve("embeddings url", s.Embeddings.URL)
		if err != nil {
			return err
		}
		if _, err := checkURL("embeddings url", eu); err != nil {
			return err
		}
		ek, err := resolve("embeddings api_key", s.Embeddings.APIKey)
		if err != nil {
			return err
		}
		s.emb = newEmbedder(s.Embeddings, eu, ek, s.c)
	}
	tk := s.Tokenizer
	if tk == "" {
		tk = DefaultTokenizer
	}
	if s.enc, err = tokens.ForModel(tk); err != nil {
		return fmt.Errorf("azure_search: tokenizer: %v", err)
	}
	s.logger.Info("azure search index ready", zap.String("endpoint", u.Host), zap.String("index", s.Index),
		zap.String("query_type", s.plan.queryType), zap.Bool("semantic_ranker", s.plan.reranked), zap.Bool("entra", s.Entra != nil))
	return nil
}

func (s *AzureSearch) provisionEntra(resolve func(name, v string) (string, error)) error {
	e := s.Entra
	var vals [5]string
	for i, f := range []struct{ name, val string }{
		{"entra tenant_id", e.TenantID}, {"entra client_id", e.ClientID}, {"entra client_secret", e.ClientSecret},
		{"entra token_url", e.TokenURL}, {"entra scope", e.Scope},
	} {
		v, err := resolve(f.name, f.val)
		if err != nil {
			return err
		}
		vals[i] = v
	}
	tenant, clientID, secret, tokenURL, scope := vals[0], vals[1], vals[2], vals[3], vals[4]
	if clientID == "" || secret == "" {
		return errors.New("azure_search: entra client_id and client_secret are required")
	}
	if tokenURL == "" {
		tokenURL = "https://login.microsoftonline.com/" + url.PathEscape(tenant) + "/oauth2/v2.0/token"
	}
	if _, err := checkURL("entra token_url", tokenURL); err != nil {
		return err
	}
	if scope == "" {
		scope = DefaultScope
	}
	if !strings.Contains(e.ClientSecret, "{") {
		s.logger.Warn("azure_search entra client_secret is written in the config; use a placeholder")
	}
	tokens, key := entra.Shared(tokenURL, clientID, secret, scope, newHTTPClient)
	s.poolKey = key
	s.creds = tokenCreds{ts: tokens}
	return nil
}

// makePlan fills in the defaults of the query shape.
func (s *AzureSearch) makePlan() plan {
	f := s.fields()
	p := plan{
		queryType:     s.QueryType,
		semanticConf:  s.SemanticConfiguration,
		answers:       s.Answers,
		vectorField:   f.Vector,
		vectorKind:    s.VectorQuery,
		k:             s.K,
		internalField: f.Internal,
		numberField:   f.Number,
	}
	if p.queryType == "" {
		p.queryType = Keyword
	}
	if p.vectorKind == "" {
		p.vectorKind = VectorQueryVector
	}
	p.reranked = p.queryType == Semantic || p.queryType == Hybrid && p.semanticConf != ""
	switch {
	case !p.reranked:
		p.answers = ""
	case s.Captions == "":
		p.captions = "extractive"
	case s.Captions != "none":
		p.captions = s.Captions
	}
	if p.k == 0 && p.reranked {
		p.k = DefaultSemanticK
	}
	sel := s.Select
	if len(sel) == 0 {
		for _, n := range []string{f.ID, f.Article, f.Number, f.Title, f.Content, f.URL, f.Internal} {
			if n != "" && !contains(sel, n) {
				sel = append(sel, n)
			}
		}
	}
	p.selectList = strings.Join(sel, ", ")
	return p
}

// fields returns the field mapping with defaults.
func (s *AzureSearch) fields() Fields {
	f := s.Fields
	if f.ID == "" {
		f.ID = "id"
	}
	if f.Title == "" {
		f.Title = "title"
	}
	if f.Content == "" {
		f.Content = "content"
	}
	return f
}

// Validate checks the configuration as written (placeholders unresolved).
func (s *AzureSearch) Validate() error {
	if strings.TrimSpace(s.Endpoint) == "" {
		return errors.New("azure_search: endpoint is required, e.g. https://<service>.search.windows.net")
	}
	if !indexNameRE.MatchString(s.Index) {
		return fmt.Errorf("azure_search: index must be an index name (lower-case letters, digits, dashes), got %q", s.Index)
	}
	if s.APIVersion != "" && !apiVersionRE.MatchString(s.APIVersion) {
		return fmt.Errorf("azure_search: api_version must look like 2024-07-01, got %q", s.APIVersion)
	}
	switch {
	case s.APIKey != "" && s.Entra != nil:
		return errors.New("azure_search: give api_key or entra, not both")
	case s.APIKey == "" && s.Entra == nil:
		return errors.New("azure_search: api_key or entra is required")
	case s.Entra != nil && (s.Entra.ClientID == "" || s.Entra.ClientSecret == ""):
		return errors.New("azure_search: entra client_id and client_secret are required")
	case s.Entra != nil && s.Entra.TenantID == "" && s.Entra.TokenURL == "":
		return errors.New("azure_search: entra tenant_id (or token_url) is required")
	}
	qt := s.QueryType
	switch qt {
	case "", Keyword, Semantic, Vector, Hybrid:
	default:
		return fmt.Errorf("azure_search: query_type must be keyword, semantic, vector or hybrid, got %q", qt)
	}
	if qt == Semantic && s.SemanticConfiguration == "" {
		return errors.New("azure_search: query_type semantic needs semantic_configuration")
	}
	if qt == Vector && s.SemanticConfiguration != "" {
		return errors.New("azure_search: semantic_configuration needs search text: use query_type hybrid for vector search with semantic reranking")
	}
	f := s.fields()
	for name, v := range map[string]string{"id": f.ID, "article": f.Article, "number": f.Number, "title": f.Title,
		"content": f.Content, "url": f.URL, "vector": f.Vector, "internal": f.Internal, "entity": f.Entity} {
		if v != "" && !fieldNameRE.MatchString(v) {
			return fmt.Errorf("azure_search: fields %s: %q is not a field name", name, v)
		}
	}
	for name, v := range f.Metadata {
		if !fieldNameRE.MatchString(v) {
			return fmt.Errorf("azure_search: fields metadata %s: %q is not a field name", name, v)
		}
	}
	if b := s.Boost; b != nil {
		if !fieldNameRE.MatchString(b.ScoringProfile) || len(b.Parameters) == 0 {
			return errors.New("azure_search: boost needs a scoring_profile name and parameters")
		}
		for name, v := range b.Parameters {
			if !fieldNameRE.MatchString(v) {
				return fmt.Errorf("azure_search: boost parameters %s: %q is not a parameter name", name, v)
			}
		}
	}
	for _, v := range s.Select {
		if !fieldNameRE.MatchString(v) {
			return fmt.Errorf("azure_search: select: %q is not a field name", v)
		}
	}
	switch s.VectorQuery {
	case "", VectorQueryVector, VectorQueryText:
	default:
		return fmt.Errorf("azure_search: vector_query must be vector or text, got %q", s.VectorQuery)
	}
	if qt == Vector || qt == Hybrid {
		if f.Vector == "" {
			return fmt.Errorf("azure_search: query_type %s needs fields.vector", qt)
		}
		if s.VectorQuery != VectorQueryText && s.Embeddings == nil {
			return fmt.Errorf("azure_search: query_type %s needs embeddings (or vector_query text when the index has a vectorizer)", qt)
		}
	}
	if e := s.Embeddings; e != nil {
		if e.URL == "" || e.APIKey == "" {
			return errors.New("azure_search: embeddings url and api_key are required")
		}
		if e.Dimensions < 0 {
			return errors.New("azure_search: embeddings dimensions must not be negative")
		}
	}
	if s.K < 0 || s.Timeout < 0 {
		return errors.New("azure_search: k and timeout must not be negative")
	}
	if s.ChunkTokens < 0 || s.ChunkTokens > 0 && s.ChunkTokens < 32 {
		return fmt.Errorf("azure_search: chunk_tokens must be at least 32, got %d", s.ChunkTokens)
	}
	return nil
}

// Cleanup releases this config's hold on a shared token source. Requests
// of the old config still in flight keep their pointer to it.
func (s *AzureSearch) Cleanup() error {
	if s.poolKey == "" {
		return nil
	}
	err := entra.Release(s.poolKey)
	s.poolKey = ""
	return err
}

// checkURL parses a service endpoint (wire.ServiceURL: https, or http to
// loopback only).
func checkURL(name, raw string) (*url.URL, error) {
	u, err := wire.ServiceURL(raw)
	if err != nil {
		return nil, fmt.Errorf("azure_search: %s %v", name, err)
	}
	return u, nil
}

func newHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 32
	t.ResponseHeaderTimeout = 30 * time.Second
	return &http.Client{Transport: t}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Interface guards.
var (
	_ caddy.Module       = (*AzureSearch)(nil)
	_ caddy.Provisioner  = (*AzureSearch)(nil)
	_ caddy.Validator    = (*AzureSearch)(nil)
	_ caddy.CleanerUpper = (*AzureSearch)(nil)
	_ grounding.Index    = (*AzureSearch)(nil)
)
