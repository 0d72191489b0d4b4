package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"

	"github.com/groundgate/groundgate/sse"
	"github.com/groundgate/groundgate/wire"
)

var (
	errFailure  = errors.New("upstream failure")
	errExcluded = errors.New("not a breaker outcome")
)

// attempt is a successful upstream call whose body the caller consumes.
type attempt struct {
	resp     *http.Response
	upstream *upstream
	body     []byte        // the whole body when not streaming
	events   *primedReader // a stream's events, from the first (see streamstart.go)
	cancel   context.CancelFunc
	sent     *sentBody // the request's body (nil without one)
}

func (a *attempt) close() {
	a.resp.Body.Close()
	a.cancel()
}

// outcome of one failed try, kept to build the final error.
type failure struct {
	upstream *upstream
	reason   string // "429", "500", "connect", "timeout", "breaker_open", ...
}

// call sends body to the pool's upstreams until one answers, honouring
// priority, weight, breakers, retry-after and the total deadline. A
// non-retryable upstream answer (2xx, or 4xx other than 429) is returned
// as is. stream means the body is read by the caller.
func (g *Gateway) call(ex *exchange, p *pool, op operation, body []byte, stream bool) (*attempt, error) {
	ctx := ex.r.Context()
	deadline := ex.start.Add(time.Duration(g.Timeout))
	order := p.order()
	if ex.stored != nil {
		// A follow-up goes where the response it continues is stored.
		order = preferUpstream(order, ex.stored.upstream)
	}
	var tried uint64 // bit i: order[i] was tried since the last reset
	var last failure
	var lastRefusal error
	backoff := 50 * time.Millisecond

	for ex.attempts < g.MaxAttempts {
		u, idx, done := p.next(order, tried)
		if u == nil {
			if last.reason == "budget" {
				break // budgets do not come back by waiting a moment
			}
			wait, ok := g.waitBeforeRetry(p, tried, backoff, deadline)
			if !ok {
				break
			}
			if err := sleep(ctx, wait); err != nil {
				return nil, errClientGone
			}
			backoff *= 2
			tried = 0
			continue
		}
		tried |= 1 << idx
		hb, refused, err := ex.reserveDeployment(u)
		if err != nil {
			done(errExcluded)
			return nil, err
		}
		if refused != nil {
			// This deployment's budget is spent: try another.
			done(errExcluded)
			last, lastRefusal = failure{upstream: u, reason: "budget"}, refused
			continue
		}
		ex.attempts++
		at, reason, err := g.try(ctx, ex, u, op, body, stream, deadline)
		if err == nil {
			done(nil)
			if hb != nil {
				ex.held = append(ex.held, hb)
			}
			return at, nil
		}
		if ctx.Err() != nil {
			// The client left with the request at the upstream, which
			// may bill it: the reservations are settled, not released.
			done(errExcluded)
			ex.abandon(stream)
			if hb != nil {
				ex.held = append(ex.held, hb)
			}
			return nil, errClientGone
		}
		if hb != nil {
			ex.settleOne(hb, true)
		}
		if errors.Is(err, errExcluded) {
			done(errExcluded)
		} else {
			done(errFailure)
		}
		last = failure{upstream: u, reason: reason}
		retriesTotal.WithLabelValues(u.name, reason).Inc()
		g.logger.Warn("upstream attempt failed", zap.String("request_id", ex.id),
			zap.String("upstream", u.name), zap.String("reason", reason), zap.Error(err))
	}
	if last.reason == "budget" {
		return nil, lastRefusal
	}
	return nil, g.noUpstream(p, last, deadline)
}

