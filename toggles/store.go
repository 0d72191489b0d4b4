package toggles

import (
	"context"
	"sync"
)

// Store keeps the overlay document and its change log. The gateway's
// budget store provides it when it can (Redis: shared by instances);
// otherwise the process-wide Memory store is used.
type Store interface {
	// ToggleLoad returns the overlay document and its version; an empty
	// document and version 0 when none was saved.
	ToggleLoad(ctx context.Context) (doc []byte, version int64, err error)
	// ToggleSwap saves doc and appends log (newest last) if the stored
	// version is still version, atomically; ok is false, and nothing
	// changed, when it is not.
	ToggleSwap(ctx context.Context, version int64, doc []byte, log [][]byte) (newVersion int64, ok bool, err error)
	// ToggleLog returns up to limit log entries, newest first.
	ToggleLog(ctx context.Context, limit int) ([][]byte, error)
}

// MaxLog bounds the change log a store keeps.
const MaxLog = 1000

// Memory is an in-process Store for a single gateway instance.
type Memory struct {
	mu      sync.Mutex
	doc     []byte
	version int64
	log     [][]byte // oldest first
}

var shared = new(Memory)

// Shared is the process-wide memory store: it outlives config reloads,
// as the overlay must.
func Shared() *Memory { return shared }

// ToggleLoad implements Store.
func (m *Memory) ToggleLoad(context.Context) ([]byte, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.doc, m.version, nil
}

// ToggleSwap implements Store.
func (m *Memory) ToggleSwap(_ context.Context, version int64, doc []byte, log [][]byte) (int64, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.version != version {
		return m.version, false, nil
	}
	m.doc = append([]byte(nil), doc...)
	m.version++
	m.log = append(m.log, log...)
	if len(m.log) > MaxLog {
		m.log = append([][]byte(nil), m.log[len(m.log)-MaxLog:]...)
	}
	return m.version, true, nil
}

// ToggleLog implements Store.
func (m *Memory) ToggleLog(_ context.Context, limit int) ([][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out [][]byte
	for i := len(m.log) - 1; i >= 0 && len(out) < limit; i-- {
		out = append(out, m.log[i])
	}
	return out, nil
}

var _ Store = (*Memory)(nil)
