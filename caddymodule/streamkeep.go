package caddymodule

import (
	"bytes"
	"errors"
	"io"
	"net/http/httptrace"
	"sync"

	"github.com/groundgate/groundgate/policies"
)

// A slow stream lives for seconds to minutes, thousands of them at once.
// What its request needed before the upstream answered (the prompt sent,
// the articles the meta prompt quoted, the records' fields) is let go
// once the stream has started. What the answer's steps still read stays:
// the prompt's token count, to settle a stream that ends without usage;
// the
// context's markers, titles, urls, ids and chunk texts, for citations
// and the audit record.

// releaseForStream drops what a started stream no longer needs.
func (ex *exchange) releaseForStream(at *attempt) {
	if at.sent != nil {
		at.sent.release()
	}
	ex.releaseSent()
	ex.trimContext()
}

// releaseSent lets the body sent upstream go when its prompt has been
// counted already (by the policy's limits or budgets: the same count
// countUsage would make). Uncounted, it stays: counting it now would cost
// every stream what only one that breaks needs.
func (ex *exchange) releaseSent() {
	if ex.sent == nil {
		return
	}
	n := int64(ex.promptCount)
	if n == 0 {
		n = ex.est.prompt
	}
	if n <= 0 || ex.api == nil || ex.api.prepare() == nil {
		return
	}
	ex.sentTokens = n
	ex.sent = nil
}

// sentKnown reports whether there is a prompt to count for usage: the
// body, or its count once released.
func (ex *exchange) sentKnown() bool { return ex.sent != nil || ex.sentTokens > 0 }

// forgetSent: nothing was billed (an upstream error answer).
func (ex *exchange) forgetSent() { ex.sent, ex.sentTokens = nil, 0 }

// trimContext drops the context's texts the meta prompt has printed: the
// articles as printed (the docs keep what citations show) and the
// records' fields (the audit record names records by entity, id and
// number). It trims in place: post-processors hold the same Packed.
func (ex *exchange) trimContext() {
	p := ex.packed
	if p == nil {
		return
	}
	p.Articles = nil
	for i := range p.Records {
		r := &p.Records[i]
		*r = policies.Record{Entity: r.Entity, ID: r.ID, Number: r.Number}
	}
}

// errBodyReleased is what rewinding a released request body gets; the
// transport rewinds only a request that got no answer.
var errBodyReleased = errors.New("request body released after the upstream answered")

// sentBody is an upstream request's body that can be let go once the
// upstream has answered. The transport keeps a request, and with it its
// body, until the answer has been read to its end, which for a stream is
// its whole life. The request reads the body through bytes.Readers (the
// transport sends those with their headers in one write, other readers
// after a flush of their own) that are emptied once the request has been
// written; rewinding it for a retry (GetBody) works until release.
type sentBody struct {
	mu      sync.Mutex
	b       []byte          // nil once released
	readers []*bytes.Reader // made for the request, emptied once written
}

func newSentBody(b []byte) *sentBody { return &sentBody{b: b} }

// reader reads the body from its start: the request's Body, and its
// GetBody.
func (s *sentBody) reader() (io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b == nil {
		return nil, errBodyReleased
	}
	r := bytes.NewReader(s.b)
	s.readers = append(s.readers, r)
	return io.NopCloser(r), nil
}

// written empties the readers: called once the transport has written the
// request (httptrace's WroteRequest, on the goroutine that read them).
func (s *sentBody) written(httptrace.WroteRequestInfo) {
	s.mu.Lock()
	for _, r := range s.readers {
		r.Reset(nil)
	}
	s.mu.Unlock()
}

// release drops the body: no rewind needs it once the upstream answered.
func (s *sentBody) release() {
	s.mu.Lock()
	s.b = nil
	s.mu.Unlock()
}
