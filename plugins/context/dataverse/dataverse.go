// Package dataverse is the llm_gateway.context.dataverse module: CRM
// records (cases, contacts, accounts, notes) and knowledge articles read
// from Microsoft Dataverse through its Web API (OData v4), authenticated
// with a Microsoft Entra ID client-credentials token, plus Dataverse
// search as a knowledge index.
//
// It implements grounding.RecordSource (Lookup), grounding.ArticleSource
// (Articles, e.g. for a local_index's articles_from) and, with search on,
// grounding.Index (Search).
//
// JSON config:
//
//	{
//	  "source": "dataverse",
//	  "url": "https://contoso.crm.dynamics.com",
//	  "tenant_id": "{env.AZURE_TENANT_ID}",
//	  "client_id": "{env.DATAVERSE_CLIENT_ID}",
//	  "client_secret": "{env.DATAVERSE_CLIENT_SECRET}",
//	  "timeout": "5s",
//	  "page_size": 50,
//	  "select": {"incident": ["title", "ticketnumber", "description", "statecode", "prioritycode"]},
//	  "search": {"enabled": true}
//	}
//
// Security: record keys come from user text. They reach $filter only as
// OData literals (text in single quotes with quotes doubled, GUIDs checked
// and written bare) compared with columns from a per-table allow-list, so
// a key cannot change a query. The client secret and the tokens never
// appear in errors or logs; @odata.nextLink is followed only within the
// environment, so the token is never sent elsewhere.
package dataverse

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
	caddy.RegisterModule(new(Dataverse))
}

// Defaults.
const (
	DefaultAPIVersion = "v9.2"
	DefaultTimeout    = 5 * time.Second
	DefaultPageSize   = 50
	DefaultMaxPages   = 100
	DefaultTokenizer  = "gpt-4o"
	// maxPageSize is Dataverse's limit on odata.maxpagesize.
	maxPageSize = 5000
)

// Dataverse is the llm_gateway.context.dataverse module.
type Dataverse struct {
	// URL is the environment URL, e.g. https://contoso.crm.dynamics.com
	// (https; plain http only for loopback test servers). Placeholders
	// are resolved.
	URL string `json:"url"`
	// APIVersion is the Web API version in /api/data/<version>/.
	// Default v9.2.
	APIVersion string `json:"api_version,omitempty"`
	// TenantID is the Microsoft Entra ID tenant (directory) id; the token
	// endpoint is https://login.microsoftonline.com/<tenant_id>/oauth2/v2.0/token.
	// Required unless token_url is given.
	TenantID string `json:"tenant_id,omitempty"`
	// ClientID is the application (client) id of the app registration
	// that is an application user in the environment.
	ClientID string `json:"client_id"`
	// ClientSecret is the app's client secret. Write a placeholder such
	// as {env.DATAVERSE_CLIENT_SECRET}; it is resolved at provision time
	// and never logged.
	ClientSecret string `json:"client_secret"`
	// TokenURL overrides the token endpoint (tests, sovereign clouds).
	TokenURL string `json:"token_url,omitempty"`
	// Scope is the token scope. Default <url>/.default.
	Scope string `json:"scope,omitempty"`
	// Timeout bounds one Web API request, retries after 429 and 5xx
	// included. Default 5s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// PageSize is the odata.maxpagesize asked for (1-5000). Default 50.
	PageSize int `json:"page_size,omitempty"`
	// MaxPages caps the pages (@odata.nextLink) followed for one query.
	// Default 100.
	MaxPages int `json:"max_pages,omitempty"`
	// Select maps a table (incident, contact, account, knowledgearticle,
	// annotation) to the columns that reach the model, as logical names;
	// lookups by name (customerid) or as _customerid_value. Tables not
	// listed use the defaults: incident description, statecode,
	// statuscode, prioritycode, casetypecode, customerid,
	// primarycontactid, createdon; contact emailaddress1, telephone1,
	// address1_city, parentcustomerid; account emailaddress1,
	// telephone1, address1_city, address1_country, primarycontactid;
	// knowledgearticle description, keywords, content; annotation
	// notetext, createdon, objectid. The primary key, name and number
	// are always read and become the record's ID, Title and Number.
	Select map[string][]string `json:"select,omitempty"`
	// ArticleURL is the link given to knowledge articles, with {id} and
	// {number} replaced by the article's id and public number, e.g.
	// https://support.contoso.com/kb/{number}. Default: none.
	ArticleURL string `json:"article_url,omitempty"`
	// SearchConfig configures Dataverse search as a knowledge index
	// (grounding.Index). Off when absent.
	SearchConfig *SearchConfig `json:"search,omitempty"`

	c       *client
	poolKey string
	cols    map[string][]column // per table: the columns that reach the model
	selects map[string]string   // per table: the $select of a lookup
	search  *searcher
	logger  *zap.Logger
}

