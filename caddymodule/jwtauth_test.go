package caddymodule

import (
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/groundgate/groundgate/oidc"
	"github.com/groundgate/groundgate/oidc/oidctest"
)

func TestParseOIDC(t *testing.T) {
	var g Gateway
	d := caddyfile.NewTestDispenser(`llm_gateway {
		oidc https://login.microsoftonline.com/{env.TENANT}/v2.0 {
			audience api://groundgate 0f1e2d3c-0000-4000-8000-00000000c11e
			algorithms RS256 ES256
			clock_skew 30s
			keys_refresh 2h
			keys_min_refetch 1m
			name_claims oid sub
			roles_claim groups
			default_team everyone
			require_grant
			grant 8f5b0000-0000-4000-8000-000000000001 {
				team support
				scope {
					business_units "Business Support"
				}
			}
			grant Admins {
				scope {
					all
				}
			}
		}
	}`)
	if err := g.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	want := []OIDCConfig{{
		Issuer:         "https://login.microsoftonline.com/{env.TENANT}/v2.0",
		Audiences:      []string{"api://groundgate", "0f1e2d3c-0000-4000-8000-00000000c11e"},
		Algorithms:     []string{"RS256", "ES256"},
		ClockSkew:      caddy.Duration(30 * time.Second),
		KeysRefresh:    caddy.Duration(2 * time.Hour),
		KeysMinRefetch: caddy.Duration(time.Minute),
		NameClaims:     []string{"oid", "sub"},
		RolesClaim:     "groups",
		DefaultTeam:    "everyone",
		RequireGrant:   true,
		Grants: []GrantConfig{
			{Value: "8f5b0000-0000-4000-8000-000000000001", Team: "support", Scope: &KeyScope{BusinessUnits: []string{"Business Support"}}},
			{Value: "Admins", Scope: &KeyScope{All: true}},
		},
	}}
	if !reflect.DeepEqual(g.OIDC, want) {
		got, _ := json.Marshal(g.OIDC)
		t.Fatalf("got %s", got)
	}
}

