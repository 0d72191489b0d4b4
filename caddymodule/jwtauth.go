package caddymodule

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/go-jose/go-jose/v4"
	"go.uber.org/zap"

	"github.com/groundgate/groundgate/grounding"
	"github.com/groundgate/groundgate/oidc"
	"github.com/groundgate/groundgate/wire"
)

// OIDCConfig accepts access tokens (JWTs) of one OpenID Connect issuer,
// such as Microsoft Entra ID, as client credentials beside the static
// keys: `Authorization: Bearer <token>`, as an AzureOpenAI client with
// azure_ad_token_provider sends. Placeholders such as {env.TENANT_ID} are
// resolved at provisioning.
type OIDCConfig struct {
	// Issuer is the tokens' iss claim, exactly, e.g.
	// https://login.microsoftonline.com/{tenant}/v2.0 (Entra ID v2
	// tokens) or https://sts.windows.net/{tenant}/ (v1 tokens).
	Issuer string `json:"issuer"`

	// Audiences are the aud values accepted (the gateway's application
	// ID URI or client id); a token must name one. Required.
	Audiences []string `json:"audiences"`

	// DiscoveryURL is the OpenID configuration document naming the key
	// set. Default: the issuer + /.well-known/openid-configuration.
	DiscoveryURL string `json:"discovery_url,omitempty"`

	// JWKSURL is the key set itself; when set, discovery is skipped.
	JWKSURL string `json:"jwks_url,omitempty"`

	// Algorithms are the signature algorithms accepted: RS256, RS384,
	// RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA. "none" and
	// HMAC never are. Default: RS256.
	Algorithms []string `json:"algorithms,omitempty"`

	// ClockSkew is how far exp, nbf and iat may be off the gateway's
	// clock. Default: 60s; at most 5m.
	ClockSkew caddy.Duration `json:"clock_skew,omitempty"`

	// KeysRefresh is how old the cached keys may grow before they are
	// refreshed in the background. Default: 1h.
	KeysRefresh caddy.Duration `json:"keys_refresh,omitempty"`

	// KeysMinRefetch is the least time between two key fetches caused by
	// tokens naming a key id the gateway does not know (a rotation).
	// Default: 30s.
	KeysMinRefetch caddy.Duration `json:"keys_min_refetch,omitempty"`

	// NameClaims name the principal: the first of these claims the token
	// has. Default: oid, appid, azp, sub.
	NameClaims []string `json:"name_claims,omitempty"`

	// RolesClaim holds the groups or app roles that grants match: a JSON
	// array, or a space-separated string. Default: roles.
	RolesClaim string `json:"roles_claim,omitempty"`

	// Grants map a group or role to a team and record scope. A token's
	// team is the first matching grant's (in this order) that names one;
	// its record scope is the union of all matching grants' scopes.
	Grants []GrantConfig `json:"grants,omitempty"`

	// DefaultTeam is the team of a token no grant gives one.
	DefaultTeam string `json:"default_team,omitempty"`

	// RequireGrant refuses (403) a valid token that matches no grant.
	RequireGrant bool `json:"require_grant,omitempty"`
}

// GrantConfig is what one group or app role gives a token's principal.
type GrantConfig struct {
	// Value is the group object id or app role value, as the roles
	// claim lists it.
	Value string `json:"value"`
	// Team is the principal's team (policies, budgets).
	Team string `json:"team,omitempty"`
	// Scope is the customer records the principal may see; absent: none.
	Scope *KeyScope `json:"scope,omitempty"`
}

// keySets shares issuers' cached keys across reloads.
var keySets = caddy.NewUsagePool()

type keySetKey struct {
	src                 oidc.KeySource
	refresh, minRefetch time.Duration
}

type sharedKeySet struct{ *oidc.KeySet }

func (sharedKeySet) Destruct() error { return nil }

// issuerClient fetches discovery documents and key sets.
var issuerClient = &http.Client{Timeout: 10 * time.Second}

// tokenAuth verifies client tokens of the configured issuers.
type tokenAuth struct {
	issuers map[string]*issuerAuth
	algs    []jose.SignatureAlgorithm // every issuer's, to read iss
	logger  *zap.Logger

	// verified remembers tokens already verified, by their SHA-256, until
	// they expire: a client sends the same token for up to an hour, and
	// a signature check costs far more than a hash.
	mu       sync.RWMutex
	verified map[[sha256.Size]byte]verifiedToken
}

type verifiedToken struct {
	p     *principal
	until time.Time // exp plus the skew
	keys  *oidc.KeySet
	kid   string // the key that verified it, still published
}

// maxVerified bounds the verified-token cache.
const maxVerified = 10000

