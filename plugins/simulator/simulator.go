package simulator

import (
	"crypto/subtle"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/groundgate/groundgate/tokens"
)

func init() {
	caddy.RegisterModule(new(Simulator))
}

// Simulator is a terminal HTTP handler that answers like an Azure OpenAI
// resource (and like an OpenAI-compatible API): chat completions, streamed
// or not, embeddings and the models list, with Azure's exact headers,
// content-filter annotations and error bodies. Answers are deterministic
// functions of the request; faults, latency and rate limits are injected
// from the configuration or from directives in the prompt.
type Simulator struct {
	// Deployments this resource exposes. A request for any other
	// deployment gets Azure's 404 DeploymentNotFound. When empty, every
	// deployment name is accepted and used as the model name.
	Deployments []Deployment `json:"deployments,omitempty"`

	// API keys accepted in the `api-key` header or as
	// `Authorization: Bearer <key>`. Placeholders such as {env.SIM_KEY}
	// are resolved at provision time. When empty, any non-empty key is
	// accepted; a request without a key always gets Azure's 401.
	APIKeys []string `json:"api_keys,omitempty"`

	// Latency waited before the response headers of every chat or
	// embeddings request that passed validation. Default: 0.
	Latency caddy.Duration `json:"latency,omitempty"`

	// Time between the prompt-annotation event and the first content
	// chunk of a streamed completion. Default: 0.
	TimeToFirstToken caddy.Duration `json:"time_to_first_token,omitempty"`

	// Pace of streamed content chunks, in tokens (chunks) per second.
	// 0 (the default) streams as fast as the connection allows.
	TokensPerSecond float64 `json:"tokens_per_second,omitempty"`

	// Fraction (0..1) of requests answered with Azure's 500
	// InternalServerError.
	ErrorRate float64 `json:"error_rate,omitempty"`

	// Fraction (0..1) of requests answered with a 429 and retry hints,
	// independently of the rate limiter.
	RateLimitRate float64 `json:"rate_limit_rate,omitempty"`

	// Fraction (0..1) of streamed completions whose connection is cut
	// abruptly after a random number of content chunks (no [DONE]).
	DropRate float64 `json:"drop_rate,omitempty"`

	// Wait suggested by injected 429 and 503 responses in the
	// `retry-after` (seconds, rounded up) and `retry-after-ms` headers.
	// Default: 1s. Rate-limiter 429s report the real time until the
	// window resets instead.
	RetryAfter caddy.Duration `json:"retry_after,omitempty"`

	// Tokens (prompt + completion) admitted per deployment per 60-second
	// window; beyond it, 429 with Azure's "token rate limit" message.
	// 0 = unlimited.
	TokensPerMinute int64 `json:"tokens_per_minute,omitempty"`

	// Requests admitted per deployment per 60-second window; beyond it,
	// 429 with Azure's "call rate limit" message. 0 = unlimited.
	RequestsPerMinute int64 `json:"requests_per_minute,omitempty"`

	// Terms (case-insensitive substrings) that make a prompt fail with
	// Azure's 400 content_filter error.
	BlockedTerms []string `json:"blocked_terms,omitempty"`

	// Terms (case-insensitive substrings) that make an answer filtered:
	// finish_reason "content_filter" and no content (non-streamed), or a
	// stream that stops with a content_filter annotation chunk.
	BlockedOutputTerms []string `json:"blocked_output_terms,omitempty"`

	// Category under which blocked terms are reported: hate, self_harm,
	// sexual or violence (default).
	FilterCategory string `json:"filter_category,omitempty"`

	// Emulate Azure's "Asynchronous Filter" streaming mode: content chunks
	// carry no content_filter_results and annotation-only chunks with
	// content_filter_offsets (and an empty id) follow the content.
	AsyncFilter bool `json:"async_filter,omitempty"`

	// Seed of the handler's random source (ids, injected faults), for
	// reproducible tests. Default: random.
	Seed *uint64 `json:"seed,omitempty"`

	// Value of the x-ms-region response header. Default: "Simulated".
	Region string `json:"region,omitempty"`

	// Largest accepted request body, in bytes; larger bodies get a 413.
	// Default: 16 MiB.
	MaxRequestBodySize int64 `json:"max_request_body_size,omitempty"`

	seed          uint64
	seq           atomic.Uint64
	keys          [][]byte
	deployments   map[string]*deployment
	dynamic       sync.Map // name → *deployment, when Deployments is empty
	dynamicCount  atomic.Int64
	blocked       []string
	blockedOutput []string
	retryAfter    time.Duration
	now           func() time.Time
	logger        *zap.Logger
	responses     responseStore
}

