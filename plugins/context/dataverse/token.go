package dataverse

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"github.com/tidwall/gjson"
)

// tokenPool shares token sources across config reloads, keyed by identity
// (token URL, client id, scope and a hash of the secret): a reload that
// keeps the credentials keeps the cached token, and two modules with the
// same credentials fetch one token.
var tokenPool = caddy.NewUsagePool()

// tokenTimeout bounds one request to the token endpoint. It runs detached
// from the caller (single flight), so one caller's short deadline does not
// fail the others waiting for the same token.
const tokenTimeout = 30 * time.Second

// tokenSource fetches Microsoft Entra ID client-credentials tokens and
// caches them: a token is refreshed in the background once 80% of its
// life has passed and fetched inline only when it has expired; concurrent
// callers share one fetch. The secret and the token never appear in an
// error or a log line.
type tokenSource struct {
	tokenURL string
	form     string // the url-encoded client-credentials form (holds the secret)
	client   *http.Client
	now      func() time.Time

	mu       sync.Mutex
	tok      string
	expires  time.Time // stop using tok from here on
	refresh  time.Time // refresh tok in the background from here on
	inflight *tokenCall
}

type tokenCall struct {
	done chan struct{}
	tok  string
	err  error
}

func newTokenSource(tokenURL, clientID, secret, scope string, client *http.Client) *tokenSource {
	return &tokenSource{
		tokenURL: tokenURL,
		form: url.Values{
			"grant_type":    {"client_credentials"},
			"client_id":     {clientID},
			"client_secret": {secret},
			"scope":         {scope},
		}.Encode(),
		client: client,
		now:    time.Now,
	}
}

// tokenKey identifies a token source in tokenPool. The secret is hashed so
// that the key can sit in memory dumps and debug output harmlessly.
func tokenKey(tokenURL, clientID, secret, scope string) string {
	sum := sha256.Sum256([]byte(secret))
	return strings.Join([]string{tokenURL, clientID, scope, hex.EncodeToString(sum[:])}, "|")
}

// Destruct implements caddy.Destructor: nothing to release.
func (*tokenSource) Destruct() error { return nil }

// Token returns a valid access token.
func (ts *tokenSource) Token(ctx context.Context) (string, error) {
	ts.mu.Lock()
	now := ts.now()
	if ts.tok != "" && now.Before(ts.expires) {
		tok := ts.tok
		if !now.Before(ts.refresh) && ts.inflight == nil {
			ts.startLocked()
		}
		ts.mu.Unlock()
		return tok, nil
	}
	c := ts.inflight
	if c == nil {
		c = ts.startLocked()
	}
	ts.mu.Unlock()
	select {
	case <-c.done:
		return c.tok, c.err
	case <-ctx.Done():
		return "", fmt.Errorf("waiting for an Entra ID token: %w", ctx.Err())
	}
}

// Invalidate drops tok if it is still the cached token: the API refused
// it (revoked, or the clock lied), so the next call fetches a new one.
func (ts *tokenSource) Invalidate(tok string) {
	ts.mu.Lock()
	if ts.tok == tok {
		ts.tok = ""
	}
	ts.mu.Unlock()
}

// startLocked starts the one fetch; ts.mu is held.
func (ts *tokenSource) startLocked() *tokenCall {
	c := &tokenCall{done: make(chan struct{})}
	ts.inflight = c
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), tokenTimeout)
		defer cancel()
		tok, life, err := ts.fetch(ctx)
		ts.mu.Lock()
		if err == nil {
			ts.setLocked(tok, life)
		} else if ts.tok != "" {
			// A failed background refresh: keep the token until it
			// expires and try again a little later, not on every call.
			ts.refresh = ts.now().Add(10 * time.Second)
		}
		ts.inflight = nil
		c.tok, c.err = tok, err
		ts.mu.Unlock()
		close(c.done)
	}()
	return c
}

// setLocked stores a token that lives for life: it is used until 30s
// before it expires (clock skew), refreshed when 20% of its life remains.
func (ts *tokenSource) setLocked(tok string, life time.Duration) {
	now := ts.now()
	margin := min(30*time.Second, life/4)
	ts.tok, ts.expires, ts.refresh = tok, now.Add(life-margin), now.Add(life*4/5)
}

func (ts *tokenSource) fetch(ctx context.Context) (string, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.tokenURL, strings.NewReader(ts.form))
	if err != nil {
		return "", 0, fmt.Errorf("entra token request: %v", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := ts.client.Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("entra token endpoint %s unreachable: %v", redactURL(ts.tokenURL), unwrapURLError(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", 0, fmt.Errorf("entra token endpoint %s: reading the response: %v", redactURL(ts.tokenURL), err)
	}
	r := gjson.ParseBytes(body)
	if resp.StatusCode != http.StatusOK {
		// error and error_description describe the request; Entra never
		// echoes the secret in them.
		return "", 0, fmt.Errorf("entra token endpoint %s answered %d: %s: %s", redactURL(ts.tokenURL),
			resp.StatusCode, oneLine(r.Get("error").String(), 100), oneLine(r.Get("error_description").String(), 300))
	}
	tok := r.Get("access_token").String()
	life := time.Duration(r.Get("expires_in").Int()) * time.Second // a number, or a string in older endpoints
	if tok == "" || life <= 0 {
		return "", 0, fmt.Errorf("entra token endpoint %s: the response lacks access_token or expires_in", redactURL(ts.tokenURL))
	}
	return tok, life, nil
}

// redactURL keeps scheme, host and path: no query, no user info.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(unparsable URL)"
	}
	return u.Scheme + "://" + u.Host + u.Path
}

// oneLine keeps the first line of s, at most n bytes of it.
func oneLine(s string, n int) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	if len(s) > n {
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n] + "…"
	}
	return s
}

// unwrapURLError drops the URL that *url.Error carries: request URLs hold
// record keys (user text) that do not belong in an error.
func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

var _ caddy.Destructor = (*tokenSource)(nil)
