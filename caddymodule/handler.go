// Package caddymodule holds Groundgate's Caddy HTTP handler, llm_gateway:
// OpenAI- and Azure-shaped ingress, client keys, upstream pools with
// breakers, retries and failover, and SSE streaming.
package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/groundgate/groundgate/budgets"
	"github.com/groundgate/groundgate/console"
	"github.com/groundgate/groundgate/filters"
	"github.com/groundgate/groundgate/grounding"
	"github.com/groundgate/groundgate/post"
	"github.com/groundgate/groundgate/respcache"
	"github.com/groundgate/groundgate/toggles"
	"github.com/groundgate/groundgate/wire"

	// The default budget store.
	_ "github.com/groundgate/groundgate/plugins/stores/memory"
)

func init() {
	caddy.RegisterModule(Gateway{})
}

// Gateway is the llm_gateway HTTP handler. Mount it where OpenAI or Azure
// OpenAI clients send their requests; it answers every request itself:
// the OpenAI routes under /v1, the Azure routes under /openai, and an
// OpenAI-shaped 404 for anything else.
type Gateway struct {
	// Keys are the client keys the gateway accepts, each naming a
	// principal. A request without a known key is refused with 401.
	Keys []KeyConfig `json:"keys,omitempty"`

	// OIDC are token issuers (Microsoft Entra ID or any OpenID Connect
	// provider) whose access tokens clients may present instead of a key.
	OIDC []OIDCConfig `json:"oidc,omitempty"`

	// Models are the model aliases clients may ask for (the `model` field
	// on OpenAI routes, the deployment name on Azure routes), each served
	// by a pool.
	Models []ModelConfig `json:"models,omitempty"`

	// Pools are named groups of upstream deployments.
	Pools []PoolConfig `json:"pools,omitempty"`

	// MaxRequestBody is the largest request body accepted, in bytes;
	// larger bodies get 413. Default: 4 MiB.
	MaxRequestBody int64 `json:"max_request_body,omitempty"`

	// MaxResponseBody bounds a non-streamed upstream response, in bytes.
	// Default: 32 MiB.
	MaxResponseBody int64 `json:"max_response_body,omitempty"`

	// Timeout is the total time allowed to obtain an upstream response,
	// retries and failover included (for streams: until the first
	// token). Default: 120s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// AttemptTimeout bounds one upstream attempt: until its whole body,
	// or for a stream until its first token (a stream that has not sent
	// one by then fails over). Default: 60s.
	AttemptTimeout caddy.Duration `json:"attempt_timeout,omitempty"`

	// StreamIdleTimeout ends a stream whose upstream sends nothing for
	// this long, with an error event for the client. Default: 60s.
	StreamIdleTimeout caddy.Duration `json:"stream_idle_timeout,omitempty"`

	// ClientWriteTimeout bounds each write to the client: one streamed
	// event with its flush, or one 64 KiB piece of a whole body. A client
	// that stops reading for this long is treated as gone: the answer
	// stops and the upstream request is cancelled, releasing its
	// connection. It is reset before every write, so a long stream to a
	// client that keeps reading is never cut. Inside Caddy the server's
	// write_idle_timeout still applies when it is shorter. Default: 30s;
	// a negative value (Caddyfile: off) disables it.
	ClientWriteTimeout caddy.Duration `json:"client_write_timeout,omitempty"`

	// MaxAttempts is the most upstream attempts one request may make,
	// across all deployments of its pool. Default: 3.
	MaxAttempts int `json:"max_attempts,omitempty"`

	// MaxRetryWait is the longest the gateway waits for a throttled
	// deployment's retry-after before giving up with 503. Default: 10s.
	MaxRetryWait caddy.Duration `json:"max_retry_wait,omitempty"`

	// Breaker configures the circuit breaker each deployment has.
	Breaker *BreakerConfig `json:"breaker,omitempty"`

	// Policies are policy files, globs or directories (YAML; see
	// policies/README.md). With policies, a request no policy allows is
	// refused with 403; without, every key may use every model.
	Policies []string `json:"policies,omitempty"`

	// Watch, when set, re-reads the policy files at this interval and
	// swaps in the new policies when their contents change and validate;
	// invalid files are logged and the old policies keep serving.
	Watch caddy.Duration `json:"watch,omitempty"`

	// Store keeps budget counters (rate limits and quotas of policies):
	// a module in the llm_gateway.stores namespace, e.g. {"type":"redis",…}
	// so several gateway instances share budgets. Default: memory.
	StoreRaw json.RawMessage `json:"store,omitempty" caddy:"namespace=llm_gateway.stores inline_key=type"`

	// Context are the record sources and indexes that ground requests,
	// by name (modules in llm_gateway.context: records, local_index,
	// dataverse, azure_search). Policies name them in their context
	// section; one named "default" (or the only one) serves policies that
	// name none.
	ContextRaw map[string]json.RawMessage `json:"context,omitempty" caddy:"namespace=llm_gateway.context inline_key=source"`

	// CacheMaxSize bounds the in-process response cache, in bytes, used
	// when the store cannot cache (memory). Default: 64 MiB.
	CacheMaxSize int64 `json:"cache_max_size,omitempty"`

	// ResponseOwnersMaxSize bounds the in-process record of who created
	// each stored response (Responses API), in bytes, used when the store
	// cannot keep it (memory); a record evicted for room makes its
	// response unreachable through the gateway (404), never reachable by
	// another key. Default: 16 MiB (about 150,000 responses).
	ResponseOwnersMaxSize int64 `json:"response_owners_max_size,omitempty"`

	// Filters are named content filters (modules in llm_gateway.filters:
	// pii, prompt_injection, blocklist, regex) that policies switch on by
	// name in their filters section. They act on the client's messages
	// and on retrieved context.
	FiltersRaw map[string]json.RawMessage `json:"filters,omitempty" caddy:"namespace=llm_gateway.filters inline_key=filter"`

	// Post are named post-processors (llm_gateway.post.citations,
	// llm_gateway.post.append) that policies apply to answers, in the
	// order their post section lists them.
	PostRaw map[string]json.RawMessage `json:"post,omitempty" caddy:"namespace=llm_gateway.post inline_key=post"`

	// Audit records every interaction (principal, policy version,
	// feature, records and articles used, tokens, cost, latency, status)
	// through the llm_gateway.post.audit module: a bounded queue to a JSONL
	// file, SQLite or a Dataverse table, drained on reload and shutdown.
	AuditRaw json.RawMessage `json:"audit,omitempty" caddy:"namespace=llm_gateway.post inline_key=post"`

	// Prices by model alias, in US dollars per million tokens, for the
	// cost of each request (metrics, access logs) and spend budgets.
	Prices map[string]Price `json:"prices,omitempty"`

	// Tracing switches on OpenTelemetry traces (GenAI semantic
	// conventions), exported over OTLP as configured by the OTEL_*
	// environment variables. Absent: no spans.
	Tracing *TracingConfig `json:"tracing,omitempty"`

	// Introspect names the principals (client keys) allowed to call the
	// operator endpoints GET /groundgate/policies and
	// POST /groundgate/explain/{route}. Empty: the endpoints are off.
	Introspect []string `json:"introspect,omitempty"`

	keys       keyring
	tokens     *tokenAuth    // nil: no issuers
	tracer     *sharedTracer // nil: tracing off
	models     map[string]*model
	modelList  []byte // the /v1/models body, built once
	pools      map[string]*pool
	client     *http.Client
	transport  *http.Transport
	logger     *zap.Logger
	held       []func() // releases the usage-pool entries this config holds
	policies   *policyState
	store      budgets.Store
	cache      respcache.Store
	owners     *ownerStore
	audit      post.Recorder
	filters    map[string]filters.Filter
	processors map[string]post.Processor
	prices     map[string]Price

	recordSources map[string]grounding.RecordSource
	indexes       map[string]grounding.Index
	rewriters     map[string]grounding.Rewriter
	// provisioning is false only for the Caddyfile adapter's policy check,
	// which has no sources or filters loaded to resolve names against.
	provisioning bool
	console      *console.Console // nil: no operator keys
	toggles      *toggles.View    // feature toggles overlay (nil: none)
	// logGuard keeps keys out of access logs chosen per request.
	logGuard *logGuard
	// lastWatchErr dedupes the watcher's error logs; only it touches it.
	lastWatchErr string
}

