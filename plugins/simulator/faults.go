package simulator

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Faults, timing and rate limiting.

// directives are the [[sim:…]] markers found in the last user message.
type directives struct {
	echo         bool
	echoSystem   bool
	tokens       int // -1 = unset
	status       int // 0 = unset
	retryAfterMs int // -1 = unset
	dropAfter    int // -1 = unset
	delayMs      int
}

const (
	directivePrefix = "[[sim:"
	directiveSuffix = "]]"

	maxDirectiveTokens  = 100_000
	maxDirectiveDelayMs = 10 * 60 * 1000
	maxRetryAfterMs     = 24 * 60 * 60 * 1000
)

// parseDirectives reads every [[sim:…]] marker in text. An unknown
// directive or a bad value is a 400, so that a typo in a test does not go
// unnoticed.
func parseDirectives(text string) (directives, *requestError) {
	d := directives{tokens: -1, retryAfterMs: -1, dropAfter: -1}
	for {
		i := strings.Index(text, directivePrefix)
		if i < 0 {
			return d, nil
		}
		text = text[i+len(directivePrefix):]
		j := strings.Index(text, directiveSuffix)
		if j < 0 {
			return d, badRequest("messages", "", "unterminated simulator directive: missing \"]]\" after \"[[sim:\"")
		}
		spec := text[:j]
		text = text[j+len(directiveSuffix):]
		key, val, hasVal := strings.Cut(spec, "=")
		bad := func(why string) (directives, *requestError) {
			return d, badRequest("messages", "", "simulator directive [[sim:"+spec+"]]: "+why)
		}
		num := func(lo, hi int) (int, bool) {
			if !hasVal {
				return 0, false
			}
			n, err := strconv.Atoi(strings.TrimSpace(val))
			if err != nil || n < lo || n > hi {
				return 0, false
			}
			return n, true
		}
		var ok bool
		switch strings.TrimSpace(key) {
		case "echo":
			d.echo, ok = true, !hasVal
		case "echo_system":
			d.echoSystem, ok = true, !hasVal
		case "tokens":
			d.tokens, ok = num(0, maxDirectiveTokens)
		case "status":
			d.status, ok = num(400, 599)
		case "retry_after_ms":
			d.retryAfterMs, ok = num(0, maxRetryAfterMs)
		case "drop_after":
			d.dropAfter, ok = num(0, maxDirectiveTokens)
		case "delay_ms":
			d.delayMs, ok = num(0, maxDirectiveDelayMs)
		default:
			return bad("unknown directive (known: echo, echo_system, tokens=N, status=N, retry_after_ms=N, drop_after=N, delay_ms=N)")
		}
		if !ok {
			return bad("invalid or out-of-range value")
		}
	}
}

// stripDirectives removes every [[sim:…]] marker from text.
func stripDirectives(text string) string {
	if !strings.Contains(text, directivePrefix) {
		return text
	}
	var b strings.Builder
	for {
		i := strings.Index(text, directivePrefix)
		if i < 0 {
			break
		}
		j := strings.Index(text[i:], directiveSuffix)
		if j < 0 {
			break
		}
		b.WriteString(text[:i])
		text = text[i+j+len(directiveSuffix):]
	}
	b.WriteString(text)
	return strings.TrimSpace(b.String())
}

// sleepCtx waits d or until ctx is done; it reports whether the full wait
// elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// window is a fixed 60-second rate-limit window of one deployment. The
// window opens with the first request after the previous one expired.
type window struct {
	mu       sync.Mutex
	start    time.Time
	requests int64
	tokens   int64
}

const windowLength = 60 * time.Second

// Nominal capacity reported in x-ratelimit-remaining-* when no limit is
// configured (Azure's default ratio: 6 requests per minute per 1000 TPM).
const (
	nominalTokens   = 1_000_000
	nominalRequests = 6_000
)

// admission is the rate limiter's verdict.
type admission struct {
	ok            bool
	kind          string // "call" or "token" when !ok
	remainingReqs int64
	remainingToks int64
	retryAfter    time.Duration
}

