package tokens

import (
	"hash/maphash"
	"sync"
)

// A small bounded cache of token counts for long strings that requests
// repeat (system prompts, tool definitions). Keys are a 64-bit maphash of the
// string plus its length, so no text is retained. maphash is seeded randomly
// per process, so collisions cannot be crafted; the chance of an accidental
// one among the cached entries is about 2^-64 per lookup.
//
// Each shard keeps two generations of at most shardEntries each: a lookup
// that hits the old generation promotes the entry, and when the current
// generation is full the old one is dropped. That approximates LRU with no
// per-entry bookkeeping and bounds the cache to 2*shards*shardEntries entries.

const (
	minCachedLen = 256 // shorter strings are cheaper to count than to cache
	cacheShards  = 16
	shardEntries = 256 // up to 8192 entries in all, about 256 KiB
)

// Key tags keep counts of different kinds of values apart.
const (
	tagText  = 0
	tagTools = 1
)

type cacheKey struct {
	hash uint64
	size int
}

type cacheShard struct {
	mu       sync.Mutex
	cur, old map[cacheKey]int
	_        [40]byte // keep shards on separate cache lines
}

type countCache struct {
	seed   maphash.Seed
	shards [cacheShards]cacheShard
}

func newCountCache() *countCache {
	return &countCache{seed: maphash.MakeSeed()}
}

func (c *countCache) key(s string, tag int) cacheKey {
	return cacheKey{hash: maphash.String(c.seed, s), size: len(s)<<1 | tag}
}

func (c *countCache) shard(k cacheKey) *cacheShard {
	return &c.shards[k.hash>>(64-4)]
}

func (c *countCache) get(k cacheKey) (int, bool) {
	s := c.shard(k)
	s.mu.Lock()
	n, ok := s.cur[k]
	if !ok {
		if n, ok = s.old[k]; ok {
			s.insert(k, n)
		}
	}
	s.mu.Unlock()
	return n, ok
}

func (c *countCache) put(k cacheKey, n int) {
	s := c.shard(k)
	s.mu.Lock()
	s.insert(k, n)
	s.mu.Unlock()
}

func (s *cacheShard) insert(k cacheKey, n int) {
	if s.cur == nil {
		s.cur = make(map[cacheKey]int, shardEntries)
	}
	if len(s.cur) >= shardEntries {
		s.old, s.cur = s.cur, make(map[cacheKey]int, shardEntries)
	}
	s.cur[k] = n
}
