// Package entra fetches Microsoft Entra ID client-credentials tokens for
// the gateway's calls to Azure (Azure OpenAI, Dataverse, Azure AI Search)
// and caches them: one Source per identity, shared across modules and
// config reloads through a usage pool.
package entra

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

	"github.com/caddyserver/caddy/v2"
	"github.com/tidwall/gjson"

	"github.com/groundgate/groundgate/wire"
)

// pool shares sources across config reloads, keyed by identity (token
// URL, client id, scope and a hash of the secret): a reload that keeps the
// credentials keeps the cached token, and two modules with the same
// credentials fetch one token.
var pool = caddy.NewUsagePool()

// Shared returns the pooled Source for this identity, creating it with
// newClient's client on first use, and the key to Release when the config
// that asked is cleaned up.
func Shared(tokenURL, clientID, secret, scope string, newClient func() *http.Client) (*Source, string) {
	key := Key(tokenURL, clientID, secret, scope)
	val, _, _ := pool.LoadOrNew(key, func() (caddy.Destructor, error) {
		return New(tokenURL, clientID, secret, scope, newClient()), nil
	})
	return val.(*Source), key
}

// Release gives back a config's hold on a pooled Source.
func Release(key string) error {
	_, err := pool.Delete(key)
	return err
}

// References reports how many configs hold the pooled Source of key.
func References(key string) (int, bool) { return pool.References(key) }

// fetchTimeout bounds one request to the token endpoint. It runs detached
// from the caller (single flight), so one caller's short deadline does not
// fail the others waiting for the same token.
const fetchTimeout = 30 * time.Second

// Source fetches Microsoft Entra ID client-credentials tokens and caches
// them: a token is refreshed in the background once 80% of its
// life has passed and fetched inline only when it has expired; concurrent
// callers share one fetch. The secret and the token never appear in an
// error or a log line.
type Source struct {
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

// New returns a Source for one identity (not pooled: see Shared).
func New(tokenURL, clientID, secret, scope string, client *http.Client) *Source {
	return &Source{
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

// Key identifies a Source in the pool. The secret is hashed so
// that the key can sit in memory dumps and debug output harmlessly.
func Key(tokenURL, clientID, secret, scope string) string {
	sum := sha256.Sum256([]byte(secret))
	return strings.Join([]string{tokenURL, clientID, scope, hex.EncodeToString(sum[:])}, "|")
}

// Destruct implements caddy.Destructor: nothing to release.
func (*Source) Destruct() error { return nil }

// SetClock replaces the time source (tests move time forward).
func (ts *Source) SetClock(now func() time.Time) {
	ts.mu.Lock()
	ts.now = now
	ts.mu.Unlock()
}

// Token returns a valid access token.
func (ts *Source) Token(ctx context.Context) (string, error) {
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
func (ts *Source) Invalidate(tok string) {
	ts.mu.Lock()
	if ts.tok == tok {
		ts.tok = ""
	}
	ts.mu.Unlock()
}

// startLocked starts the one fetch; ts.mu is held.
func (ts *Source) startLocked() *tokenCall {
	c := &tokenCall{done: make(chan struct{})}
	ts.inflight = c
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
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
func (ts *Source) setLocked(tok string, life time.Duration) {
	now := ts.now()
	margin := min(30*time.Second, life/4)
	ts.tok, ts.expires, ts.refresh = tok, now.Add(life-margin), now.Add(life*4/5)
}

func (ts *Source) fetch(ctx context.Context) (string, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.tokenURL, strings.NewReader(ts.form))
	if err != nil {
		return "", 0, fmt.Errorf("entra token request: %v", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := ts.client.Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("entra token endpoint %s unreachable: %v", wire.RedactURL(ts.tokenURL), wire.UnwrapURLError(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", 0, fmt.Errorf("entra token endpoint %s: reading the response: %v", wire.RedactURL(ts.tokenURL), err)
	}
	r := gjson.ParseBytes(body)
	if resp.StatusCode != http.StatusOK {
		// error and error_description describe the request; Entra never
		// echoes the secret in them.
		return "", 0, fmt.Errorf("entra token endpoint %s answered %d: %s: %s", wire.RedactURL(ts.tokenURL),
			resp.StatusCode, wire.OneLine(r.Get("error").String(), 100), wire.OneLine(r.Get("error_description").String(), 300))
	}
	tok := r.Get("access_token").String()
	life := time.Duration(r.Get("expires_in").Int()) * time.Second // a number, or a string in older endpoints
	if tok == "" || life <= 0 {
		return "", 0, fmt.Errorf("entra token endpoint %s: the response lacks access_token or expires_in", wire.RedactURL(ts.tokenURL))
	}
	return tok, life, nil
}

var _ caddy.Destructor = (*Source)(nil)