// admit charges one request of toks tokens against the window.
func (w *window) admit(now time.Time, toks, rpm, tpm int64) admission {
	if rpm <= 0 && tpm <= 0 {
		return admission{ok: true, remainingReqs: nominalRequests, remainingToks: nominalTokens}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	// Concurrent callers read the clock before taking the lock, so now may
	// be a little before start: that is the same window, not a new one.
	// Only a clock stepped back by a whole window opens a new one.
	if w.start.IsZero() || now.Sub(w.start) >= windowLength || w.start.Sub(now) >= windowLength {
		w.start, w.requests, w.tokens = now, 0, 0
	}
	a := admission{ok: true}
	switch {
	case rpm > 0 && w.requests+1 > rpm:
		a.ok, a.kind = false, "call"
	case tpm > 0 && w.tokens+toks > tpm:
		a.ok, a.kind = false, "token"
	default:
		w.requests++
		w.tokens += toks
	}
	a.remainingReqs, a.remainingToks = nominalRequests, nominalTokens
	if rpm > 0 {
		a.remainingReqs = max(rpm-w.requests, 0)
	}
	if tpm > 0 {
		a.remainingToks = max(tpm-w.tokens, 0)
	}
	if !a.ok {
		a.retryAfter = w.start.Add(windowLength).Sub(now)
	}
	return a
}

func setRemaining(hdr http.Header, a admission) {
	hdr["X-Ratelimit-Remaining-Requests"] = []string{strconv.FormatInt(a.remainingReqs, 10)}
	hdr["X-Ratelimit-Remaining-Tokens"] = []string{strconv.FormatInt(a.remainingToks, 10)}
}

// writeRateLimited writes Azure's 429: body, retry-after (whole seconds,
// rounded up, at least 1) and retry-after-ms.
func writeRateLimited(w http.ResponseWriter, operation, apiVersion, kind string, retry time.Duration) {
	ms := retry.Milliseconds()
	if retry > 0 && ms == 0 {
		ms = 1
	}
	secs := max((ms+999)/1000, 1)
	hdr := w.Header()
	hdr["Retry-After"] = []string{strconv.FormatInt(secs, 10)}
	hdr["Retry-After-Ms"] = []string{strconv.FormatInt(ms, 10)}
	writeJSON(w, http.StatusTooManyRequests, azureErrorBody("429", rateLimitMessage(operation, apiVersion, kind, secs)))
}

// injected decides the configured random faults, drawn in a fixed order
// from the request's random stream.
type injected struct {
	status int // 0, 429 or 500
	drop   bool
}

func (h *Simulator) drawFaults(rng *rand.PCG) injected {
	var f injected
	e, l, d := float64From(rng), float64From(rng), float64From(rng)
	switch {
	case h.ErrorRate > 0 && e < h.ErrorRate:
		f.status = http.StatusInternalServerError
	case h.RateLimitRate > 0 && l < h.RateLimitRate:
		f.status = http.StatusTooManyRequests
	}
	f.drop = h.DropRate > 0 && d < h.DropRate
	return f
}

// writeInjectedError answers with the error a [[sim:status=N]] directive
// or an injected fault asked for.
func (h *Simulator) writeInjectedError(w http.ResponseWriter, status int, operation, apiVersion string, retryAfterMs int) {
	if ce := h.logger.Check(zap.DebugLevel, "simulated error"); ce != nil {
		ce.Write(zap.Int("status", status), zap.String("operation", operation))
	}
	retry := h.retryAfter
	if retryAfterMs >= 0 {
		retry = time.Duration(retryAfterMs) * time.Millisecond
	}
	switch status {
	case http.StatusTooManyRequests:
		writeRateLimited(w, operation, apiVersion, "token", retry)
	case http.StatusInternalServerError:
		writeJSON(w, status, bodyInternalError)
	case http.StatusServiceUnavailable:
		ms := retry.Milliseconds()
		w.Header()["Retry-After"] = []string{strconv.FormatInt(max((ms+999)/1000, 1), 10)}
		w.Header()["Retry-After-Ms"] = []string{strconv.FormatInt(ms, 10)}
		writeJSON(w, status, bodyServiceUnavailable)
	default:
		writeJSON(w, status, azureErrorBody(strconv.Itoa(status), "Simulated error "+strconv.Itoa(status)+" ("+http.StatusText(status)+")."))
	}
}