// ModelConfig maps a model alias to the pool that serves it.
type ModelConfig struct {
	// Alias is the name clients send as `model` or as the Azure
	// deployment name.
	Alias string `json:"alias"`
	// Pool names the pool of upstream deployments that serves the alias.
	Pool string `json:"pool"`
	// Tokenizer is the OpenAI model name whose tokenizer counts this
	// alias's tokens (e.g. gpt-4o). Default: the alias itself.
	Tokenizer string `json:"tokenizer,omitempty"`
}

type model struct {
	alias     string
	pool      *pool
	tokenizer string
}

// CaddyModule returns the Caddy module information.
func (Gateway) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.llm_gateway",
		New: func() caddy.Module { return new(Gateway) },
	}
}

// Provision sets up the gateway.
func (g *Gateway) Provision(ctx caddy.Context) error {
	g.logger = ctx.Logger()
	g.provisioning = true
	if g.MaxRequestBody == 0 {
		g.MaxRequestBody = 4 << 20
	}
	if g.MaxResponseBody == 0 {
		g.MaxResponseBody = 32 << 20
	}
	if g.Timeout == 0 {
		g.Timeout = caddy.Duration(120 * time.Second)
	}
	if g.AttemptTimeout == 0 {
		g.AttemptTimeout = caddy.Duration(60 * time.Second)
	}
	if g.StreamIdleTimeout == 0 {
		g.StreamIdleTimeout = caddy.Duration(60 * time.Second)
	}
	if g.ClientWriteTimeout == 0 {
		g.ClientWriteTimeout = caddy.Duration(defaultClientWriteTimeout)
	}
	if g.MaxAttempts == 0 {
		g.MaxAttempts = 3
	}
	if g.MaxRetryWait == 0 {
		g.MaxRetryWait = caddy.Duration(10 * time.Second)
	}
	if g.Breaker == nil {
		g.Breaker = new(BreakerConfig)
	}
	g.Breaker.setDefaults()

	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	var err error
	if g.logGuard, err = checkAccessLogs(ctx); err != nil {
		return err
	}
	if err := checkListenersFree(ctx); err != nil {
		return err
	}
	if g.keys, err = newKeyring(g.Keys); err != nil {
		return err
	}
	if err := g.provisionTokens(); err != nil {
		return err
	}
	g.transport = newTransport()
	g.client = &http.Client{Transport: g.transport}
	if err := g.provisionPools(); err != nil {
		return err
	}
	if err := g.provisionModels(); err != nil {
		return err
	}
	if err := g.provisionPrices(); err != nil {
		return err
	}
	if g.StoreRaw == nil {
		g.StoreRaw = json.RawMessage(`{"type":"memory"}`)
	}
	mod, err := ctx.LoadModule(g, "StoreRaw")
	if err != nil {
		return fmt.Errorf("loading budget store: %v", err)
	}
	var ok bool
	if g.store, ok = mod.(budgets.Store); !ok {
		return fmt.Errorf("module %T is not a budget store", mod)
	}
	if err := g.provisionCache(); err != nil {
		return err
	}
	if err := g.provisionOwners(); err != nil {
		return err
	}
	if err := g.provisionFilters(ctx); err != nil {
		return err
	}
	if err := g.provisionPost(ctx); err != nil {
		return err
	}
	if err := g.provisionAudit(ctx); err != nil {
		return err
	}
	if err := g.provisionContext(ctx); err != nil {
		return err
	}
	if err := g.provisionTracing(); err != nil {
		return err
	}
	if err := g.provisionPolicies(ctx); err != nil {
		return err
	}
	return g.provisionConsole()
}

