package caddymodule

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/sony/gobreaker/v2"
)

// PoolConfig is a named group of upstream deployments that serve the same
// model. Requests go to the lowest priority number first, spread by
// weight among equals, and fail over to the next on errors.
type PoolConfig struct {
	// Name identifies the pool; models refer to it.
	Name string `json:"name"`
	// Upstreams are the pool's deployments.
	Upstreams []UpstreamConfig `json:"upstreams"`
}

// UpstreamConfig is one Azure OpenAI deployment or OpenAI-compatible
// endpoint.
type UpstreamConfig struct {
	// Name identifies the upstream in logs and metrics. Default: the
	// deployment name.
	Name string `json:"name,omitempty"`
	// Type is "azure" (Azure OpenAI) or "openai" (any OpenAI-compatible
	// API). Default: azure.
	Type string `json:"type,omitempty"`
	// Endpoint is the Azure resource URL (https://NAME.openai.azure.com)
	// or, for type openai, the base URL including its version path
	// (https://api.openai.com/v1). Placeholders are resolved at
	// provisioning.
	Endpoint string `json:"endpoint"`
	// Deployment is the Azure deployment name, or for type openai the
	// model name sent upstream.
	Deployment string `json:"deployment"`
	// APIVersion pins the Azure api-version query parameter sent
	// upstream; "v1" selects Azure's /openai/v1 routes. Unset, the
	// client's api-version (on Azure's dated routes) is sent as is, and
	// 2024-10-21 when the client sent none (chat, embeddings); Responses
	// then go to /openai/v1/responses (with the client's optional v1
	// api-version, e.g. preview) unless the client called
	// /openai/responses?api-version=..., whose version is kept.
	APIVersion string `json:"api_version,omitempty"`
	// APIKey authenticates to the upstream (api-key header for Azure,
	// Bearer for openai). Use a placeholder such as {env.AZURE_OPENAI_API_KEY}
	// so the key stays out of the config; it is resolved at provisioning.
	APIKey string `json:"api_key,omitempty"`
	// LoopbackAPIKey stands in for an empty api_key when the endpoint is
	// on this machine (localhost or a loopback address), as a local
	// simulator is; with any other endpoint an empty api_key stays an
	// error. One config can then run offline against the simulator and,
	// with the environment set, against a real resource, without the real
	// key ever being written into the config.
	LoopbackAPIKey string `json:"loopback_api_key,omitempty"`
	// Entra authenticates with Microsoft Entra ID client credentials
	// instead of a key.
	Entra *EntraConfig `json:"entra,omitempty"`
	// Priority orders deployments: lower numbers are tried first.
	Priority int `json:"priority,omitempty"`
	// Weight spreads load among deployments of equal priority. Default: 1.
	Weight int `json:"weight,omitempty"`
	// H2C speaks unencrypted HTTP/2 with prior knowledge to an http://
	// endpoint that accepts it (a sidecar, a local model server, the
	// simulator): the deployment's requests and streams then share a few
	// connections instead of taking one each. An https endpoint needs no
	// setting, as HTTP/2 is negotiated over TLS when the upstream offers
	// it (Azure OpenAI does); h2c with an https endpoint is an error.
	H2C bool `json:"h2c,omitempty"`
}

// BreakerConfig configures each deployment's circuit breaker.
type BreakerConfig struct {
	// Failures is how many consecutive failures (5xx, connection errors,
	// timeouts) open the breaker. Default: 5.
	Failures uint32 `json:"failures,omitempty"`
	// OpenFor is how long an open breaker refuses requests before letting
	// trial requests through (half-open). Default: 30s.
	OpenFor caddy.Duration `json:"open_for,omitempty"`
	// HalfOpenRequests is how many trial requests a half-open breaker
	// admits; that many successes close it. Default: 1.
	HalfOpenRequests uint32 `json:"half_open_requests,omitempty"`
}

func (b *BreakerConfig) setDefaults() {
	if b.Failures == 0 {
		b.Failures = 5
	}
	if b.OpenFor == 0 {
		b.OpenFor = caddy.Duration(30 * time.Second)
	}
	if b.HalfOpenRequests == 0 {
		b.HalfOpenRequests = 1
	}
}

type pool struct {
	name      string
	upstreams []*upstream
}

