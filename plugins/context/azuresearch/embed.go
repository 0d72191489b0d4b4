package azuresearch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"

	"github.com/tidwall/gjson"
)

// Embeddings is the Azure OpenAI embeddings deployment that turns the
// query text into a vector for vector and hybrid queries. It must be the
// model that embedded the index's vector field.
//
//	"embeddings": {
//	  "url": "https://my-resource.openai.azure.com/openai/deployments/text-embedding-3-small",
//	  "api_version": "2024-10-21",
//	  "api_key": "{env.AZURE_OPENAI_API_KEY}"
//	}
type Embeddings struct {
	// URL is the deployment URL,
	// https://<resource>.openai.azure.com/openai/deployments/<deployment>;
	// requests go to <url>/embeddings?api-version=<api_version>.
	URL string `json:"url"`
	// APIVersion is the api-version query parameter. Default 2024-10-21.
	APIVersion string `json:"api_version,omitempty"`
	// APIKey is sent as the api-key header. Use a placeholder such as
	// {env.AZURE_OPENAI_API_KEY}; it is resolved at provision time and
	// never logged.
	APIKey string `json:"api_key"`
	// Dimensions asks text-embedding-3 models for vectors of this length
	// (it must match the index's vector field). Default: the model's.
	Dimensions int `json:"dimensions,omitempty"`
}

// DefaultEmbeddingsAPIVersion is the Azure OpenAI GA version used for embeddings.
const DefaultEmbeddingsAPIVersion = "2024-10-21"

// queryCacheSize bounds the cached query vectors.
const queryCacheSize = 512

// embedder embeds query texts, with a small FIFO cache: the same question
// asked twice (retries, several policies) is embedded once.
type embedder struct {
	url   string
	dims  int
	creds credentials
	c     *client

	mu    sync.Mutex
	cache map[string][]float32
	order []string
}

func newEmbedder(e *Embeddings, endpoint, key string, c *client) *embedder {
	v := e.APIVersion
	if v == "" {
		v = DefaultEmbeddingsAPIVersion
	}
	return &embedder{
		url:   strings.TrimRight(endpoint, "/") + "/embeddings?api-version=" + url.QueryEscape(v),
		dims:  e.Dimensions,
		creds: keyCreds{key: key},
		c:     c,
		cache: map[string][]float32{},
	}
}

func (em *embedder) embed(ctx context.Context, text string) ([]float32, error) {
	em.mu.Lock()
	v, ok := em.cache[text]
	em.mu.Unlock()
	if ok {
		return v, nil
	}
	body := map[string]any{"input": text}
	if em.dims > 0 {
		body["dimensions"] = em.dims
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	data, err := em.c.post(ctx, em.url, "POST embeddings", b, em.creds)
	if err != nil {
		return nil, err
	}
	v, err = parseEmbedding(data)
	if err != nil {
		return nil, fmt.Errorf("azure_search: POST embeddings: %v", err)
	}
	if em.dims > 0 && len(v) != em.dims {
		return nil, fmt.Errorf("azure_search: POST embeddings: a vector of %d dimensions, want %d", len(v), em.dims)
	}
	em.mu.Lock()
	if _, ok := em.cache[text]; !ok {
		if len(em.order) >= queryCacheSize {
			delete(em.cache, em.order[0])
			em.order = em.order[1:]
		}
		em.cache[text] = v
		em.order = append(em.order, text)
	}
	em.mu.Unlock()
	return v, nil
}

// parseEmbedding reads {"data":[{"embedding":[…],"index":0}],…}.
func parseEmbedding(data []byte) ([]float32, error) {
	if !gjson.ValidBytes(data) {
		return nil, errors.New("the answer is not JSON")
	}
	emb := gjson.GetBytes(data, "data.0.embedding")
	if !emb.IsArray() {
		return nil, errors.New("the answer has no data[0].embedding")
	}
	v := make([]float32, 0, 1536)
	var bad bool
	emb.ForEach(func(_, x gjson.Result) bool {
		if x.Type != gjson.Number {
			bad = true
			return false
		}
		v = append(v, float32(x.Float()))
		return true
	})
	if bad || len(v) == 0 {
		return nil, errors.New("the embedding is not a non-empty array of numbers")
	}
	return v, nil
}