type issuerAuth struct {
	v            *oidc.Verifier
	nameClaims   []string
	rolesClaim   string
	grants       []GrantConfig
	scopes       []*grounding.Scope
	defaultTeam  string
	requireGrant bool
}

// provisionTokens sets up token authentication, if configured. Keys are
// prefetched in the background: an unreachable issuer does not fail the
// config (see authenticateToken).
func (g *Gateway) provisionTokens() error {
	if len(g.OIDC) == 0 {
		return nil
	}
	ta := &tokenAuth{issuers: map[string]*issuerAuth{}, logger: g.logger, verified: map[[sha256.Size]byte]verifiedToken{}}
	repl := caddy.NewReplacer()
	for i := range g.OIDC {
		ia, key, err := newIssuerAuth(repl, &g.OIDC[i])
		if err != nil {
			return fmt.Errorf("oidc[%d]: %v", i, err)
		}
		if _, dup := ta.issuers[ia.v.Issuer]; dup {
			return fmt.Errorf("oidc: issuer %q is configured twice", ia.v.Issuer)
		}
		v, _, err := keySets.LoadOrNew(key, func() (caddy.Destructor, error) {
			return sharedKeySet{oidc.NewKeySet(key.src, issuerClient, key.refresh, key.minRefetch)}, nil
		})
		if err != nil {
			return err
		}
		g.held = append(g.held, func() { _, _ = keySets.Delete(key) })
		ia.v.Keys = v.(sharedKeySet).KeySet
		ia.v.Keys.Prefetch()
		ta.issuers[ia.v.Issuer] = ia
		for _, a := range ia.v.Algorithms {
			if !slices.Contains(ta.algs, a) {
				ta.algs = append(ta.algs, a)
			}
		}
	}
	g.tokens = ta
	return nil
}

func newIssuerAuth(repl *caddy.Replacer, c *OIDCConfig) (*issuerAuth, keySetKey, error) {
	var key keySetKey
	issuer := repl.ReplaceKnown(c.Issuer, "")
	if issuer == "" {
		return nil, key, errors.New("issuer is required")
	}
	if _, err := wire.ServiceURL(issuer); err != nil {
		return nil, key, fmt.Errorf("issuer %v", err)
	}
	auds := make([]string, 0, len(c.Audiences))
	for _, a := range c.Audiences {
		if a = repl.ReplaceKnown(a, ""); a != "" {
			auds = append(auds, a)
		}
	}
	if len(auds) == 0 {
		return nil, key, fmt.Errorf("issuer %s: audiences are required", issuer)
	}
	names := c.Algorithms
	if len(names) == 0 {
		names = []string{"RS256"}
	}
	algs, err := oidc.ParseAlgorithms(names)
	if err != nil {
		return nil, key, fmt.Errorf("issuer %s: %v", issuer, err)
	}
	skew := time.Duration(c.ClockSkew)
	switch {
	case skew == 0:
		skew = time.Minute
	case skew < 0 || skew > oidc.MaxSkew:
		return nil, key, fmt.Errorf("issuer %s: clock_skew must be between 0 and %v", issuer, oidc.MaxSkew)
	}
	key.refresh, key.minRefetch = time.Duration(c.KeysRefresh), time.Duration(c.KeysMinRefetch)
	if key.refresh == 0 {
		key.refresh = time.Hour
	}
	if key.minRefetch == 0 {
		key.minRefetch = 30 * time.Second
	}
	if key.refresh < 0 || key.minRefetch < 0 {
		return nil, key, fmt.Errorf("issuer %s: keys_refresh and keys_min_refetch must be positive", issuer)
	}
	key.src = oidc.KeySource{Issuer: issuer, DiscoveryURL: repl.ReplaceKnown(c.DiscoveryURL, ""), JWKSURL: repl.ReplaceKnown(c.JWKSURL, "")}
	if key.src.DiscoveryURL == "" {
		key.src.DiscoveryURL = strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	}
	for name, u := range map[string]string{"discovery_url": key.src.DiscoveryURL, "jwks_url": key.src.JWKSURL} {
		if u == "" {
			continue
		}
		if _, err := wire.ServiceURL(u); err != nil {
			return nil, key, fmt.Errorf("issuer %s: %s %v", issuer, name, err)
		}
	}
	ia := &issuerAuth{
		v:            &oidc.Verifier{Issuer: issuer, Audiences: auds, Algorithms: algs, Skew: skew},
		nameClaims:   c.NameClaims,
		rolesClaim:   c.RolesClaim,
		grants:       c.Grants,
		defaultTeam:  c.DefaultTeam,
		requireGrant: c.RequireGrant,
	}
	if len(ia.nameClaims) == 0 {
		ia.nameClaims = []string{"oid", "appid", "azp", "sub"}
	}
	if ia.rolesClaim == "" {
		ia.rolesClaim = "roles"
	}
	seen := map[string]bool{}
	for i, gc := range c.Grants {
		if gc.Value == "" {
			return nil, key, fmt.Errorf("issuer %s: grants[%d]: value is required", issuer, i)
		}
		if seen[gc.Value] {
			return nil, key, fmt.Errorf("issuer %s: grant %q is defined twice", issuer, gc.Value)
		}
		seen[gc.Value] = true
		if gc.Scope != nil && gc.Scope.All && len(gc.Scope.Accounts)+len(gc.Scope.BusinessUnits)+len(gc.Scope.Teams) > 0 {
			return nil, key, fmt.Errorf("issuer %s: grant %q: scope all excludes accounts, business_units and teams", issuer, gc.Value)
		}
		ia.scopes = append(ia.scopes, gc.Scope.recordScope())
	}
	if ia.requireGrant && len(ia.grants) == 0 {
		return nil, key, fmt.Errorf("issuer %s: require_grant needs grants", issuer)
	}
	return ia, key, nil
}