// SearchConfig configures Dataverse search (POST /api/search/v2.0/query).
// Dataverse search must be turned on in the environment, with the
// knowledgearticle table in it.
type SearchConfig struct {
	// Enabled turns search on.
	Enabled bool `json:"enabled,omitempty"`
	// Entities are the tables searched. Default and, for now, only
	// knowledgearticle: search results are not checked against a
	// principal's record scope, so only public tables may be searched.
	Entities []string `json:"entities,omitempty"`
	// SearchColumns are the knowledgearticle columns searched. Default
	// title, keywords, description, content.
	SearchColumns []string `json:"search_columns,omitempty"`
	// ChunkTokens caps the tokens of one chunk of an article. Default 400.
	ChunkTokens int `json:"chunk_tokens,omitempty"`
	// Tokenizer is the model whose tokenizer counts chunk tokens.
	// Default gpt-4o.
	Tokenizer string `json:"tokenizer,omitempty"`
	// MatchColumns maps the fields policies filter and boost articles by
	// (entity, product, category …) to knowledgearticle columns, as
	// Dynamics 365's knowledge filters do (e.g. {"product":
	// "msdyn_productname"}). Filters become search filter clauses;
	// boosts put their values in front of the search text.
	MatchColumns map[string]string `json:"match_columns,omitempty"`
}

// DefaultSearchColumns are the columns searched when none are configured.
var DefaultSearchColumns = []string{"title", "keywords", "description", "content"}

var apiVersionRE = regexp.MustCompile(`^v[0-9]+\.[0-9]+$`)

// CaddyModule returns the Caddy module information.
func (*Dataverse) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "llm_gateway.context.dataverse",
		New: func() caddy.Module { return new(Dataverse) },
	}
}

