package filters

import "sync"

// Retrieved records and knowledge articles come back request after
// request, and scanning them is most of what the context stage costs. A
// chain remembers its verdicts on the texts it scanned at the context
// stage, so a popular article is scanned once per configuration. Filters
// are pure functions of (text, stage), except those that call a service
// (Remote), whose chains do not remember.

// Remote is implemented by filters whose verdict comes from a service, so
// it may change between calls (an outage fails closed once, not forever).
type Remote interface {
	Remote() bool
}

// Bounds of a chain's memo: it is cleared when either is reached, which
// keeps the memory bounded without bookkeeping on the hot path.
const (
	memoMaxEntries = 4096
	memoMaxBytes   = 32 << 20
)

type memo struct {
	mu    sync.RWMutex
	m     map[string]Result
	bytes int
}

func (m *memo) get(text string) (Result, bool) {
	m.mu.RLock()
	r, ok := m.m[text]
	m.mu.RUnlock()
	return r, ok
}

func (m *memo) put(text string, r Result) {
	size := len(text) + len(r.Text) + 64*len(r.Findings) + 64
	if size > memoMaxBytes/64 {
		return // one huge text would evict everything
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil || len(m.m) >= memoMaxEntries || m.bytes+size > memoMaxBytes {
		m.m, m.bytes = make(map[string]Result, 256), 0
	}
	if _, ok := m.m[text]; !ok {
		m.m[text] = r
		m.bytes += size
	}
}

// RunContext is Run at StageContext, remembering verdicts (see above).
// The Result's Findings are shared between callers: read them only.
func (c *Chain) RunContext(text string) Result {
	if !c.memoize {
		return c.Run(text, StageContext)
	}
	if r, ok := c.ctxMemo.get(text); ok {
		return r
	}
	r := c.Run(text, StageContext)
	// the key must not alias a caller's buffer
	c.ctxMemo.put(string([]byte(text)), r)
	return r
}
