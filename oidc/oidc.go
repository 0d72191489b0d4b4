// Package oidc verifies OAuth 2.0 / OpenID Connect access tokens (JWTs)
// that clients present as `Authorization: Bearer`, such as the Microsoft
// Entra ID tokens an AzureOpenAI client with azure_ad_token_provider
// sends: the signature with the issuer's published keys (OIDC discovery
// and JWKS, see [KeySet]), the issuer, the audience, and the expiry and
// not-before times with a bounded clock skew. Only asymmetric algorithms
// from an allow-list are accepted: never "none", never HMAC, whose
// "secret" would be the public key.
//
// JOSE parsing and signature checks are go-jose's.
package oidc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// MaxTokenSize bounds a token: Entra ID tokens with many groups stay well
// below it.
const MaxTokenSize = 16 << 10

// MaxSkew bounds the configurable clock skew.
const MaxSkew = 5 * time.Minute

// Errors a verification returns, wrapped with the reason (for logs, not
// for clients).
var (
	// ErrInvalid: the token is malformed, forged, expired, not yet valid,
	// or not meant for this gateway.
	ErrInvalid = errors.New("invalid token")
	// ErrUnavailable: the issuer's keys could not be fetched, so a token
	// cannot be checked at all (the issuer is unreachable and no keys are
	// cached).
	ErrUnavailable = errors.New("issuer keys unavailable")
)

// Algorithms the verifier may be configured with: asymmetric only.
var allowed = map[string]jose.SignatureAlgorithm{
	"RS256": jose.RS256, "RS384": jose.RS384, "RS512": jose.RS512,
	"PS256": jose.PS256, "PS384": jose.PS384, "PS512": jose.PS512,
	"ES256": jose.ES256, "ES384": jose.ES384, "ES512": jose.ES512,
	"EdDSA": jose.EdDSA,
}

// ParseAlgorithms checks names against the asymmetric algorithms.
func ParseAlgorithms(names []string) ([]jose.SignatureAlgorithm, error) {
	out := make([]jose.SignatureAlgorithm, 0, len(names))
	for _, n := range names {
		a, ok := allowed[n]
		if !ok {
			return nil, fmt.Errorf("algorithm %q is not allowed (use RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512 or EdDSA)", n)
		}
		out = append(out, a)
	}
	return out, nil
}

// Verifier checks tokens of one issuer.
type Verifier struct {
	Issuer     string
	Audiences  []string
	Algorithms []jose.SignatureAlgorithm
	Skew       time.Duration
	Keys       *KeySet
	Now        func() time.Time
}

// Claims are a verified token's claims: the registered ones and all
// others by name.
type Claims struct {
	jwt.Claims
	Extra map[string]any
	// KeyID is the id of the key that verified the token.
	KeyID string
}

// String returns claim name when it is a string.
func (c *Claims) String(name string) string {
	s, _ := c.Extra[name].(string)
	return s
}

// Strings returns claim name as a list: a JSON array of strings, or a
// space-separated string (as "scp" is).
func (c *Claims) Strings(name string) []string {
	switch v := c.Extra[name].(type) {
	case string:
		return strings.Fields(v)
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// UnverifiedIssuer returns the token's iss claim without checking
// anything else, to pick the verifier of that issuer. An error means the
// token is not a signed JWT with one of algs.
func UnverifiedIssuer(raw string, algs []jose.SignatureAlgorithm) (string, error) {
	tok, err := parse(raw, algs)
	if err != nil {
		return "", err
	}
	var c jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil {
		return "", fmt.Errorf("%w: claims: %v", ErrInvalid, err)
	}
	return c.Issuer, nil
}

func parse(raw string, algs []jose.SignatureAlgorithm) (*jwt.JSONWebToken, error) {
	if len(raw) > MaxTokenSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrInvalid, MaxTokenSize)
	}
	tok, err := jwt.ParseSigned(raw, algs)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if len(tok.Headers) != 1 {
		return nil, fmt.Errorf("%w: %d signatures", ErrInvalid, len(tok.Headers))
	}
	return tok, nil
}

// Verify checks raw and returns its claims. Errors wrap ErrInvalid or
// ErrUnavailable.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Claims, error) {
	tok, err := parse(raw, v.Algorithms)
	if err != nil {
		return nil, err
	}
	h := tok.Headers[0]
	keys, err := v.Keys.candidates(ctx, h.KeyID)
	if err != nil {
		if errors.Is(err, ErrUnavailable) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: key id %q: %v", ErrInvalid, h.KeyID, err)
	}
	c := &Claims{}
	verified := false
	for i := range keys {
		k := &keys[i]
		if k.Algorithm != "" && k.Algorithm != h.Algorithm {
			continue // the key is published for another algorithm
		}
		if err := tok.Claims(k.Key, &c.Claims, &c.Extra); err == nil {
			verified, c.KeyID = true, k.KeyID
			break
		}
	}
	if !verified {
		return nil, fmt.Errorf("%w: signature (%s, key id %q) does not verify", ErrInvalid, h.Algorithm, h.KeyID)
	}
	if c.Expiry == nil {
		return nil, fmt.Errorf("%w: no exp claim", ErrInvalid)
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	exp := jwt.Expected{Issuer: v.Issuer, AnyAudience: v.Audiences, Time: now()}
	if err := c.ValidateWithLeeway(exp, v.Skew); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return c, nil
}
