package localindex

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/tidwall/gjson"

	"github.com/groundgate/groundgate/wire"
)

// Embeddings configures the embeddings endpoint that turns on hybrid
// ranking (BM25 fused with vector similarity). Any Azure OpenAI resource
// or OpenAI-compatible API works, including the bundled simulator.
//
//	"embeddings": {
//	  "endpoint": "https://my-resource.openai.azure.com",
//	  "deployment": "text-embedding-3-small",
//	  "api_version": "2024-10-21",
//	  "api_key": "{env.AZURE_OPENAI_API_KEY}"
//	}
type Embeddings struct {
	// Endpoint is the resource URL: https://<resource>.openai.azure.com
	// for Azure, or the API base (e.g. https://api.openai.com/v1) for
	// "api": "openai".
	Endpoint string `json:"endpoint"`
	// Deployment is the Azure deployment name, or the model for "openai".
	Deployment string `json:"deployment"`
	// APIVersion is Azure's api-version query parameter. Default 2024-10-21.
	APIVersion string `json:"api_version,omitempty"`
	// APIKey is sent as api-key (Azure) or Authorization: Bearer (openai).
	// Use a placeholder such as {env.AZURE_OPENAI_API_KEY}; it is resolved
	// at provision time and never logged.
	APIKey string `json:"api_key,omitempty"`
	// API is "azure" (default) or "openai".
	API string `json:"api,omitempty"`
	// Dimensions asks the model for shorter vectors (text-embedding-3-*).
	Dimensions int `json:"dimensions,omitempty"`
	// BatchSize is the number of chunks per request when indexing.
	// Default 64.
	BatchSize int `json:"batch_size,omitempty"`
	// Timeout bounds one indexing request. Default 30s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// QueryTimeout bounds embedding one query; on timeout or error the
	// search falls back to BM25 alone. Default 2s.
	QueryTimeout caddy.Duration `json:"query_timeout,omitempty"`
}

const (
	defaultAPIVersion   = "2024-10-21"
	defaultBatchSize    = 64
	defaultEmbedTimeout = 30 * time.Second
	defaultQueryTimeout = 2 * time.Second
	queryCacheSize      = 1024
)

// identity says which model made a vector: vectors from another endpoint,
// deployment or dimension are not comparable and are recomputed. The key
// is not part of it.
func (e *Embeddings) identity() string {
	if e == nil {
		return ""
	}
	return strings.Join([]string{strings.TrimRight(e.Endpoint, "/"), e.api(), e.Deployment, fmt.Sprint(e.Dimensions)}, "|")
}

func (e *Embeddings) api() string {
	if e.API == "" {
		return "azure"
	}
	return e.API
}

func (e *Embeddings) validate() error {
	if e.Endpoint == "" || e.Deployment == "" {
		return errors.New("embeddings: endpoint and deployment are required")
	}
	u, err := url.Parse(e.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("embeddings: endpoint %q is not an http(s) URL", e.Endpoint)
	}
	if a := e.api(); a != "azure" && a != "openai" {
		return fmt.Errorf("embeddings: api must be azure or openai, got %q", e.API)
	}
	if e.Dimensions < 0 || e.BatchSize < 0 || e.Timeout < 0 || e.QueryTimeout < 0 {
		return errors.New("embeddings: dimensions, batch_size, timeout and query_timeout must not be negative")
	}
	return nil
}

// embedder calls the endpoint. Safe for concurrent use.
type embedder struct {
	url, key, deployment string
	azure                bool
	dims, batch          int
	timeout, qtimeout    time.Duration
	client               *http.Client

	mu    sync.Mutex
	cache map[string][]float32 // query vectors
	order []string             // FIFO eviction
}

