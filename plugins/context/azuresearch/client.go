package azuresearch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	"github.com/groundgate/groundgate/entra"

	"github.com/groundgate/groundgate/wire"
)

const (
	// maxResponse bounds one response body.
	maxResponse = 32 << 20
	// maxThrottleRetries bounds the waits for Retry-After within one
	// request (each also has to fit the request's timeout).
	maxThrottleRetries = 3
	// defaultRetryAfter is the wait for a 429 or 503 that names none.
	defaultRetryAfter = time.Second
)

// credentials authenticate a request: an api-key header or an Entra ID
// bearer token.
type credentials interface {
	// apply sets the auth header and returns the token used ("" for a key).
	apply(ctx context.Context, h http.Header) (string, error)
	// refused is told that the service answered 401 to tok.
	refused(tok string)
}

type keyCreds struct{ key string }

func (k keyCreds) apply(_ context.Context, h http.Header) (string, error) {
	h["Api-Key"] = []string{k.key}
	return "", nil
}

func (keyCreds) refused(string) {}

type tokenCreds struct{ ts *entra.Source }

func (c tokenCreds) apply(ctx context.Context, h http.Header) (string, error) {
	tok, err := c.ts.Token(ctx)
	if err != nil {
		return "", err
	}
	h["Authorization"] = []string{"Bearer " + tok}
	return tok, nil
}

func (c tokenCreds) refused(tok string) { c.ts.Invalidate(tok) }

// Error is an error answered by Azure AI Search or the embeddings
// endpoint: the HTTP status and the code and message of its
// {"error":{"code","message"}} body.
type Error struct {
	Op      string // e.g. "POST indexes/kb/docs/search"
	Status  int
	Code    string
	Message string
	// RetryAfter is set when the service throttled the request and asked
	// for a wait longer than the time the request had left.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("azure_search: ")
	b.WriteString(e.Op)
	b.WriteString(": ")
	b.WriteString(strconv.Itoa(e.Status))
	if t := http.StatusText(e.Status); t != "" {
		b.WriteString(" " + t)
	}
	if e.Code != "" {
		b.WriteString(": " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (throttled: the service asks to retry after %s, more than the request has left)", e.RetryAfter)
	}
	return b.String()
}

func apiError(op string, status int, body []byte) *Error {
	e := &Error{Op: op, Status: status}
	if gjson.ValidBytes(body) {
		r := gjson.ParseBytes(body).Get("error")
		e.Code = wire.OneLine(r.Get("code").String(), 100)
		e.Message = wire.OneLine(r.Get("message").String(), 500)
	} else if t := strings.TrimSpace(string(body)); t != "" && utf8.ValidString(t) && t[0] != '<' {
		e.Message = wire.OneLine(t, 200)
	}
	return e
}

// client posts JSON with retries: 429 and 503 wait for Retry-After (or
// retry-after-ms) when the wait fits the request's timeout, other 5xx and
// network errors are retried once, a 401 once with a fresh token.
type client struct {
	http    *http.Client
	timeout time.Duration
	sleep   func(context.Context, time.Duration) error // tests replace it
}

// post sends body to rawURL. op names the request in errors; the URL is
// not put in errors (it may carry an api-version only, but keys never go
// there either way).
func (c *client) post(ctx context.Context, rawURL, op string, body []byte, creds credentials) ([]byte, error) {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var throttled, serverErrors, authRetries int
	for {
		status, header, data, tok, err := c.once(ctx, rawURL, body, creds)
		if err != nil {
			if parent.Err() != nil {
				return nil, fmt.Errorf("azure_search: %s: %w", op, parent.Err())
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("azure_search: %s: no answer within %s: %w", op, c.timeout, ctx.Err())
			}
			if serverErrors == 0 && !errors.Is(err, errNoToken) {
				serverErrors++
				continue
			}
			return nil, fmt.Errorf("azure_search: %s: %w", op, err)
		}
		switch {
		case status >= 200 && status < 300:
			return data, nil
		case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
			wait := retryAfter(header, time.Now())
			deadline, _ := ctx.Deadline()
			if throttled >= maxThrottleRetries || time.Until(deadline) < wait {
				e := apiError(op, status, data)
				e.RetryAfter = wait
				return nil, e
			}
			throttled++
			if err := c.sleep(ctx, wait); err != nil {
				e := apiError(op, status, data)
				e.RetryAfter = wait
				return nil, e
			}
		case status == http.StatusUnauthorized && authRetries == 0 && tok != "":
			authRetries++
			creds.refused(tok)
		case status >= 500 && serverErrors == 0:
			serverErrors++
		default:
			return nil, apiError(op, status, data)
		}
	}
}

var errNoToken = errors.New("no token")

func (c *client) once(ctx context.Context, rawURL string, body []byte, creds credentials) (status int, header http.Header, data []byte, tok string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, "", err
	}
	req.Header["Content-Type"] = []string{"application/json"}
	req.Header["Accept"] = []string{"application/json"}
	tok, err = creds.apply(ctx, req.Header)
	if err != nil {
		return 0, nil, nil, "", fmt.Errorf("%w: %v", errNoToken, err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, nil, tok, wire.UnwrapURLError(err)
	}
	defer resp.Body.Close()
	data, err = io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return 0, nil, nil, tok, fmt.Errorf("reading the response: %v", err)
	}
	if len(data) > maxResponse {
		return 0, nil, nil, tok, fmt.Errorf("response larger than %d bytes", maxResponse)
	}
	return resp.StatusCode, resp.Header, data, tok, nil
}

// retryAfter is how long a throttled request waits: what the service
// asks (wire.RetryAfter), else defaultRetryAfter, at most an hour.
func retryAfter(h http.Header, now time.Time) time.Duration {
	d, ok := wire.RetryAfter(h, now)
	if !ok {
		d = defaultRetryAfter
	}
	return min(d, time.Hour)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