// authenticate finds the request's principal: a static key first, then,
// when issuers are configured, a token that looks like a JWT.
func (g *Gateway) authenticate(r *http.Request) (*principal, error) {
	p, err := g.keys.authenticate(r)
	if err == nil || g.tokens == nil {
		return p, err
	}
	tok := presentedKey(r)
	if strings.Count(tok, ".") != 2 {
		return nil, err
	}
	return g.tokens.authenticate(r.Context(), tok)
}

// presentedKey is what keyring.authenticate reads: api-key, else the
// bearer token.
func presentedKey(r *http.Request) string {
	if k := r.Header.Get("api-key"); k != "" {
		return k
	}
	if auth := r.Header.Get("Authorization"); len(auth) > 7 && strings.EqualFold(auth[:7], "bearer ") {
		return strings.TrimSpace(auth[7:])
	}
	return ""
}

// badToken is all a client learns of a refused token: which check
// failed goes to the log only.
func badToken() *wire.Error {
	return &wire.Error{Status: http.StatusUnauthorized, Type: wire.TypeInvalidRequest, Code: "invalid_api_key",
		Message: "The access token is invalid, expired or not meant for this gateway.",
		Header:  http.Header{"Www-Authenticate": {`Bearer error="invalid_token"`}}}
}

func (ta *tokenAuth) authenticate(ctx context.Context, raw string) (*principal, error) {
	sum := sha256.Sum256([]byte(raw))
	now := time.Now()
	ta.mu.RLock()
	vt, ok := ta.verified[sum]
	ta.mu.RUnlock()
	if ok && now.Before(vt.until) && vt.keys.Has(vt.kid) {
		return vt.p, nil
	}
	vt, err := ta.verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	ta.remember(sum, vt, now)
	return vt.p, nil
}

// remember caches a verified token, first dropping expired ones (or all)
// when the cache is full.
func (ta *tokenAuth) remember(sum [sha256.Size]byte, vt verifiedToken, now time.Time) {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	if len(ta.verified) >= maxVerified {
		for k, v := range ta.verified {
			if !now.Before(v.until) {
				delete(ta.verified, k)
			}
		}
		if len(ta.verified) >= maxVerified {
			clear(ta.verified)
		}
	}
	ta.verified[sum] = vt
}

// verify checks a token not seen before and maps its claims.
func (ta *tokenAuth) verify(ctx context.Context, raw string) (verifiedToken, error) {
	var never verifiedToken
	iss, err := oidc.UnverifiedIssuer(raw, ta.algs)
	if err != nil {
		return never, ta.refuse(err, "")
	}
	ia, ok := ta.issuers[iss]
	if !ok {
		return never, ta.refuse(errors.New("issuer not configured"), iss)
	}
	c, err := ia.v.Verify(ctx, raw)
	if errors.Is(err, oidc.ErrUnavailable) {
		ta.logger.Error("client token not checked: the issuer's keys are unavailable", zap.String("issuer", iss), zap.Error(err))
		return never, &wire.Error{Status: http.StatusServiceUnavailable, Type: wire.TypeServer, Code: "token_verification_unavailable",
			Message: "The gateway cannot verify access tokens right now. Retry shortly.", Header: http.Header{"Retry-After": {"5"}}}
	}
	if err != nil {
		return never, ta.refuse(err, iss)
	}
	p, err := ia.principal(c, ta)
	if err != nil {
		return never, err
	}
	return verifiedToken{p: p, until: c.Expiry.Time().Add(ia.v.Skew), keys: ia.v.Keys, kid: c.KeyID}, nil
}