// try makes one attempt. It returns the reason of a retryable failure;
// errExcluded wraps failures the breaker should not count (429).
func (g *Gateway) try(ctx context.Context, ex *exchange, u *upstream, op operation, body []byte, stream bool, deadline time.Time) (at *attempt, reason string, err error) {
	ctx, sp := ex.traceAttempt(ctx, u, op)
	defer sp.end(&at, &reason, &err)
	limit := min(time.Duration(g.AttemptTimeout), time.Until(deadline))
	if limit <= 0 {
		return nil, "timeout", fmt.Errorf("deadline reached")
	}
	actx, cancel := context.WithCancel(ctx)
	var timedOut atomic.Bool
	timer := time.AfterFunc(limit, func() { timedOut.Store(true); cancel() })
	fail := func(reason string, err error) (*attempt, string, error) {
		timer.Stop()
		cancel()
		if timedOut.Load() {
			return nil, "timeout", fmt.Errorf("no answer within %s", limit)
		}
		return nil, reason, err
	}

	req, reqBody, err := u.newRequest(actx, op, body, ex)
	if err != nil {
		return fail("credentials", err)
	}
	sent := time.Now()
	resp, err := u.client.Do(req)
	if err != nil {
		return fail("connect", err)
	}
	upstreamDuration.WithLabelValues(u.name, strconv.Itoa(resp.StatusCode)).Observe(time.Since(sent).Seconds())
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		if ra, ok := retryAfter(resp.Header); ok {
			u.state.coolFor(ra)
		} else if resp.StatusCode == http.StatusTooManyRequests {
			u.state.coolFor(time.Second)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		reason := strconv.Itoa(resp.StatusCode)
		if resp.StatusCode == http.StatusTooManyRequests {
			return fail(reason, fmt.Errorf("%w: throttled (429)", errExcluded))
		}
		return fail(reason, fmt.Errorf("%w: status %d", errFailure, resp.StatusCode))
	}
	at = &attempt{resp: resp, upstream: u, cancel: cancel, sent: reqBody}
	if stream && resp.StatusCode == http.StatusOK {
		// Still within the attempt's timer: wait for the first token.
		rd := sse.NewReader(resp.Body, 0)
		starts := startsAnswer
		if op == opResponses {
			starts = responseStarts
		}
		early, err := earlyEvents(rd, starts)
		if err != nil {
			resp.Body.Close()
			return fail("stream_reset", fmt.Errorf("%w: stream broke before its first token: %v", errFailure, err))
		}
		timer.Stop()
		at.events = &primedReader{early: early, rd: rd}
		return at, "", nil
	}
	// Non-streamed (or an error answer): read it all inside the timer.
	at.body, err = readAllInto(make([]byte, 0, answerBufSize(resp.ContentLength, g.MaxResponseBody)), io.LimitReader(resp.Body, g.MaxResponseBody+1))
	resp.Body.Close()
	if err != nil {
		return fail("read", err)
	}
	timer.Stop()
	if int64(len(at.body)) > g.MaxResponseBody {
		cancel()
		return nil, "too_large", fmt.Errorf("%w: response exceeds %d bytes", errFailure, g.MaxResponseBody)
	}
	return at, "", nil
}

// waitBeforeRetry decides whether another round through the pool is worth
// it, and how long to wait first: until the earliest retry-after, or a
// short backoff when upstreams failed without one.
func (g *Gateway) waitBeforeRetry(p *pool, tried uint64, backoff time.Duration, deadline time.Time) (time.Duration, bool) {
	now := time.Now()
	var wait time.Duration
	found := false
	for _, u := range p.upstreams {
		if u.state.breaker.State() == gobreaker.StateOpen {
			continue
		}
		until, cooling := u.state.cooling(now)
		w := backoff
		if cooling {
			w = until.Sub(now)
		}
		if !found || w < wait {
			wait, found = w, true
		}
	}
	if !found || wait > time.Duration(g.MaxRetryWait) || now.Add(wait).After(deadline) {
		return 0, false
	}
	return wait, true
}

// noUpstream is the error when no attempt succeeded: 503 when upstreams
// are throttled or their breakers are open, 502 when they failed.
func (g *Gateway) noUpstream(p *pool, last failure, deadline time.Time) error {
	now := time.Now()
	ra := time.Duration(0)
	for _, u := range p.upstreams {
		if until, ok := u.state.cooling(now); ok {
			if ra == 0 || until.Sub(now) < ra {
				ra = until.Sub(now)
			}
		} else if u.state.breaker.State() != gobreaker.StateOpen {
			ra = time.Second // one is available again now
		}
	}
	if ra == 0 {
		ra = time.Duration(g.Breaker.OpenFor)
	}
	secs := strconv.Itoa(int(math.Ceil(ra.Seconds())))
	e := &wire.Error{
		Status: http.StatusBadGateway, Type: wire.TypeServer, Code: "upstream_error",
		Header: http.Header{"Retry-After": {secs}},
	}
	switch last.reason {
	case "", "429", "breaker_open":
		e.Status, e.Code = http.StatusServiceUnavailable, "no_healthy_upstream"
		e.Message = fmt.Sprintf("No deployment of pool %q can take the request now (throttled or unavailable). Retry after %s seconds.", p.name, secs)
	case "timeout":
		e.Status, e.Code = http.StatusGatewayTimeout, "upstream_timeout"
		e.Message = fmt.Sprintf("The deployments of pool %q did not answer in time (last tried: %s).", p.name, last.upstream.name)
	default:
		e.Message = fmt.Sprintf("The deployments of pool %q failed (last tried: %s, %s).", p.name, last.upstream.name, describe(last.reason))
	}
	if time.Now().After(deadline) && last.reason != "" {
		e.Message += " The gateway's time limit for the request was reached."
	}
	return e
}