type upstream struct {
	name       string
	kind       string // "azure" or "openai"
	deployment string
	// urls by operation, built once.
	chatURL, embeddingsURL string
	// responsesURL is the Responses endpoint without query, and
	// responsesQuery its api-version query ("" on v1 routes).
	responsesURL, responsesQuery string
	// base is the endpoint; depURL the Azure deployment's path prefix.
	base, depURL string
	// pinned: the config names the api-version; the client's is not used.
	pinned bool
	// setModel: the body's model must name the upstream model (openai
	// and Azure v1), not the client's alias.
	setModel bool
	priority int
	weight   int
	creds    credentials
	state    *upstreamState
	client   *http.Client // the gateway's, or its h2c one
}

// upstreamState outlives reloads: a breaker that opened under the old
// config stays open under the new one.
type upstreamState struct {
	breaker *gobreaker.TwoStepCircuitBreaker[struct{}]
	// coolUntil is when a 429's retry-after expires (unix nanoseconds).
	coolUntil atomic.Int64
}

// Destruct satisfies caddy.Destructor.
func (*upstreamState) Destruct() error { return nil }

var upstreamStates = caddy.NewUsagePool()

// hold records a usage-pool entry the config holds until its Cleanup.
func (g *Gateway) hold(pool *caddy.UsagePool, key string) {
	g.held = append(g.held, func() { _, _ = pool.Delete(key) })
}

func (g *Gateway) provisionPools() error {
	repl := caddy.NewReplacer()
	var h2c *http.Client // made for the first upstream that asks for it
	g.pools = make(map[string]*pool, len(g.Pools))
	for i, pc := range g.Pools {
		if pc.Name == "" {
			return fmt.Errorf("pools[%d]: name is required", i)
		}
		if _, dup := g.pools[pc.Name]; dup {
			return fmt.Errorf("pool %q is defined twice", pc.Name)
		}
		if len(pc.Upstreams) == 0 {
			return fmt.Errorf("pool %q: at least one upstream is required", pc.Name)
		}
		if len(pc.Upstreams) > 64 {
			return fmt.Errorf("pool %q: at most 64 upstreams", pc.Name)
		}
		p := &pool{name: pc.Name}
		for j := range pc.Upstreams {
			u, err := g.newUpstream(repl, &pc.Upstreams[j])
			if err != nil {
				return fmt.Errorf("pool %q: upstream %d: %w", pc.Name, j, err)
			}
			if pc.Upstreams[j].H2C {
				if h2c == nil {
					t := newH2CTransport()
					h2c = &http.Client{Transport: t}
					// Closed with the config, as the main transport is.
					g.held = append(g.held, t.CloseIdleConnections)
				}
				u.client = h2c
			}
			p.upstreams = append(p.upstreams, u)
		}
		g.pools[pc.Name] = p
	}
	return nil
}