func (ta *tokenAuth) refuse(err error, iss string) error {
	ta.logger.Info("client token refused", zap.String("issuer", iss), zap.Error(err))
	return badToken()
}

// principal maps verified claims to the principal.
func (ia *issuerAuth) principal(c *oidc.Claims, ta *tokenAuth) (*principal, error) {
	p := &principal{team: ia.defaultTeam}
	for _, n := range ia.nameClaims {
		if p.name = c.String(n); p.name != "" {
			break
		}
	}
	if p.name == "" {
		return nil, ta.refuse(fmt.Errorf("none of the claims %v names the principal", ia.nameClaims), ia.v.Issuer)
	}
	roles := c.Strings(ia.rolesClaim)
	matched, teamSet := false, false
	var scope grounding.Scope
	all := false
	for i := range ia.grants {
		gr := &ia.grants[i]
		if !slices.Contains(roles, gr.Value) {
			continue
		}
		matched = true
		if gr.Team != "" && !teamSet {
			p.team, teamSet = gr.Team, true
		}
		if s := ia.scopes[i]; s == nil {
			all = true
		} else {
			scope.Accounts = append(scope.Accounts, s.Accounts...)
			scope.BusinessUnits = append(scope.BusinessUnits, s.BusinessUnits...)
			scope.Teams = append(scope.Teams, s.Teams...)
		}
	}
	if !matched && ia.requireGrant {
		ta.logger.Info("client token without a granted role refused", zap.String("issuer", ia.v.Issuer), zap.String("principal", p.name))
		return nil, &wire.Error{Status: http.StatusForbidden, Type: wire.TypePermission, Code: "permission_denied",
			Message: "This identity has no role that grants access to this gateway."}
	}
	if !all {
		p.scope = &scope
	}
	return p, nil
}

// parseOIDC parses
//
//	oidc <issuer> {
//	    audience <aud...>
//	    discovery_url <url>
//	    jwks_url <url>
//	    algorithms <alg...>
//	    clock_skew <duration>
//	    keys_refresh <duration>
//	    keys_min_refetch <duration>
//	    name_claims <claim...>
//	    roles_claim <claim>
//	    default_team <team>
//	    require_grant
//	    grant <group or role> {
//	        team <team>
//	        scope { all | accounts <id...> | business_units <name...> | teams <name...> }
//	    }
//	}
func (g *Gateway) parseOIDC(d *caddyfile.Dispenser) error {
	var c OIDCConfig
	if !d.AllArgs(&c.Issuer) {
		return d.Errf("oidc: expected the issuer")
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch sub := d.Val(); sub {
		case "audience", "algorithms", "name_claims":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Errf("oidc %s: %s: expected one or more values", c.Issuer, sub)
			}
			switch sub {
			case "audience":
				c.Audiences = append(c.Audiences, args...)
			case "algorithms":
				if _, err := oidc.ParseAlgorithms(args); err != nil {
					return d.Errf("oidc %s: %v", c.Issuer, err)
				}
				c.Algorithms = append(c.Algorithms, args...)
			case "name_claims":
				c.NameClaims = append(c.NameClaims, args...)
			}
		case "discovery_url":
			err = parseString(d, &c.DiscoveryURL)
		case "jwks_url":
			err = parseString(d, &c.JWKSURL)
		case "roles_claim":
			err = parseString(d, &c.RolesClaim)
		case "default_team":
			err = parseString(d, &c.DefaultTeam)
		case "clock_skew":
			err = parseDuration(d, &c.ClockSkew)
		case "keys_refresh":
			err = parseDuration(d, &c.KeysRefresh)
		case "keys_min_refetch":
			err = parseDuration(d, &c.KeysMinRefetch)
		case "require_grant":
			if d.NextArg() {
				return d.ArgErr()
			}
			c.RequireGrant = true
		case "grant":
			err = parseGrant(d, &c)
		default:
			return d.Errf("oidc %s: unrecognized subdirective %q", c.Issuer, sub)
		}
		if err != nil {
			return err
		}
	}
	g.OIDC = append(g.OIDC, c)
	return nil
}

func parseGrant(d *caddyfile.Dispenser, c *OIDCConfig) error {
	var gr GrantConfig
	if !d.AllArgs(&gr.Value) {
		return d.Errf("oidc %s: grant: expected a group or role", c.Issuer)
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "team":
			err = parseString(d, &gr.Team)
		case "scope":
			gr.Scope = new(KeyScope)
			err = parseScope(d, gr.Scope)
		default:
			return d.Errf("oidc %s: grant %q: unrecognized subdirective %q", c.Issuer, gr.Value, d.Val())
		}
		if err != nil {
			return err
		}
	}
	c.Grants = append(c.Grants, gr)
	return nil
}
