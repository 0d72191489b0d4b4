package caddymodule

import (
	"errors"
	"net/http"
	"os"
	"time"

	"go.uber.org/zap"
)

const (
	// defaultClientWriteTimeout is client_write_timeout when unset.
	defaultClientWriteTimeout = 30 * time.Second

	// bodyWriteChunk is the most of a whole body written under one
	// deadline: a large answer to a slow client that keeps reading gets
	// client_write_timeout per piece, not for the whole body.
	bodyWriteChunk = 64 << 10
)

// controller returns the exchange's response controller, made once.
func (ex *exchange) controller() *http.ResponseController {
	if ex.rc == nil {
		ex.rc = http.NewResponseController(ex.w)
	}
	return ex.rc
}

// armWrite gives the next write to the client, and the flush after it,
// client_write_timeout to complete. A writer without deadlines
// (http.ErrNotSupported, e.g. httptest's recorder) is written to without
// one; so is any writer that refused a deadline once.
func (ex *exchange) armWrite() {
	d := time.Duration(ex.g.ClientWriteTimeout)
	if d <= 0 || ex.noDeadline {
		return
	}
	if err := ex.controller().SetWriteDeadline(time.Now().Add(d)); err != nil {
		ex.noDeadline = true
		return
	}
	ex.deadlineArmed = true
}

// disarmWrite removes the deadline after a flush, between streamed events,
// where it must not fire on its own: on HTTP/2 a write deadline is a
// timer that resets the stream even with no write in flight, so an
// upstream pausing longer than the timeout would cut a healthy stream.
// HTTP/1 and HTTP/3 check the deadline only during a write, and the next
// write arms a new one.
func (ex *exchange) disarmWrite() {
	if ex.deadlineArmed && ex.r.ProtoMajor == 2 {
		_ = ex.controller().SetWriteDeadline(time.Time{})
		ex.deadlineArmed = false
	}
}

// armFinalWrite gives the server's own flush after the handler returns
// (the rest of a buffered body, the end of a chunked stream) a fresh
// deadline, when the gateway wrote under one.
func (ex *exchange) armFinalWrite() {
	if ex.rc != nil {
		ex.armWrite()
	}
}

// writeBody writes a whole body, each piece under its own deadline.
func (ex *exchange) writeBody(b []byte) error {
	for len(b) > 0 {
		n := min(len(b), bodyWriteChunk)
		ex.armWrite()
		if _, err := ex.w.Write(b[:n]); err != nil {
			return ex.clientGone(err)
		}
		b = b[n:]
	}
	return nil
}

// clientGone turns a failed write or flush to the client into
// errClientGone: the caller stops and, returning, cancels the upstream
// request. A client that stopped reading (the write deadline passed) gets
// a debug line of its own; either way the request is counted like any
// client that left.
func (ex *exchange) clientGone(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		if ce := ex.g.logger.Check(zap.DebugLevel, "client stopped reading; answer abandoned"); ce != nil {
			ce.Write(zap.String("request_id", ex.id), zap.Duration("client_write_timeout", time.Duration(ex.g.ClientWriteTimeout)))
		}
	}
	return errClientGone
}