// Provision resolves placeholders, checks the configuration and sets up
// the HTTP client and the shared token source.
func (d *Dataverse) Provision(ctx caddy.Context) error {
	d.logger = ctx.Logger()
	if err := d.Validate(); err != nil {
		return err
	}
	repl := caddy.NewReplacer()
	var vals [6]string
	for i, f := range []struct{ name, val string }{
		{"url", d.URL}, {"tenant_id", d.TenantID}, {"client_id", d.ClientID},
		{"client_secret", d.ClientSecret}, {"token_url", d.TokenURL}, {"scope", d.Scope},
	} {
		v, err := repl.ReplaceOrErr(f.val, f.val != "", true)
		if err != nil {
			return fmt.Errorf("dataverse: %s: %v", f.name, err)
		}
		vals[i] = strings.TrimSpace(v)
	}
	envURL, tenant, clientID, secret, tokenURL, scope := vals[0], vals[1], vals[2], vals[3], vals[4], vals[5]
	env, err := checkURL("url", envURL)
	if err != nil {
		return err
	}
	if env.Path != "" && env.Path != "/" || env.RawQuery != "" || env.Fragment != "" {
		return fmt.Errorf("dataverse: url must be the environment URL alone, like https://contoso.crm.dynamics.com (got a path or query)")
	}
	base := strings.ToLower(env.Scheme + "://" + env.Host)
	if clientID == "" || secret == "" {
		return errors.New("dataverse: client_id and client_secret are required")
	}
	if tokenURL == "" {
		if tenant == "" {
			return errors.New("dataverse: tenant_id (or token_url) is required")
		}
		tokenURL = "https://login.microsoftonline.com/" + url.PathEscape(tenant) + "/oauth2/v2.0/token"
	}
	if _, err := checkURL("token_url", tokenURL); err != nil {
		return err
	}
	if scope == "" {
		scope = base + "/.default"
	}
	if !strings.Contains(d.ClientSecret, "{") {
		d.logger.Warn("dataverse client_secret is written in the config; use a placeholder such as {env.DATAVERSE_CLIENT_SECRET}")
	}

	version := d.APIVersion
	if version == "" {
		version = DefaultAPIVersion
	}
	timeout := time.Duration(d.Timeout)
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	pageSize, maxPages := d.PageSize, d.MaxPages
	if pageSize == 0 {
		pageSize = DefaultPageSize
	}
	if maxPages == 0 {
		maxPages = DefaultMaxPages
	}
	if err := d.setColumns(); err != nil {
		return err
	}
	if s := d.SearchConfig; s != nil && s.Enabled {
		tk := s.Tokenizer
		if tk == "" {
			tk = DefaultTokenizer
		}
		enc, err := tokens.ForModel(tk)
		if err != nil {
			return fmt.Errorf("dataverse: search tokenizer: %v", err)
		}
		d.search = &searcher{enc: enc, chunkTokens: s.ChunkTokens, entities: s.Entities, columns: s.SearchColumns, match: s.MatchColumns}
		if d.search.chunkTokens == 0 {
			d.search.chunkTokens = grounding.DefaultChunkTokens
		}
		if len(d.search.entities) == 0 {
			d.search.entities = []string{grounding.EntityKnowledgeArticle}
		}
		if len(d.search.columns) == 0 {
			d.search.columns = DefaultSearchColumns
		}
	}

	httpClient := newHTTPClient()
	tokens, key := entra.Shared(tokenURL, clientID, secret, scope, newHTTPClient)
	d.poolKey = key
	d.c = &client{
		env:      base,
		api:      base + "/api/data/" + version + "/",
		origin:   base,
		http:     httpClient,
		tokens:   tokens,
		timeout:  timeout,
		pageSize: pageSize,
		maxPages: maxPages,
		sleep:    sleepCtx,
	}
	d.logger.Info("dataverse source ready", zap.String("url", base), zap.String("api_version", version),
		zap.String("client_id", clientID), zap.Bool("search", d.search != nil))
	return nil
}

// setColumns works out, per table, the columns that reach the model and
// the $select of a lookup: those columns plus the primary key, name and
// number, the owner and related lookups, and every key column.
func (d *Dataverse) setColumns() error {
	d.cols = map[string][]column{}
	d.selects = map[string]string{}
	for _, name := range grounding.KnownEntities {
		info := entities[name]
		names, ok := d.Select[name]
		if !ok {
			names = info.defaults
		}
		cols, err := info.columns(names)
		if err != nil {
			return fmt.Errorf("dataverse: %v", err)
		}
		d.cols[name] = cols
		var sel []string
		seen := map[string]bool{}
		add := func(p string) {
			if p != "" && !seen[p] {
				seen[p] = true
				sel = append(sel, p)
			}
		}
		add(info.pk)
		add(info.title)
		add(info.number)
		for _, c := range cols {
			add(c.prop)
		}
		for _, c := range info.ownerCols {
			add(c)
		}
		for _, l := range info.related {
			add("_" + l + "_value")
		}
		for _, k := range info.keys {
			add(k)
		}
		for _, l := range info.keyLookups {
			add("_" + l + "_value")
		}
		d.selects[name] = strings.Join(sel, ",")
	}
	return nil
}

