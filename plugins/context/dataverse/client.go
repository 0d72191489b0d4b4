package dataverse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	"github.com/groundgate/groundgate/wire"
)

const (
	// maxResponse bounds one response body.
	maxResponse = 32 << 20
	// maxThrottleRetries bounds the waits for Retry-After within one
	// request (each also has to fit the request's timeout).
	maxThrottleRetries = 3
	// defaultRetryAfter is the wait for a 429 that names none.
	defaultRetryAfter = time.Second
	// preferAnnotations asks for the display text of picklists, dates and
	// lookups, and for the table a lookup points to.
	preferAnnotations = `odata.include-annotations="OData.Community.Display.V1.FormattedValue,Microsoft.Dynamics.CRM.lookuplogicalname"`
)

// tokenProvider hands out bearer tokens (tokenSource, or a stub in tests).
type tokenProvider interface {
	Token(ctx context.Context) (string, error)
	Invalidate(tok string)
}

// client speaks the Dataverse Web API: OData headers, bearer token,
// retries on 429 (Retry-After), one retry on 5xx and on a refused token,
// and paging by @odata.nextLink.
type client struct {
	env      string // environment URL, no trailing slash
	api      string // env + /api/data/<version>/
	origin   string // scheme://host of env: nextLinks must stay on it
	http     *http.Client
	tokens   tokenProvider
	timeout  time.Duration // one request, its retries included
	pageSize int
	maxPages int
	sleep    func(context.Context, time.Duration) error // waits for Retry-After; tests replace it
}

// Error is an error answered by Dataverse: the HTTP status and the code
// and message of its {"error":{"code","message"}} body.
type Error struct {
	Op      string // what was asked, e.g. "GET incidents"
	Status  int
	Code    string // e.g. 0x80072322; often empty
	Message string
	// RetryAfter is set when Dataverse throttled the request and asked
	// for a wait longer than the time the request had left.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("dataverse: ")
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
		fmt.Fprintf(&b, " (throttled: Dataverse asks to retry after %s, more than the request has left)", e.RetryAfter)
	}
	return b.String()
}

// apiError builds an Error from a response body.
func apiError(op string, status int, body []byte) *Error {
	e := &Error{Op: op, Status: status}
	if gjson.ValidBytes(body) {
		r := gjson.ParseBytes(body).Get("error")
		e.Code = wire.OneLine(r.Get("code").String(), 100)
		e.Message = wire.OneLine(r.Get("message").String(), 500)
	} else if t := strings.TrimSpace(string(body)); t != "" && utf8.ValidString(t) && t[0] != '<' {
		e.Message = wire.OneLine(t, 200) // a proxy's plain-text answer; HTML pages are left out
	}
	return e
}

// do sends one request and returns the body of its 2xx answer. op names
// the request in errors ("GET incidents"); the URL is never put in an
// error, since its query holds record keys from user text. prefer is the
// Prefer header ("" for none).
func (c *client) do(ctx context.Context, method, rawURL, op string, body []byte, prefer string) ([]byte, error) {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var throttled, serverErrors, authRetries int
	for {
		status, header, data, tok, err := c.once(ctx, method, rawURL, body, prefer)
		if err != nil {
			if parent.Err() != nil {
				return nil, fmt.Errorf("dataverse: %s: %w", op, parent.Err())
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("dataverse: %s: no answer within %s: %w", op, c.timeout, ctx.Err())
			}
			if serverErrors == 0 && !errors.Is(err, errNoToken) {
				serverErrors++
				continue
			}
			return nil, fmt.Errorf("dataverse: %s: %w", op, err)
		}
		switch {
		case status >= 200 && status < 300:
			return data, nil
		case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable && header.Get("Retry-After") != "":
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
		case status == http.StatusUnauthorized && authRetries == 0:
			// The token may have been revoked or have expired early:
			// drop it and try once with a fresh one.
			authRetries++
			c.tokens.Invalidate(tok)
		case status >= 500 && serverErrors == 0:
			serverErrors++
		default:
			return nil, apiError(op, status, data)
		}
	}
}

var errNoToken = errors.New("no token")

// once sends the request one time.
func (c *client) once(ctx context.Context, method, rawURL string, body []byte, prefer string) (status int, header http.Header, data []byte, tok string, err error) {
	tok, err = c.tokens.Token(ctx)
	if err != nil {
		return 0, nil, nil, "", fmt.Errorf("%w: %v", errNoToken, err)
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
	if err != nil {
		return 0, nil, nil, tok, err
	}
	h := req.Header
	h["Accept"] = []string{"application/json"}
	h["OData-MaxVersion"] = []string{"4.0"}
	h["OData-Version"] = []string{"4.0"}
	h["If-None-Match"] = []string{"null"}
	h["Authorization"] = []string{"Bearer " + tok}
	if prefer != "" {
		h["Prefer"] = []string{prefer}
	}
	if body != nil {
		h["Content-Type"] = []string{"application/json; charset=utf-8"}
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

// prefer is the Prefer header of a paged query.
func (c *client) prefer(pageSize int) string {
	if pageSize <= 0 {
		return preferAnnotations
	}
	return preferAnnotations + ",odata.maxpagesize=" + strconv.Itoa(pageSize)
}

// query GETs set?q and follows @odata.nextLink, at most maxPages pages,
// handing each row to fn until fn returns false. It reports whether every
// row was read (fn never said stop and no nextLink was left).
func (c *client) query(ctx context.Context, set, q string, maxPages int, fn func(row) bool) (complete bool, err error) {
	op := "GET " + set
	link := c.api + set + "?" + q
	for page := 1; ; page++ {
		data, err := c.do(ctx, http.MethodGet, link, op, nil, c.prefer(c.pageSize))
		if err != nil {
			return false, err
		}
		rows, next, err := parsePage(data)
		if err != nil {
			return false, fmt.Errorf("dataverse: %s: %v", op, err)
		}
		for _, r := range rows {
			if !fn(r) {
				return false, nil
			}
		}
		if next == "" {
			return true, nil
		}
		if page >= maxPages {
			return false, nil
		}
		if err := c.checkNextLink(next); err != nil {
			return false, fmt.Errorf("dataverse: %s: %v", op, err)
		}
		link = next
	}
}

// checkNextLink refuses a nextLink that leaves the environment: following
// it would send the bearer token elsewhere.
func (c *client) checkNextLink(link string) error {
	u, err := url.Parse(link)
	if err != nil || strings.ToLower(u.Scheme+"://"+u.Host) != c.origin || !strings.HasPrefix(u.Path, "/api/data/") || u.User != nil {
		return errors.New("@odata.nextLink does not point into the environment's Web API; not followed")
	}
	return nil
}
