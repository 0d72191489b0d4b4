// Package respcache is the gateway's exact-match response cache: the
// store interface budget stores may also implement (Redis shares answers
// across instances) and a bounded in-process default.
package respcache

import (
	"container/list"
	"context"
	"sync"
	"time"
)

// Store keeps cached answers by key. Get reports a miss with ok false; an
// error means the store could not answer (the caller treats it as a miss).
type Store interface {
	CacheGet(ctx context.Context, key string) (val []byte, ok bool, err error)
	CacheSet(ctx context.Context, key string, val []byte, ttl time.Duration) error
}

// Memory is an in-process LRU bounded in bytes, with a TTL per entry.
// Safe for concurrent use.
type Memory struct {
	mu       sync.Mutex
	maxBytes int
	bytes    int
	ll       *list.List // front: most recently used
	items    map[string]*list.Element
	now      func() time.Time
}

type entry struct {
	key     string
	val     []byte
	expires time.Time
}

// NewMemory returns a cache holding at most maxBytes of keys and values.
func NewMemory(maxBytes int) *Memory {
	return &Memory{maxBytes: maxBytes, ll: list.New(), items: map[string]*list.Element{}, now: time.Now}
}

// CacheGet returns a live entry and marks it used.
func (m *Memory) CacheGet(_ context.Context, key string) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.items[key]
	if !ok {
		return nil, false, nil
	}
	e := el.Value.(*entry)
	if !m.now().Before(e.expires) {
		m.remove(el)
		return nil, false, nil
	}
	m.ll.MoveToFront(el)
	return e.val, true, nil
}

// CacheSet stores val for ttl, evicting the least recently used entries
// to stay within the size bound. A value larger than the bound is not
// stored.
func (m *Memory) CacheSet(_ context.Context, key string, val []byte, ttl time.Duration) error {
	size := len(key) + len(val)
	if size > m.maxBytes || ttl <= 0 {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.items[key]; ok {
		m.remove(el)
	}
	for m.bytes+size > m.maxBytes {
		m.remove(m.ll.Back())
	}
	m.items[key] = m.ll.PushFront(&entry{key: key, val: val, expires: m.now().Add(ttl)})
	m.bytes += size
	return nil
}

func (m *Memory) remove(el *list.Element) {
	e := m.ll.Remove(el).(*entry)
	delete(m.items, e.key)
	m.bytes -= len(e.key) + len(e.val)
}

// Len is the number of entries (live or not yet evicted).
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ll.Len()
}

// Destruct satisfies caddy.Destructor so a Memory can live in a usage pool.
func (m *Memory) Destruct() error { return nil }
