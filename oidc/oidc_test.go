package oidc_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/groundgate/groundgate/oidc"
	"github.com/groundgate/groundgate/oidc/oidctest"
)

const aud = "api://groundgate"

func newVerifier(is *oidctest.Issuer, minRefetch time.Duration) *oidc.Verifier {
	ks := oidc.NewKeySet(oidc.KeySource{Issuer: is.URL, DiscoveryURL: is.DiscoveryURL()}, http.DefaultClient, time.Hour, minRefetch)
	return &oidc.Verifier{Issuer: is.URL, Audiences: []string{aud}, Algorithms: []jose.SignatureAlgorithm{jose.RS256, jose.ES256}, Skew: 30 * time.Second, Keys: ks}
}

func TestVerify(t *testing.T) {
	is := oidctest.New(t)
	v := newVerifier(is, time.Hour)
	ctx := context.Background()
	c, err := v.Verify(ctx, is.Token(is.Claims(aud)))
	if err != nil {
		t.Fatal(err)
	}
	if c.String("oid") != "5b7e3a5c-0000-4000-8000-00000000a11c" || c.Issuer != is.URL {
		t.Errorf("claims %+v", c)
	}
	with := func(k string, v any) map[string]any {
		m := is.Claims(aud)
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	now := time.Now()
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	valid := is.Token(is.Claims(aud))
	parts := strings.Split(valid, ".")
	tampered := parts[0] + "." + strings.TrimSuffix(parts[1], parts[1][len(parts[1])-2:]) + "xx." + parts[2]
	for name, tok := range map[string]string{
		"wrong audience":        is.Token(with("aud", "https://cognitiveservices.azure.com")),
		"wrong issuer":          is.Token(with("iss", "https://login.microsoftonline.com/other/v2.0")),
		"expired":               is.Token(with("exp", now.Add(-time.Minute).Unix())),
		"not yet valid":         is.Token(with("nbf", now.Add(2*time.Minute).Unix())),
		"issued in the future":  is.Token(with("iat", now.Add(2*time.Minute).Unix())),
		"no exp":                is.Token(with("exp", nil)),
		"alg none":              oidctest.Unsigned(is.Claims(aud)),
		"HS256 with public key": is.HMACWithPublicKey(is.Claims(aud)),
		"unpublished key":       oidctest.SignRSA(other, "key-1", is.Claims(aud)),
		"unknown key id":        oidctest.SignRSA(other, "key-9", is.Claims(aud)),
		"tampered":              tampered,
		"not a JWT":             "sk-not-a-jwt",
		"huge":                  strings.Repeat("a", oidc.MaxTokenSize+1),
	} {
		if _, err := v.Verify(ctx, tok); !errors.Is(err, oidc.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	// Within the skew, expiry and not-before are tolerated.
	if _, err := v.Verify(ctx, is.Token(with("exp", now.Add(-10*time.Second).Unix()))); err != nil {
		t.Errorf("expired 10s ago with 30s skew: %v", err)
	}
	if _, err := v.Verify(ctx, is.Token(with("nbf", now.Add(10*time.Second).Unix()))); err != nil {
		t.Errorf("valid in 10s with 30s skew: %v", err)
	}
}

// TestRotation: a token signed with a key the gateway has not seen makes
// it refetch the keys once; made-up key ids do not make it refetch again
// within the minimum interval.
func TestRotation(t *testing.T) {
	is := oidctest.New(t)
	v := newVerifier(is, 200*time.Millisecond)
	ctx := context.Background()
	if _, err := v.Verify(ctx, is.Token(is.Claims(aud))); err != nil {
		t.Fatal(err)
	}
	if n := is.JWKSCalls.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches, want 1", n)
	}
	time.Sleep(250 * time.Millisecond)
	is.Rotate(true)
	if _, err := v.Verify(ctx, is.Token(is.Claims(aud))); err != nil {
		t.Fatalf("token with the new key: %v", err)
	}
	if n := is.JWKSCalls.Load(); n != 2 {
		t.Fatalf("%d JWKS fetches after rotation, want 2", n)
	}
	// Forged key ids: at most one refetch per interval.
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	for i := range 20 {
		_, err := v.Verify(ctx, oidctest.SignRSA(other, "forged-"+string(rune('a'+i)), is.Claims(aud)))
		if !errors.Is(err, oidc.ErrInvalid) {
			t.Fatalf("forged key id: %v", err)
		}
	}
	if n := is.JWKSCalls.Load(); n > 3 {
		t.Errorf("%d JWKS fetches after 20 forged key ids, want at most 3", n)
	}
}

// TestIssuerDown: without cached keys nothing can be verified
// (ErrUnavailable, not ErrInvalid); with keys cached they keep serving.
func TestIssuerDown(t *testing.T) {
	is := oidctest.New(t)
	is.SetDown(true)
	v := newVerifier(is, 0)
	ctx := context.Background()
	if _, err := v.Verify(ctx, is.Token(is.Claims(aud))); !errors.Is(err, oidc.ErrUnavailable) {
		t.Fatalf("issuer down, no keys: %v, want ErrUnavailable", err)
	}
	is.SetDown(false)
	if _, err := v.Verify(ctx, is.Token(is.Claims(aud))); err != nil {
		t.Fatalf("issuer back: %v", err)
	}
	is.SetDown(true)
	if _, err := v.Verify(ctx, is.Token(is.Claims(aud))); err != nil {
		t.Fatalf("issuer down, keys cached: %v", err)
	}
	if v.Keys.LastError() != nil {
		t.Errorf("no fetch should have failed yet: %v", v.Keys.LastError())
	}
}

// TestDiscoveryIssuerMismatch: a discovery document for another issuer
// is not trusted.
func TestDiscoveryIssuerMismatch(t *testing.T) {
	is := oidctest.New(t)
	ks := oidc.NewKeySet(oidc.KeySource{Issuer: "https://elsewhere.example/v2.0", DiscoveryURL: is.DiscoveryURL()}, http.DefaultClient, time.Hour, 0)
	v := &oidc.Verifier{Issuer: is.URL, Audiences: []string{aud}, Algorithms: []jose.SignatureAlgorithm{jose.RS256}, Skew: time.Second, Keys: ks}
	_, err := v.Verify(context.Background(), is.Token(is.Claims(aud)))
	if !errors.Is(err, oidc.ErrUnavailable) || !strings.Contains(ks.LastError().Error(), "is for issuer") {
		t.Fatalf("%v / %v", err, ks.LastError())
	}
}

func TestParseAlgorithms(t *testing.T) {
	if _, err := oidc.ParseAlgorithms([]string{"RS256", "ES256", "PS256", "EdDSA"}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"none", "HS256", "rs256", ""} {
		if _, err := oidc.ParseAlgorithms([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// FuzzVerify: arbitrary input never panics and never verifies unless it
// is the issuer's own token.
func FuzzVerify(f *testing.F) {
	is := oidctest.New(f)
	v := newVerifier(is, time.Hour)
	valid := is.Token(is.Claims(aud))
	if _, err := v.Verify(context.Background(), valid); err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add(oidctest.Unsigned(is.Claims(aud)))
	f.Add(is.HMACWithPublicKey(is.Claims(aud)))
	f.Add("eyJhbGciOiJSUzI1NiJ9.e30.")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := v.Verify(context.Background(), tok)
		if err == nil {
			if c.String("oid") != "5b7e3a5c-0000-4000-8000-00000000a11c" {
				t.Fatalf("verified a token with other claims: %+v", c)
			}
			return
		}
		if !errors.Is(err, oidc.ErrInvalid) && !errors.Is(err, oidc.ErrUnavailable) {
			t.Fatalf("error %v wraps neither ErrInvalid nor ErrUnavailable", err)
		}
	})
}

func BenchmarkVerifyRS256(b *testing.B) {
	is := oidctest.New(b)
	v := newVerifier(is, time.Hour)
	tok := is.Token(is.Claims(aud))
	ctx := context.Background()
	if _, err := v.Verify(ctx, tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}