func newEmbedder(e *Embeddings) *embedder {
	repl := caddy.NewReplacer()
	em := &embedder{
		key:        repl.ReplaceKnown(e.APIKey, ""),
		deployment: e.Deployment,
		azure:      e.api() == "azure",
		dims:       e.Dimensions,
		batch:      e.BatchSize,
		timeout:    time.Duration(e.Timeout),
		qtimeout:   time.Duration(e.QueryTimeout),
		client:     &http.Client{},
		cache:      map[string][]float32{},
	}
	base := strings.TrimRight(repl.ReplaceKnown(e.Endpoint, ""), "/")
	if em.azure {
		v := e.APIVersion
		if v == "" {
			v = defaultAPIVersion
		}
		em.url = base + "/openai/deployments/" + url.PathEscape(e.Deployment) + "/embeddings?api-version=" + url.QueryEscape(v)
	} else {
		em.url = base + "/embeddings"
	}
	if em.batch <= 0 {
		em.batch = defaultBatchSize
	}
	if em.timeout <= 0 {
		em.timeout = defaultEmbedTimeout
	}
	if em.qtimeout <= 0 {
		em.qtimeout = defaultQueryTimeout
	}
	return em
}

// embedAll embeds texts in batches.
func (em *embedder) embedAll(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, 0, len(texts))
	for i := 0; i < len(texts); i += em.batch {
		end := min(i+em.batch, len(texts))
		cctx, cancel := context.WithTimeout(ctx, em.timeout)
		vecs, err := em.call(cctx, texts[i:end])
		cancel()
		if err != nil {
			return nil, err
		}
		out = append(out, vecs...)
	}
	return out, nil
}

// query embeds one query, with a small cache.
func (em *embedder) query(ctx context.Context, q string) ([]float32, error) {
	em.mu.Lock()
	v, ok := em.cache[q]
	em.mu.Unlock()
	if ok {
		return v, nil
	}
	cctx, cancel := context.WithTimeout(ctx, em.qtimeout)
	defer cancel()
	vecs, err := em.call(cctx, []string{q})
	if err != nil {
		return nil, err
	}
	em.mu.Lock()
	if _, ok := em.cache[q]; !ok {
		if len(em.order) >= queryCacheSize {
			delete(em.cache, em.order[0])
			em.order = em.order[1:]
		}
		em.cache[q] = vecs[0]
		em.order = append(em.order, q)
	}
	em.mu.Unlock()
	return vecs[0], nil
}

// call sends one embeddings request. Errors name the endpoint and the
// status, never the key.
func (em *embedder) call(ctx context.Context, inputs []string) ([][]float32, error) {
	body := map[string]any{"input": inputs}
	if !em.azure {
		body["model"] = em.deployment
	}
	if em.dims > 0 {
		body["dimensions"] = em.dims
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	where := "embeddings " + wire.RedactURL(em.url)
	data, err := wire.PostModel(ctx, em.client, em.url, em.azure, em.key, b, 256<<20, "embeddings")
	if err != nil {
		return nil, err
	}
	items := gjson.GetBytes(data, "data")
	if !items.IsArray() || int(items.Get("#").Int()) != len(inputs) {
		return nil, fmt.Errorf("%s: expected %d vectors in data", where, len(inputs))
	}
	out := make([][]float32, len(inputs))
	var ferr error
	dim := 0
	items.ForEach(func(_, it gjson.Result) bool {
		i := int(it.Get("index").Int())
		emb := it.Get("embedding")
		if i < 0 || i >= len(out) || out[i] != nil || !emb.IsArray() {
			ferr = fmt.Errorf("%s: bad item index or embedding", where)
			return false
		}
		v := make([]float32, 0, 1536)
		emb.ForEach(func(_, x gjson.Result) bool {
			v = append(v, float32(x.Float()))
			return true
		})
		if len(v) == 0 || (dim != 0 && dim != len(v)) {
			ferr = fmt.Errorf("%s: vectors of different or zero length", where)
			return false
		}
		dim = len(v)
		normalize(v)
		out[i] = v
		return true
	})
	if ferr != nil {
		return nil, ferr
	}
	for i := range out {
		if out[i] == nil {
			return nil, fmt.Errorf("%s: missing vector %d", where, i)
		}
	}
	return out, nil
}

func normalize(v []float32) {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	if s == 0 {
		return
	}
	inv := float32(1 / math.Sqrt(s))
	for i := range v {
		v[i] *= inv
	}
}