// Validate checks the configuration as written (placeholders unresolved).
func (d *Dataverse) Validate() error {
	if strings.TrimSpace(d.URL) == "" {
		return errors.New("dataverse: url is required, e.g. https://contoso.crm.dynamics.com")
	}
	if d.APIVersion != "" && !apiVersionRE.MatchString(d.APIVersion) {
		return fmt.Errorf("dataverse: api_version must look like v9.2, got %q", d.APIVersion)
	}
	if d.ClientID == "" || d.ClientSecret == "" {
		return errors.New("dataverse: client_id and client_secret are required")
	}
	if d.TenantID == "" && d.TokenURL == "" {
		return errors.New("dataverse: tenant_id (or token_url) is required")
	}
	if d.Timeout < 0 {
		return fmt.Errorf("dataverse: timeout must not be negative, got %s", time.Duration(d.Timeout))
	}
	if d.PageSize < 0 || d.PageSize > maxPageSize {
		return fmt.Errorf("dataverse: page_size must be between 1 and %d, got %d", maxPageSize, d.PageSize)
	}
	if d.MaxPages < 0 {
		return fmt.Errorf("dataverse: max_pages must not be negative, got %d", d.MaxPages)
	}
	for e, cols := range d.Select {
		info := entities[e]
		if info == nil {
			return fmt.Errorf("dataverse: select: unknown table %q (known: %s)", e, strings.Join(grounding.KnownEntities, ", "))
		}
		if _, err := info.columns(cols); err != nil {
			return fmt.Errorf("dataverse: %v", err)
		}
	}
	if s := d.SearchConfig; s != nil {
		for _, e := range s.Entities {
			if e != grounding.EntityKnowledgeArticle {
				return fmt.Errorf("dataverse: search: table %q cannot be searched: search results are not checked against record scopes, so only knowledgearticle may be searched", e)
			}
		}
		for _, c := range s.SearchColumns {
			if !isColumnName(c) {
				return fmt.Errorf("dataverse: search: %q is not a column name", c)
			}
		}
		for f, c := range s.MatchColumns {
			if !isColumnName(c) {
				return fmt.Errorf("dataverse: search: match_columns %s: %q is not a column name", f, c)
			}
		}
		if s.ChunkTokens < 0 || s.ChunkTokens > 0 && s.ChunkTokens < 32 {
			return fmt.Errorf("dataverse: search: chunk_tokens must be at least 32, got %d", s.ChunkTokens)
		}
	}
	return nil
}

// Cleanup releases this config's hold on the shared token source.
// Requests of the old config still in flight keep their pointer to it.
func (d *Dataverse) Cleanup() error {
	if d.poolKey == "" {
		return nil
	}
	err := entra.Release(d.poolKey)
	d.poolKey = ""
	return err
}

// SearchEnabled reports whether Search works (search on).
func (d *Dataverse) SearchEnabled() bool { return d.search != nil }

// checkURL parses a service endpoint (wire.ServiceURL: https, or http to
// loopback only).
func checkURL(name, raw string) (*url.URL, error) {
	u, err := wire.ServiceURL(raw)
	if err != nil {
		return nil, fmt.Errorf("dataverse: %s %v", name, err)
	}
	return u, nil
}

// newHTTPClient returns a client with keep-alive pools sized for a
// gateway; deadlines come from the request contexts.
func newHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 32
	t.ResponseHeaderTimeout = 30 * time.Second
	return &http.Client{Transport: t}
}

// Interface guards.
var (
	_ caddy.Module            = (*Dataverse)(nil)
	_ caddy.Provisioner       = (*Dataverse)(nil)
	_ caddy.Validator         = (*Dataverse)(nil)
	_ caddy.CleanerUpper      = (*Dataverse)(nil)
	_ grounding.RecordSource  = (*Dataverse)(nil)
	_ grounding.ArticleSource = (*Dataverse)(nil)
	_ grounding.Index         = (*Dataverse)(nil)
)
