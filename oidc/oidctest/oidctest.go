// Package oidctest is a local OpenID Connect issuer for tests: a
// discovery document and a JWKS on a loopback httptest server, real RSA
// keys that can be rotated, and tokens signed with them (or forged).
package oidctest

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Issuer is a running local issuer. Its issuer identifier is its URL plus
// "/v2.0", as Entra ID's v2 endpoints are.
type Issuer struct {
	URL string // issuer identifier (iss)
	srv *httptest.Server

	mu        sync.Mutex
	keys      []*rsa.PrivateKey // published; the last one signs
	kids      []string
	n         int
	JWKSCalls atomic.Int64
	down      atomic.Bool
}

// New starts an issuer with one RSA key; t.Cleanup stops it.
func New(t testing.TB) *Issuer {
	t.Helper()
	is := &Issuer{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2.0/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		if is.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                is.URL,
			"jwks_uri":                              is.srv.URL + "/discovery/v2.0/keys",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("GET /discovery/v2.0/keys", func(w http.ResponseWriter, r *http.Request) {
		is.JWKSCalls.Add(1)
		if is.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(is.JWKS())
	})
	is.srv = httptest.NewServer(mux)
	t.Cleanup(is.srv.Close)
	is.URL = is.srv.URL + "/v2.0"
	is.Rotate(false)
	return is
}

// DiscoveryURL is the issuer's OpenID configuration document.
func (is *Issuer) DiscoveryURL() string { return is.URL + "/.well-known/openid-configuration" }

// SetDown makes discovery and JWKS answer 503 (an unreachable issuer).
func (is *Issuer) SetDown(down bool) { is.down.Store(down) }

// Rotate adds a new signing key; with retire, the older keys are no
// longer published.
func (is *Issuer) Rotate(retire bool) string {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	is.n++
	kid := fmt.Sprintf("key-%d", is.n)
	if retire {
		is.keys, is.kids = nil, nil
	}
	is.keys = append(is.keys, k)
	is.kids = append(is.kids, kid)
	return kid
}

// JWKS is the published key set.
func (is *Issuer) JWKS() jose.JSONWebKeySet {
	is.mu.Lock()
	defer is.mu.Unlock()
	var set jose.JSONWebKeySet
	for i, k := range is.keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: is.kids[i], Algorithm: "RS256", Use: "sig"})
	}
	return set
}

// Claims returns typical Entra ID access token claims for aud, valid for
// an hour from now.
func (is *Issuer) Claims(aud string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": is.URL, "aud": aud, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"oid": "5b7e3a5c-0000-4000-8000-00000000a11c", "azp": "0f1e2d3c-0000-4000-8000-00000000c11e",
		"tid": "72f988bf-0000-4000-8000-000000000000", "ver": "2.0",
	}
}

// Token signs claims with the newest key (RS256, its key id).
func (is *Issuer) Token(claims map[string]any) string {
	is.mu.Lock()
	k, kid := is.keys[len(is.keys)-1], is.kids[len(is.kids)-1]
	is.mu.Unlock()
	return SignRSA(k, kid, claims)
}

// SignRSA signs claims with k (RS256) under key id kid.
func SignRSA(k *rsa.PrivateKey, kid string, claims map[string]any) string {
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		panic(err)
	}
	tok, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		panic(err)
	}
	return tok
}

// Unsigned returns claims as an "alg":"none" token.
func Unsigned(claims map[string]any) string {
	return raw(map[string]any{"alg": "none", "typ": "JWT"}, claims) + "."
}

func raw(header, claims map[string]any) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
}

// HMACWithPublicKey forges an HS256 token whose secret is the issuer's
// published RSA key (the classic algorithm-confusion attack).
func (is *Issuer) HMACWithPublicKey(claims map[string]any) string {
	set := is.JWKS()
	pub, _ := json.Marshal(set.Keys[len(set.Keys)-1])
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: pub},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", set.Keys[len(set.Keys)-1].KeyID))
	if err != nil {
		panic(err)
	}
	tok, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		panic(err)
	}
	return tok
}