// Deployment is one model deployment of the simulated resource.
type Deployment struct {
	// Deployment name, as used in /openai/deployments/{name}/… and in the
	// `model` field of OpenAI-shaped requests.
	Name string `json:"name"`

	// Model reported in responses and used to pick the tokenizer, e.g.
	// "gpt-4o-2024-08-06". Default: the deployment name.
	Model string `json:"model,omitempty"`

	// Default embedding dimension for embeddings deployments. Default:
	// 3072 for models whose name contains "3-large", else 1536.
	Dimensions int `json:"dimensions,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (*Simulator) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.aoai_simulator",
		New: func() caddy.Module { return new(Simulator) },
	}
}

const (
	defaultRegion      = "Simulated"
	defaultMaxBodySize = 16 << 20
	defaultRetryAfter  = time.Second
	// maxDynamicDeployments bounds the cache of deployments created on the
	// fly when none are configured.
	maxDynamicDeployments = 1024
)

// Provision sets up the handler.
func (h *Simulator) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.now == nil {
		h.now = time.Now
	}
	if h.Seed != nil {
		h.seed = *h.Seed
	} else {
		h.seed = rand.Uint64()
	}
	if h.Region == "" {
		h.Region = defaultRegion
	}
	if h.MaxRequestBodySize == 0 {
		h.MaxRequestBodySize = defaultMaxBodySize
	}
	if h.FilterCategory == "" {
		h.FilterCategory = "violence"
	}
	h.retryAfter = time.Duration(h.RetryAfter)
	if h.retryAfter <= 0 {
		h.retryAfter = defaultRetryAfter
	}

	repl := caddy.NewReplacer()
	h.keys = h.keys[:0]
	for i, k := range h.APIKeys {
		v := repl.ReplaceKnown(k, "")
		if v == "" {
			return fmt.Errorf("api_keys[%d] (%q) is empty after placeholder replacement", i, k)
		}
		h.keys = append(h.keys, []byte(v))
	}

	h.blocked = lowerAll(h.BlockedTerms)
	h.blockedOutput = lowerAll(h.BlockedOutputTerms)

	h.deployments = make(map[string]*deployment, len(h.Deployments))
	for _, d := range h.Deployments {
		if d.Name == "" {
			return fmt.Errorf("deployment without a name")
		}
		if _, dup := h.deployments[d.Name]; dup {
			return fmt.Errorf("deployment %q declared twice", d.Name)
		}
		dep, err := newDeployment(d)
		if err != nil {
			return err
		}
		h.deployments[d.Name] = dep
	}
	return nil
}

// Validate checks the configuration.
func (h *Simulator) Validate() error {
	for name, v := range map[string]float64{"error_rate": h.ErrorRate, "rate_limit_rate": h.RateLimitRate, "drop_rate": h.DropRate} {
		if v < 0 || v > 1 || v != v {
			return fmt.Errorf("%s must be between 0 and 1, got %v", name, v)
		}
	}
	if h.TokensPerSecond < 0 || h.TokensPerSecond != h.TokensPerSecond {
		return fmt.Errorf("tokens_per_second must be >= 0, got %v", h.TokensPerSecond)
	}
	if h.Latency < 0 || h.TimeToFirstToken < 0 || h.RetryAfter < 0 {
		return fmt.Errorf("latency, time_to_first_token and retry_after must not be negative")
	}
	if h.TokensPerMinute < 0 || h.RequestsPerMinute < 0 {
		return fmt.Errorf("tokens_per_minute and requests_per_minute must not be negative")
	}
	if h.MaxRequestBodySize < 0 {
		return fmt.Errorf("max_request_body_size must not be negative")
	}
	if !validFilterCategory(h.FilterCategory) {
		return fmt.Errorf("filter_category must be one of %s, got %q", strings.Join(filterCategories, ", "), h.FilterCategory)
	}
	for _, d := range h.Deployments {
		if d.Dimensions < 0 || d.Dimensions > maxDimensions {
			return fmt.Errorf("deployment %q: dimensions must be between 1 and %d", d.Name, maxDimensions)
		}
	}
	return nil
}

func lowerAll(in []string) []string {
	var out []string
	for _, s := range in {
		if s = strings.ToLower(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// deployment is a provisioned Deployment.
type deployment struct {
	name        string
	model       string
	enc         *tokens.Encoder
	fingerprint string
	dimensions  int
	embeddings  bool // an embeddings model: chat is not supported
	window      window
}

func newDeployment(d Deployment) (*deployment, error) {
	model := d.Model
	if model == "" {
		model = d.Name
	}
	enc, err := encoderFor(model, d.Name)
	if err != nil {
		return nil, fmt.Errorf("deployment %q: %v", d.Name, err)
	}
	dims := d.Dimensions
	if dims == 0 {
		dims = 1536
		if strings.Contains(model, "3-large") {
			dims = 3072
		}
	}
	return &deployment{
		name:        d.Name,
		model:       model,
		enc:         enc,
		fingerprint: fingerprintFor(model),
		dimensions:  dims,
		embeddings:  strings.Contains(strings.ToLower(model), "embedding"),
	}, nil
}

// encoderFor picks the tokenizer for a model, trying the model name, then
// the deployment name, then gpt-4o's (o200k_base) as a fallback so that a
// model the tokens package does not know still works.
func encoderFor(names ...string) (*tokens.Encoder, error) {
	for _, n := range names {
		if enc, err := tokens.ForModel(n); err == nil {
			return enc, nil
		}
	}
	return tokens.ForModel("gpt-4o")
}

// fingerprintFor returns a stable system_fingerprint ("fp_" + 10 hex).
func fingerprintFor(model string) string {
	h := fnv64(model)
	b := make([]byte, 0, 13)
	b = append(b, "fp_"...)
	for i := 0; i < 10; i++ {
		b = append(b, hexDigits[h>>(60-4*i)&0xf])
	}
	return string(b)
}

// lookup returns the deployment called name, or nil.
func (h *Simulator) lookup(name string) *deployment {
	if name == "" {
		return nil
	}
	if len(h.Deployments) > 0 {
		return h.deployments[name]
	}
	if d, ok := h.dynamic.Load(name); ok {
		return d.(*deployment)
	}
	dep, err := newDeployment(Deployment{Name: name})
	if err != nil {
		return nil
	}
	if h.dynamicCount.Load() >= maxDynamicDeployments {
		return dep // not cached: its rate-limit window is not shared
	}
	if d, loaded := h.dynamic.LoadOrStore(name, dep); loaded {
		return d.(*deployment)
	}
	h.dynamicCount.Add(1)
	return dep
}

// ServeHTTP routes the request. The simulator is terminal: it never calls
// next.
func (h *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	var rng rand.PCG
	rng.Seed(h.seed, h.seq.Add(1))
	setCommonHeaders(w.Header(), r, &rng, h.Region)

	path := r.URL.Path
	apiVersion := queryValue(r.URL.RawQuery, "api-version")
	switch {
	case strings.HasPrefix(path, "/openai/deployments/"):
		rest := path[len("/openai/deployments/"):]
		slash := strings.IndexByte(rest, '/')
		if slash <= 0 || r.Method != http.MethodPost || apiVersion == "" {
			break
		}
		name, op := rest[:slash], rest[slash:]
		if op != "/chat/completions" && op != "/embeddings" {
			break
		}
		if !h.authorized(r) {
			writeJSON(w, http.StatusUnauthorized, bodyUnauthorized)
			return nil
		}
		dep := h.lookup(name)
		if dep == nil {
			writeJSON(w, http.StatusNotFound, bodyDeploymentNotFound)
			return nil
		}
		if op == "/embeddings" {
			return h.serveEmbeddings(w, r, dep, apiVersion, &rng)
		}
		return h.serveChat(w, r, dep, apiVersion, &rng)

	case path == "/openai/v1/chat/completions" || path == "/v1/chat/completions" ||
		path == "/openai/v1/embeddings" || path == "/v1/embeddings":
		if r.Method != http.MethodPost {
			break
		}
		if !h.authorized(r) {
			writeJSON(w, http.StatusUnauthorized, bodyUnauthorized)
			return nil
		}
		if apiVersion == "" {
			apiVersion = "v1"
		}
		if strings.HasSuffix(path, "/embeddings") {
			return h.serveEmbeddings(w, r, nil, apiVersion, &rng)
		}
		return h.serveChat(w, r, nil, apiVersion, &rng)

	case path == "/openai/v1/responses" || path == "/v1/responses" || (path == "/openai/responses" && apiVersion != ""):
		if r.Method != http.MethodPost {
			break
		}
		if !h.authorized(r) {
			writeJSON(w, http.StatusUnauthorized, bodyUnauthorized)
			return nil
		}
		if apiVersion == "" {
			apiVersion = "v1"
		}
		return h.serveResponses(w, r, apiVersion, &rng)

	case strings.HasPrefix(path, "/openai/v1/responses/") || strings.HasPrefix(path, "/v1/responses/") ||
		(strings.HasPrefix(path, "/openai/responses/") && apiVersion != ""):
		if !h.authorized(r) {
			writeJSON(w, http.StatusUnauthorized, bodyUnauthorized)
			return nil
		}
		return h.serveStoredResponse(w, r, path[strings.Index(path, "/responses/")+len("/responses/"):])

	case path == "/openai/v1/models" || path == "/v1/models" || (path == "/openai/models" && apiVersion != ""):
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			break
		}
		if !h.authorized(r) {
			writeJSON(w, http.StatusUnauthorized, bodyUnauthorized)
			return nil
		}
		h.serveModels(w)
		return nil
	}
	writeJSON(w, http.StatusNotFound, bodyResourceNotFound)
	return nil
}

// queryValue returns the first value of key in a raw query string without
// building the url.Values map.
func queryValue(raw, key string) string {
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(part, "=")
		if k != key {
			continue
		}
		if strings.ContainsAny(v, "%+") {
			if u, err := url.QueryUnescape(v); err == nil {
				return u
			}
		}
		return v
	}
	return ""
}

// authorized checks the api-key header or the bearer token.
func (h *Simulator) authorized(r *http.Request) bool {
	key := r.Header.Get("api-key")
	if key == "" {
		auth := r.Header.Get("Authorization")
		if len(auth) > 7 && strings.EqualFold(auth[:7], "bearer ") {
			key = strings.TrimSpace(auth[7:])
		}
	}
	if key == "" {
		return false
	}
	if len(h.keys) == 0 {
		return true
	}
	ok := 0
	for _, k := range h.keys {
		ok |= subtle.ConstantTimeCompare([]byte(key), k)
	}
	return ok == 1
}

// setCommonHeaders sets the request-id headers Azure sends on every
// response.
func setCommonHeaders(hdr http.Header, r *http.Request, rng *rand.PCG, region string) {
	apim := newUUID(rng)
	hdr["Apim-Request-Id"] = []string{apim}
	hdr["X-Request-Id"] = []string{newUUID(rng)}
	if c := r.Header.Get("x-ms-client-request-id"); c != "" && len(c) <= 256 {
		hdr["X-Ms-Client-Request-Id"] = []string{c}
	} else {
		hdr["X-Ms-Client-Request-Id"] = []string{apim}
	}
	hdr["X-Ms-Region"] = []string{region}
}

// Interface guards
var (
	_ caddy.Module                = (*Simulator)(nil)
	_ caddy.Provisioner           = (*Simulator)(nil)
	_ caddy.Validator             = (*Simulator)(nil)
	_ caddyhttp.MiddlewareHandler = (*Simulator)(nil)
)