func (g *Gateway) provisionModels() error {
	g.models = make(map[string]*model, len(g.Models))
	for i, mc := range g.Models {
		if mc.Alias == "" {
			return fmt.Errorf("models[%d]: alias is required", i)
		}
		if _, dup := g.models[mc.Alias]; dup {
			return fmt.Errorf("model %q is defined twice", mc.Alias)
		}
		p, ok := g.pools[mc.Pool]
		if !ok {
			return fmt.Errorf("model %q: unknown pool %q", mc.Alias, mc.Pool)
		}
		tok := mc.Tokenizer
		if tok == "" {
			tok = mc.Alias
		}
		g.models[mc.Alias] = &model{alias: mc.Alias, pool: p, tokenizer: tok}
	}
	g.modelList = buildModelList(g.Models)
	return nil
}

// Validate checks the configuration once provisioned.
func (g *Gateway) Validate() error {
	if len(g.Models) == 0 {
		return fmt.Errorf("llm_gateway: at least one model is required")
	}
	if g.MaxAttempts < 1 {
		return fmt.Errorf("llm_gateway: max_attempts must be at least 1")
	}
	return nil
}

// Cleanup releases what this config instance holds. In-flight streams of
// the old config keep their connections: idle ones only are closed, and
// shared upstream state stays until the last config using it is gone.
func (g *Gateway) Cleanup() error {
	for _, release := range g.held {
		release()
	}
	if g.transport != nil {
		g.transport.CloseIdleConnections()
	}
	return nil
}

// ServeHTTP answers the request; it never calls next.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if g.console != nil && console.Owns(r.URL.Path) {
		g.logGuard.skipUnsafe(r, g.logger)
		g.console.ServeHTTP(w, r)
		return nil
	}
	ex := g.newExchange(w, r)
	err := g.serve(ex)
	if err != nil {
		ex.fail(err)
	}
	ex.finish()
	// The server flushes what is still buffered after the handler
	// returns; finish may have taken longer than the last write's deadline.
	ex.armFinalWrite()
	return nil
}

func (g *Gateway) serve(ex *exchange) error {
	g.logGuard.skipUnsafe(ex.r, g.logger)
	rt, err := matchRoute(ex.r)
	if err != nil {
		return err
	}
	ex.route = rt
	if ex.principal, err = g.authenticate(ex.r); err != nil {
		return err
	}
	switch rt.op {
	case opModels:
		return g.serveModels(ex)
	case opChat:
		return g.serveModel(ex, chatAPI{})
	case opEmbeddings:
		return g.serveModel(ex, embeddingsAPI{})
	case opResponses:
		return g.serveModel(ex, responsesAPI{})
	case opStoredResponse:
		return g.serveStoredResponse(ex)
	case opTokenCounter:
		return g.serveTokenCounter(ex)
	case opPolicies:
		return g.servePolicies(ex)
	case opExplain:
		return g.serveExplain(ex)
	}
	return wire.BadRequest("", "", "unsupported operation")
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Gateway)(nil)
	_ caddy.Validator             = (*Gateway)(nil)
	_ caddy.CleanerUpper          = (*Gateway)(nil)
	_ caddyhttp.MiddlewareHandler = (*Gateway)(nil)
)
