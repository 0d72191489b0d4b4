package caddymodule

import (
	"errors"
	"io"
	"sync"

	"github.com/groundgate/groundgate/policies"
)

// A slow stream lives for seconds to minutes, thousands of them at once.
// What its request needed before the upstream answered (the prompt sent,
// the articles the meta prompt quoted, the records' fields) is let go
// once the stream has started. What the answer's steps still read stays:
// the prompt's token count, to settle a stream that ends without usage;
// whether it asked for a JSON answer, for the post-processors; the
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
	ex.sentStructured = structuredOutput(ex.sent)
	ex.sentTokens = n
	ex.sent = nil
}

// sentKnown reports whether there is a prompt to count for usage: the
// body, or its count once released.
func (ex *exchange) sentKnown() bool { return ex.sent != nil || ex.sentTokens > 0 }

// forgetSent: nothing was billed (an upstream error answer).
func (ex *exchange) forgetSent() { ex.sent, ex.sentTokens = nil, 0 }

// structuredAnswer reports whether the request asks for a JSON answer.
func (ex *exchange) structuredAnswer() bool {
	if ex.sent == nil {
		return ex.sentStructured
	}
	return structuredOutput(ex.sent)
}

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

// errBodyReleased is what a read of a released request body gets; the
// transport sees it only if it rewinds a request that was answered.
var errBodyReleased = errors.New("request body released after the upstream answered")

// sentBody is an upstream request's body that can be let go once the
// upstream has answered: the transport keeps the request, and with it
// its body, until the answer has been read to its end, which for a
// stream is its whole life. Readers (the transport's, and those GetBody
// makes to rewind) read through it, never holding the bytes themselves.
type sentBody struct {
	mu sync.Mutex
	b  []byte // nil once released
	n  int    // len(b), kept after the release
}

func newSentBody(b []byte) *sentBody { return &sentBody{b: b, n: len(b)} }

// reader reads the body from its start (the request's Body and GetBody).
func (s *sentBody) reader() (io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b == nil {
		return nil, errBodyReleased
	}
	return &sentReader{s: s}, nil
}

func (s *sentBody) release() {
	s.mu.Lock()
	s.b = nil
	s.mu.Unlock()
}

type sentReader struct {
	s   *sentBody
	off int
}

func (r *sentReader) Read(p []byte) (int, error) {
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.off >= s.n {
		return 0, io.EOF
	}
	if s.b == nil {
		return 0, errBodyReleased
	}
	n := copy(p, s.b[r.off:])
	r.off += n
	return n, nil
}

func (*sentReader) Close() error { return nil }