func describe(reason string) string {
	switch reason {
	case "connect":
		return "connection failed"
	case "read":
		return "response cut off"
	case "credentials":
		return "could not obtain upstream credentials"
	case "too_large":
		return "response too large"
	}
	return "status " + reason
}

// order returns the pool's upstreams, lowest priority number first, each
// priority level shuffled by weight (Efraimidis–Spirakis sampling).
func (p *pool) order() []*upstream {
	if len(p.upstreams) == 1 {
		return p.upstreams
	}
	type keyed struct {
		u   *upstream
		key float64
	}
	ks := make([]keyed, len(p.upstreams))
	for i, u := range p.upstreams {
		ks[i] = keyed{u, math.Pow(rand.Float64(), 1/float64(u.weight))}
	}
	slices.SortFunc(ks, func(a, b keyed) int {
		if a.u.priority != b.u.priority {
			return a.u.priority - b.u.priority
		}
		switch {
		case a.key > b.key:
			return -1
		case a.key < b.key:
			return 1
		}
		return 0
	})
	out := make([]*upstream, len(ks))
	for i, k := range ks {
		out[i] = k.u
	}
	return out
}

// preferUpstream moves the upstream called name to the front of order.
func preferUpstream(order []*upstream, name string) []*upstream {
	for i, u := range order {
		if u.name == name && i > 0 {
			out := make([]*upstream, 0, len(order))
			out = append(out, u)
			out = append(out, order[:i]...)
			return append(out, order[i+1:]...)
		}
	}
	return order
}

// next returns the first upstream in order that is untried, not cooling
// down after a 429, and admitted by its breaker, with the breaker's done.
func (p *pool) next(order []*upstream, tried uint64) (*upstream, int, func(error)) {
	now := time.Now()
	for i, u := range order {
		if tried&(1<<i) != 0 {
			continue
		}
		if _, cooling := u.state.cooling(now); cooling {
			continue
		}
		done, err := u.state.breaker.Allow()
		if err != nil {
			retriesTotal.WithLabelValues(u.name, "breaker_open").Inc()
			continue
		}
		return u, i, done
	}
	return nil, -1, nil
}

// newRequest builds the upstream request: the upstream's URL, its own
// credentials (never the client's), and the body adapted to it, which a
// started stream can release (see sentBody).
func (u *upstream) newRequest(ctx context.Context, op operation, body []byte, ex *exchange) (*http.Request, *sentBody, error) {
	target := u.target(op, &ex.route, ex.upstreamQuery)
	// Responses name the deployment in the body on every Azure route.
	if u.setModel || (op == opResponses && body != nil) {
		var err error
		if body, err = setModel(body, u.deployment); err != nil {
			return nil, nil, err
		}
	}
	method := http.MethodPost
	if op == opStoredResponse {
		method = ex.r.Method
	}
	var sent *sentBody
	if len(body) > 0 {
		sent = newSentBody(body)
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteRequest: sent.written})
	}
	req, err := http.NewRequestWithContext(ctx, method, target, nil)
	if err != nil {
		return nil, nil, err
	}
	if sent != nil {
		req.Body, _ = sent.reader()
		req.GetBody = sent.reader
		req.ContentLength = int64(len(body))
	} else if body != nil {
		req.Body = http.NoBody
	}
	h := req.Header
	h["Content-Type"] = []string{"application/json"}
	h["Accept"] = []string{"application/json"}
	h["User-Agent"] = []string{"Groundgate/1"}
	h["X-Ms-Client-Request-Id"] = []string{ex.id}
	ex.injectTrace(ctx, h)
	if err := u.creds.apply(ctx, h); err != nil {
		return nil, nil, err
	}
	return req, sent, nil
}

// retryAfter is the wait an upstream's 429 or 5xx asks for.
func retryAfter(h http.Header) (time.Duration, bool) { return wire.RetryAfter(h, time.Now()) }

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// answerBufSize is the room to read an answer into: its length and one
// byte to see the end, when the upstream said how long it is (and within
// the limit), else 4 KB to start.
func answerBufSize(contentLength, limit int64) int {
	if contentLength >= 0 && contentLength <= limit {
		return int(contentLength) + 1
	}
	return 4096
}
