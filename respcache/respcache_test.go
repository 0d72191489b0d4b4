package respcache

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestMemoryTTLAndLRU(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(100)
	now := time.Unix(0, 0)
	m.now = func() time.Time { return now }
	_ = m.CacheSet(ctx, "a", make([]byte, 40), time.Minute)
	_ = m.CacheSet(ctx, "b", make([]byte, 40), time.Minute)
	if _, ok, _ := m.CacheGet(ctx, "a"); !ok { // a is now most recent
		t.Fatal("a missing")
	}
	_ = m.CacheSet(ctx, "c", make([]byte, 40), time.Minute) // evicts b
	if _, ok, _ := m.CacheGet(ctx, "b"); ok {
		t.Fatal("least recently used entry not evicted")
	}
	if _, ok, _ := m.CacheGet(ctx, "a"); !ok {
		t.Fatal("recently used entry evicted")
	}
	now = now.Add(time.Minute)
	if _, ok, _ := m.CacheGet(ctx, "a"); ok {
		t.Fatal("expired entry served")
	}
	if err := m.CacheSet(ctx, "huge", make([]byte, 500), time.Minute); err != nil || m.Len() > 1 {
		t.Fatalf("oversized value stored or evicted others: len %d", m.Len())
	}
	if m.bytes > m.maxBytes {
		t.Fatalf("bytes %d over bound", m.bytes)
	}
}

func TestMemoryConcurrent(t *testing.T) {
	m := NewMemory(1 << 16)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				k := fmt.Sprint(g, i%50)
				_ = m.CacheSet(context.Background(), k, []byte(k), time.Minute)
				_, _, _ = m.CacheGet(context.Background(), k)
			}
		}(g)
	}
	wg.Wait()
	if m.bytes > m.maxBytes || m.bytes < 0 {
		t.Fatalf("bytes %d", m.bytes)
	}
}
