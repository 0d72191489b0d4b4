package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/groundgate/groundgate/wire"
)

// maxDocument bounds a discovery document or a JWKS.
const maxDocument = 1 << 20

// fetchTimeout bounds one discovery or JWKS fetch.
const fetchTimeout = 10 * time.Second

// KeySource locates an issuer's signing keys: its JWKS URL directly, or
// the discovery document that names it.
type KeySource struct {
	// Issuer is what the discovery document must declare as its issuer.
	Issuer string
	// DiscoveryURL is the OpenID configuration document; used when
	// JWKSURL is empty.
	DiscoveryURL string
	// JWKSURL is the key set; when set, discovery is skipped.
	JWKSURL string
}

// KeySet caches an issuer's public signing keys. Keys are fetched on
// first use, refreshed in the background once older than the refresh
// interval, and refetched at once for a key id it does not know (the
// issuer rotated its keys), but not more often than the minimum refetch
// interval, so tokens with made-up key ids cannot make it hammer the
// issuer. When a fetch fails the keys it had keep serving.
type KeySet struct {
	src        KeySource
	client     *http.Client
	refresh    time.Duration
	minRefetch time.Duration
	now        func() time.Time

	mu          sync.Mutex
	jwksURL     string // from discovery, once found
	keys        []jose.JSONWebKey
	fetched     time.Time // last successful fetch
	lastAttempt time.Time
	lastErr     error
	inflight    chan struct{} // closed when the running fetch ends
}

// NewKeySet returns an empty key set for src; client makes the requests.
func NewKeySet(src KeySource, client *http.Client, refresh, minRefetch time.Duration) *KeySet {
	return &KeySet{src: src, client: client, refresh: refresh, minRefetch: minRefetch, now: time.Now}
}

// errUnknownKey: the token names a key the issuer does not publish.
var errUnknownKey = errors.New("no published key matches the token's key id")

// Prefetch starts a fetch in the background, so the first token does not
// wait for one.
func (ks *KeySet) Prefetch() {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if ks.inflight == nil && ks.fetched.IsZero() {
		ks.startFetchLocked()
	}
}

// candidates returns the keys that may have signed a token with key id
// kid. Without a matching key it refetches (at most once per minimum
// refetch interval) and waits for that fetch, bounded by ctx.
func (ks *KeySet) candidates(ctx context.Context, kid string) ([]jose.JSONWebKey, error) {
	for attempt := 0; ; attempt++ {
		ks.mu.Lock()
		now := ks.now()
		match := matching(ks.keys, kid)
		if len(match) > 0 {
			if now.Sub(ks.fetched) > ks.refresh && ks.inflight == nil && now.Sub(ks.lastAttempt) >= ks.minRefetch {
				ks.startFetchLocked() // stale: refresh, keep serving these
			}
			ks.mu.Unlock()
			return match, nil
		}
		wait := ks.inflight
		if wait == nil && attempt == 0 && (ks.lastAttempt.IsZero() || now.Sub(ks.lastAttempt) >= ks.minRefetch) {
			wait = ks.startFetchLocked()
		}
		never, lastErr := ks.fetched.IsZero(), ks.lastErr
		ks.mu.Unlock()
		if wait == nil || attempt > 0 {
			if never {
				return nil, fmt.Errorf("%w: %v", ErrUnavailable, lastErr)
			}
			return nil, errUnknownKey
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: waiting for the issuer's keys: %v", ErrUnavailable, ctx.Err())
		}
	}
}

// matching returns the keys with id kid; every key when kid is empty
// (a token that names none may be signed by any of them).
func matching(keys []jose.JSONWebKey, kid string) []jose.JSONWebKey {
	if kid == "" {
		return keys
	}
	for i := range keys {
		if keys[i].KeyID == kid {
			return keys[i : i+1]
		}
	}
	return nil
}

// startFetchLocked starts a fetch; ks.mu is held.
func (ks *KeySet) startFetchLocked() chan struct{} {
	done := make(chan struct{})
	ks.inflight = done
	ks.lastAttempt = ks.now()
	jwksURL := ks.jwksURL
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
		defer cancel()
		keys, url, err := ks.fetch(ctx, jwksURL)
		ks.mu.Lock()
		if err == nil {
			ks.keys, ks.jwksURL, ks.fetched = keys, url, ks.now()
		}
		ks.lastErr = err
		ks.inflight = nil
		ks.mu.Unlock()
		close(done)
	}()
	return done
}

// Has reports whether the key set still publishes key kid (as last
// fetched): a token verified with a key the issuer has since withdrawn
// must be verified again.
func (ks *KeySet) Has(kid string) bool {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	for i := range ks.keys {
		if ks.keys[i].KeyID == kid {
			return true
		}
	}
	return false
}

// LastError is the error of the latest fetch, nil when it succeeded.
func (ks *KeySet) LastError() error {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	return ks.lastErr
}

func (ks *KeySet) fetch(ctx context.Context, jwksURL string) ([]jose.JSONWebKey, string, error) {
	if jwksURL == "" {
		jwksURL = ks.src.JWKSURL
	}
	if jwksURL == "" {
		var doc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		if err := ks.getJSON(ctx, ks.src.DiscoveryURL, &doc); err != nil {
			return nil, "", fmt.Errorf("discovery: %w", err)
		}
		if doc.Issuer != ks.src.Issuer {
			return nil, "", fmt.Errorf("discovery: the document at %s is for issuer %q, not %q", ks.src.DiscoveryURL, doc.Issuer, ks.src.Issuer)
		}
		if err := checkURL(doc.JWKSURI); err != nil {
			return nil, "", fmt.Errorf("discovery: jwks_uri: %w", err)
		}
		jwksURL = doc.JWKSURI
	}
	var set jose.JSONWebKeySet
	if err := ks.getJSON(ctx, jwksURL, &set); err != nil {
		return nil, "", fmt.Errorf("jwks: %w", err)
	}
	keys := usable(set.Keys)
	if len(keys) == 0 {
		return nil, "", fmt.Errorf("jwks: %s has no public signing key", jwksURL)
	}
	return keys, jwksURL, nil
}

// usable keeps public signature keys: never a symmetric (oct) key, which
// would let anyone who read the key set forge HMAC tokens, and never a
// key marked for encryption.
func usable(in []jose.JSONWebKey) []jose.JSONWebKey {
	var out []jose.JSONWebKey
	for _, k := range in {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if !k.IsPublic() || !k.Valid() {
			continue
		}
		out = append(out, k)
	}
	return out
}

func (ks *KeySet) getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := ks.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDocument))
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocument+1))
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if len(body) > maxDocument {
		return fmt.Errorf("GET %s: larger than %d bytes", url, maxDocument)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

// checkURL accepts https URLs, and http ones to loopback (a local issuer).
func checkURL(u string) error {
	_, err := wire.ServiceURL(u)
	return err
}
