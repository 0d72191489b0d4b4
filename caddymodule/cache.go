package caddymodule

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/groundgate/groundgate/respcache"
)

// cacheSpec is a policy's `cache` section: the exact-match response cache.
type cacheSpec struct {
	// TTL is how long an answer is served from the cache, e.g. "10m".
	TTL string `yaml:"ttl"`
}

// maxCachedAnswer bounds what one cached answer may take.
const maxCachedAnswer = 1 << 20

var memoryCaches = caddy.NewUsagePool()

// provisionCache uses the budget store when it can cache (Redis: shared
// by instances), else a bounded in-process cache shared across reloads.
func (g *Gateway) provisionCache() error {
	if c, ok := g.store.(respcache.Store); ok {
		g.cache = c
		return nil
	}
	size := g.CacheMaxSize
	if size == 0 {
		size = 64 << 20
	}
	key := "memory|" + strconv.FormatInt(size, 10)
	v, _, err := memoryCaches.LoadOrNew(key, func() (caddy.Destructor, error) {
		return respcache.NewMemory(int(size)), nil
	})
	if err != nil {
		return err
	}
	g.hold(memoryCaches, key)
	g.cache = v.(*respcache.Memory)
	return nil
}

// cacheKey scopes an answer to the principal and the policy version, then
// identifies the request by a canonical digest of its body (key order and
// whitespace do not matter), built in linear time and memory. Answers are
// never shared across principals.
func (ex *exchange) computeCacheKey(body []byte) string {
	h := sha256.New()
	for _, s := range []string{ex.principal.name, ex.policy.Name, ex.policy.Hash, ex.route.name, ex.model.alias} {
		var n [4]byte
		binary.LittleEndian.PutUint32(n[:], uint32(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	if !respcache.Digest(h, body) {
		// Not reached for checked bodies; raw bytes still key correctly,
		// only less often.
		h.Write([]byte{0})
		h.Write(body)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// cacheLookup answers from the cache when it can. A store error is a
// miss: the cache never fails a request.
func (ex *exchange) cacheLookup(key string) bool {
	ctx, cancel := context.WithTimeout(ex.r.Context(), storeTimeout)
	defer cancel()
	val, ok, err := ex.g.cache.CacheGet(ctx, key)
	if err != nil {
		ex.g.logger.Warn("response cache unavailable; treating as a miss", zap.String("request_id", ex.id), zap.Error(err))
	}
	h := ex.w.Header()
	if !ok || len(val) < 1 {
		h.Set("X-Groundgate-Cache", "miss")
		cacheRequests.WithLabelValues(ex.policy.Name, "miss").Inc()
		return false
	}
	cacheRequests.WithLabelValues(ex.policy.Name, "hit").Inc()
	h.Set("X-Groundgate-Cache", "hit")
	if val[0] == 's' {
		h.Set("Content-Type", "text/event-stream; charset=utf-8")
		h.Set("Cache-Control", "no-cache")
	} else {
		h.Set("Content-Type", "application/json")
	}
	ex.cacheHit = true
	ex.writeHeader(http.StatusOK)
	_ = ex.writeBody(val[1:])
	return true
}

// cacheStore keeps a complete, unfiltered answer: 'j' + JSON body or
// 's' + the SSE bytes as the client received them.
func (ex *exchange) cacheStore(key string, stream bool, answer []byte, ttl time.Duration) {
	if len(answer) > maxCachedAnswer {
		return
	}
	if stream {
		if !bytes.HasSuffix(answer, doneEvent) || bytes.Contains(answer, []byte(`"finish_reason":"content_filter"`)) {
			return
		}
	} else if gjson.GetBytes(answer, "choices.0.finish_reason").Str == "content_filter" {
		return
	}
	val := make([]byte, 0, len(answer)+1)
	val = append(val, map[bool]byte{true: 's', false: 'j'}[stream])
	val = append(val, answer...)
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := ex.g.cache.CacheSet(ctx, key, val, ttl); err != nil {
		ex.g.logger.Warn("response cache write failed", zap.String("request_id", ex.id), zap.Error(err))
	}
}