func (g *Gateway) newUpstream(repl *caddy.Replacer, uc *UpstreamConfig) (*upstream, error) {
	u := &upstream{kind: uc.Type, deployment: uc.Deployment, priority: uc.Priority, weight: uc.Weight, name: uc.Name, client: g.client}
	if u.kind == "" {
		u.kind = "azure"
	}
	if u.deployment == "" {
		return nil, fmt.Errorf("deployment is required")
	}
	if u.name == "" {
		u.name = u.deployment
	}
	if u.weight == 0 {
		u.weight = 1
	}
	if u.weight < 0 {
		return nil, fmt.Errorf("%s: weight must be positive", u.name)
	}
	endpoint, err := repl.ReplaceOrErr(uc.Endpoint, true, true)
	if err != nil {
		return nil, fmt.Errorf("%s: endpoint: %v", u.name, err)
	}
	base, err := url.Parse(strings.TrimRight(endpoint, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("%s: endpoint %q must be an http(s) URL", u.name, endpoint)
	}
	u.base = base.String()
	if uc.H2C && base.Scheme != "http" {
		return nil, fmt.Errorf("%s: h2c is unencrypted HTTP/2 to an http:// endpoint; %s negotiates HTTP/2 over TLS by itself", u.name, u.base)
	}
	switch u.kind {
	case "azure":
		ver := uc.APIVersion
		u.pinned = ver != ""
		if ver == "" {
			ver = "2024-10-21"
		}
		if ver == "v1" {
			u.chatURL = u.base + "/openai/v1/chat/completions"
			u.embeddingsURL = u.base + "/openai/v1/embeddings"
			u.responsesURL = u.base + "/openai/v1/responses"
			u.setModel = true
		} else {
			u.depURL = u.base + "/openai/deployments/" + url.PathEscape(u.deployment)
			q := "?api-version=" + url.QueryEscape(ver)
			u.chatURL = u.depURL + "/chat/completions" + q
			u.embeddingsURL = u.depURL + "/embeddings" + q
			if u.pinned {
				u.responsesURL, u.responsesQuery = u.base+"/openai/responses", q
			} else {
				u.responsesURL = u.base + "/openai/v1/responses"
			}
		}
	case "openai":
		u.chatURL = u.base + "/chat/completions"
		u.embeddingsURL = u.base + "/embeddings"
		u.responsesURL = u.base + "/responses"
		u.setModel = true
	default:
		return nil, fmt.Errorf("%s: type must be azure or openai, not %q", u.name, u.kind)
	}
	if u.creds, err = g.newCredentials(repl, u, uc, isLoopback(base.Hostname())); err != nil {
		return nil, err
	}
	u.state = g.upstreamState(u, base.String())
	return u, nil
}

// target is the upstream URL of an operation for this request. An Azure
// deployment upstream without a pinned api-version takes the client's.
func (u *upstream) target(op operation, rt *route, rawQuery string) string {
	ver := ""
	if u.kind == "azure" && !u.pinned && rt.api == apiAzure {
		ver = rt.apiVersion
	}
	switch op {
	case opResponses, opStoredResponse:
		base, q := u.responsesURL, u.responsesQuery
		switch {
		case ver != "":
			base, q = u.base+"/openai/responses", "?api-version="+url.QueryEscape(ver)
		case u.kind == "azure" && !u.pinned && rt.api == apiAzureV1 && rt.apiVersion != "":
			q = "?api-version=" + url.QueryEscape(rt.apiVersion) // v1's optional "preview"
		}
		base += rt.tail
		if rawQuery != "" {
			if q == "" {
				q = "?" + rawQuery
			} else {
				q += "&" + rawQuery
			}
		}
		return base + q
	case opEmbeddings:
		if ver != "" && u.depURL != "" {
			return u.depURL + "/embeddings?api-version=" + url.QueryEscape(ver)
		}
		return u.embeddingsURL
	}
	if ver != "" && u.depURL != "" {
		return u.depURL + "/chat/completions?api-version=" + url.QueryEscape(ver)
	}
	return u.chatURL
}

// upstreamState finds or makes the state shared by every config that has
// this deployment with these breaker settings.
func (g *Gateway) upstreamState(u *upstream, base string) *upstreamState {
	b := g.Breaker
	key := fmt.Sprintf("%s|%s|%s|%s|%d|%d|%d", u.kind, base, u.deployment, u.name, b.Failures, b.OpenFor, b.HalfOpenRequests)
	val, _, _ := upstreamStates.LoadOrNew(key, func() (caddy.Destructor, error) {
		name := u.name
		failures := b.Failures
		breakerState.WithLabelValues(name).Set(0)
		return &upstreamState{breaker: gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
			Name:        name,
			MaxRequests: b.HalfOpenRequests,
			Timeout:     time.Duration(b.OpenFor),
			ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= failures },
			IsExcluded:  func(err error) bool { return err == errExcluded },
			OnStateChange: func(name string, _, to gobreaker.State) {
				breakerState.WithLabelValues(name).Set(float64(to))
			},
		})}, nil
	})
	g.hold(upstreamStates, key)
	return val.(*upstreamState)
}

// cooling reports whether a 429's retry-after still holds, and until when.
func (s *upstreamState) cooling(now time.Time) (time.Time, bool) {
	until := s.coolUntil.Load()
	return time.Unix(0, until), until > now.UnixNano()
}

func (s *upstreamState) coolFor(d time.Duration) {
	until := time.Now().Add(d).UnixNano()
	for {
		cur := s.coolUntil.Load()
		if cur >= until || s.coolUntil.CompareAndSwap(cur, until) {
			return
		}
	}
}

// newTransport is tuned for many concurrent calls to few hosts. It
// speaks HTTP/2 to an https upstream that offers it in the TLS handshake
// (ALPN), HTTP/1.1 otherwise.
func newTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   512,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// newH2CTransport speaks HTTP/2 with prior knowledge to http://
// endpoints (h2c upstreams). net/http uses h2c only on a transport whose
// protocols leave HTTP/1 out, hence a transport of its own.
func newH2CTransport() *http.Transport {
	t := newTransport()
	t.Protocols = new(http.Protocols)
	t.Protocols.SetUnencryptedHTTP2(true)
	return t
}