func TestParseOIDCErrors(t *testing.T) {
	for in, want := range map[string]string{
		"oidc":                                           "oidc: expected the issuer",
		"oidc https://i {\n audiences x\n}":              `unrecognized subdirective "audiences"`,
		"oidc https://i {\n audience\n}":                 "audience: expected one or more values",
		"oidc https://i {\n algorithms HS256\n}":         `algorithm "HS256" is not allowed`,
		"oidc https://i {\n algorithms none\n}":          `algorithm "none" is not allowed`,
		"oidc https://i {\n clock_skew soon\n}":          `clock_skew: "soon" is not a duration`,
		"oidc https://i {\n require_grant yes\n}":        "wrong argument count",
		"oidc https://i {\n grant\n}":                    "grant: expected a group or role",
		"oidc https://i {\n grant r {\n  teams x\n }\n}": `grant "r": unrecognized subdirective "teams"`,
	} {
		var g Gateway
		err := g.UnmarshalCaddyfile(caddyfile.NewTestDispenser("llm_gateway {\n" + in + "\n}"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}

func TestProvisionOIDCErrors(t *testing.T) {
	base := func(mod func(*OIDCConfig)) OIDCConfig {
		c := OIDCConfig{Issuer: "http://127.0.0.1:1/t/v2.0", Audiences: []string{"api://gg"}}
		mod(&c)
		return c
	}
	for name, tc := range map[string]struct {
		cfg  OIDCConfig
		want string
	}{
		"no issuer":       {base(func(c *OIDCConfig) { c.Issuer = "" }), "issuer is required"},
		"http issuer":     {base(func(c *OIDCConfig) { c.Issuer = "http://idp.example.com" }), "must use https"},
		"no audience":     {base(func(c *OIDCConfig) { c.Audiences = nil }), "audiences are required"},
		"hmac":            {base(func(c *OIDCConfig) { c.Algorithms = []string{"HS256"} }), `algorithm "HS256" is not allowed`},
		"skew":            {base(func(c *OIDCConfig) { c.ClockSkew = caddy.Duration(time.Hour) }), "clock_skew must be between 0 and 5m0s"},
		"grant no value":  {base(func(c *OIDCConfig) { c.Grants = []GrantConfig{{Team: "x"}} }), "grants[0]: value is required"},
		"grant twice":     {base(func(c *OIDCConfig) { c.Grants = []GrantConfig{{Value: "a"}, {Value: "a"}} }), `grant "a" is defined twice`},
		"require nothing": {base(func(c *OIDCConfig) { c.RequireGrant = true }), "require_grant needs grants"},
		"jwks http":       {base(func(c *OIDCConfig) { c.JWKSURL = "http://keys.example.com/keys" }), "jwks_url must use https"},
	} {
		g := &Gateway{OIDC: []OIDCConfig{tc.cfg}}
		err := g.provisionTokens()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	g := &Gateway{OIDC: []OIDCConfig{base(func(*OIDCConfig) {}), base(func(*OIDCConfig) {})}}
	if err := g.provisionTokens(); err == nil || !strings.Contains(err.Error(), "configured twice") {
		t.Errorf("issuer twice: %v", err)
	}
	for _, release := range g.held {
		release()
	}
}

// A verified token is remembered until its expiry (plus skew): the
// signature is not checked again, and past it, it is.
func TestVerifiedTokenCache(t *testing.T) {
	is := oidctest.New(t)
	g := &Gateway{logger: zap.NewNop(), OIDC: []OIDCConfig{{Issuer: is.URL, Audiences: []string{"api://gg"},
		Grants: []GrantConfig{{Value: "Agent", Team: "support"}}}}}
	if err := g.provisionTokens(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, release := range g.held {
			release()
		}
	}()
	claims := is.Claims("api://gg")
	claims["roles"] = []string{"Agent"}
	tok := is.Token(claims)
	p, err := g.tokens.authenticate(t.Context(), tok)
	if err != nil || p.name != "5b7e3a5c-0000-4000-8000-00000000a11c" || p.team != "support" || p.scope == nil || len(p.scope.Accounts) != 0 {
		t.Fatalf("%+v %v", p, err)
	}
	// The issuer becomes unreachable: the cached token still passes.
	ia := g.tokens.issuers[is.URL]
	is.SetDown(true)
	ia.v.Keys = oidc.NewKeySet(oidc.KeySource{Issuer: is.URL, DiscoveryURL: is.DiscoveryURL()}, http.DefaultClient, time.Hour, 0)
	if p2, err := g.tokens.authenticate(t.Context(), tok); err != nil || p2 != p {
		t.Fatalf("cached token: %v %v", p2, err)
	}
	// Past its expiry it is verified again (and now cannot be).
	sum := sha256.Sum256([]byte(tok))
	vt := g.tokens.verified[sum]
	vt.until = time.Now().Add(-time.Second)
	g.tokens.verified[sum] = vt
	if _, err := g.tokens.authenticate(t.Context(), tok); err == nil {
		t.Fatal("an expired cache entry was used")
	}
}

// FuzzParseOIDC: any oidc block is refused with an error or parses into a
// config that survives a JSON round trip; never a panic.
func FuzzParseOIDC(f *testing.F) {
	f.Add("oidc https://login.microsoftonline.com/t/v2.0 {\n audience api://gg\n algorithms RS256 ES256\n grant Agent {\n  team support\n  scope {\n   accounts A-1\n  }\n }\n require_grant\n}")
	f.Add("oidc https://i {\n clock_skew 30s\n name_claims oid\n roles_claim groups\n}")
	f.Fuzz(func(t *testing.T, in string) {
		tokens, err := caddyfile.Tokenize([]byte("llm_gateway {\n"+in+"\n}"), "Caddyfile")
		if err != nil {
			return
		}
		var g Gateway
		if err := g.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens)); err != nil {
			return
		}
		b, err := json.Marshal(g.OIDC)
		if err != nil {
			t.Fatal(err)
		}
		var back []OIDCConfig
		if err := json.Unmarshal(b, &back); err != nil || normalize(back) != normalize(g.OIDC) {
			t.Fatalf("round trip of %q: %v\n%s", in, err, b)
		}
	})
}

// normalize makes empty and nil slices equal for comparison.
func normalize(cs []OIDCConfig) string {
	b, _ := json.Marshal(cs)
	return string(b)
}
