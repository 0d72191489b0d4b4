package caddymodule

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
)

// EntraConfig authenticates to Azure OpenAI with a Microsoft Entra ID
// client-credentials token instead of a key.
type EntraConfig struct {
	// TenantID is the directory (tenant) id.
	TenantID string `json:"tenant_id,omitempty"`
	// ClientID is the application (client) id.
	ClientID string `json:"client_id"`
	// ClientSecret is the client secret; use a placeholder such as
	// {env.AZURE_CLIENT_SECRET}.
	ClientSecret string `json:"client_secret"`
	// Scope is the token scope. Default:
	// https://cognitiveservices.azure.com/.default
	Scope string `json:"scope,omitempty"`
	// TokenURL overrides the token endpoint. Default:
	// https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token
	TokenURL string `json:"token_url,omitempty"`
}

// credentials set an upstream request's auth header.
type credentials interface {
	apply(ctx context.Context, h http.Header) error
}

type apiKeyCreds struct {
	header, value string
}

func (c apiKeyCreds) apply(_ context.Context, h http.Header) error {
	h[c.header] = []string{c.value}
	return nil
}

type entraCreds struct{ src *tokenSource }

func (c entraCreds) apply(ctx context.Context, h http.Header) error {
	tok, err := c.src.token(ctx)
	if err != nil {
		return err
	}
	h["Authorization"] = []string{"Bearer " + tok}
	return nil
}

func (g *Gateway) newCredentials(repl *caddy.Replacer, u *upstream, uc *UpstreamConfig) (credentials, error) {
	if uc.Entra != nil {
		if uc.APIKey != "" {
			return nil, fmt.Errorf("%s: give api_key or entra, not both", u.name)
		}
		return g.newEntraCreds(repl, u.name, uc.Entra)
	}
	key, err := repl.ReplaceOrErr(uc.APIKey, true, true)
	if err != nil {
		return nil, fmt.Errorf("%s: api_key: %v", u.name, err)
	}
	if key == "" {
		return nil, fmt.Errorf("%s: api_key or entra is required", u.name)
	}
	if u.kind == "azure" {
		return apiKeyCreds{header: "Api-Key", value: key}, nil
	}
	return apiKeyCreds{header: "Authorization", value: "Bearer " + key}, nil
}

func (g *Gateway) newEntraCreds(repl *caddy.Replacer, name string, ec *EntraConfig) (credentials, error) {
	var vals [5]string
	for i, s := range []string{ec.TenantID, ec.ClientID, ec.ClientSecret, ec.Scope, ec.TokenURL} {
		v, err := repl.ReplaceOrErr(s, true, true)
		if err != nil {
			return nil, fmt.Errorf("%s: entra: %v", name, err)
		}
		vals[i] = v
	}
	tenant, clientID, secret, scope, tokenURL := vals[0], vals[1], vals[2], vals[3], vals[4]
	if clientID == "" || secret == "" {
		return nil, fmt.Errorf("%s: entra: client_id and client_secret are required", name)
	}
	if scope == "" {
		scope = "https://cognitiveservices.azure.com/.default"
	}
	if tokenURL == "" {
		if tenant == "" {
			return nil, fmt.Errorf("%s: entra: tenant_id or token_url is required", name)
		}
		tokenURL = "https://login.microsoftonline.com/" + url.PathEscape(tenant) + "/oauth2/v2.0/token"
	}
	secretSum := sha256.Sum256([]byte(secret))
	key := strings.Join([]string{tokenURL, clientID, scope, hex.EncodeToString(secretSum[:])}, "|")
	// Tokens are shared by all configs (and survive reloads) per identity.
	val, _, _ := tokenSources.LoadOrNew(key, func() (caddy.Destructor, error) {
		return &tokenSource{tokenURL: tokenURL, form: url.Values{
			"grant_type":    {"client_credentials"},
			"client_id":     {clientID},
			"client_secret": {secret},
			"scope":         {scope},
		}.Encode(), client: g.client, clock: time.Now}, nil
	})
	g.held = append(g.held, heldRef{tokenSources, key})
	return entraCreds{src: val.(*tokenSource)}, nil
}

var tokenSources = caddy.NewUsagePool()

// tokenSource caches one client-credentials token and refreshes it before
// it expires: in the background when it is close to expiry, in the
// caller's path only when it has expired.
type tokenSource struct {
	tokenURL string
	form     string
	client   *http.Client

	mu         sync.Mutex
	clock      func() time.Time // time.Now; tests move it
	tok        string
	expires    time.Time
	refreshAt  time.Time
	refreshing bool
}

func (*tokenSource) Destruct() error { return nil }

func (ts *tokenSource) token(ctx context.Context) (string, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	t := ts.clock()
	if ts.tok != "" && t.Before(ts.expires) {
		if !t.Before(ts.refreshAt) && !ts.refreshing {
			ts.refreshing = true
			go ts.refreshInBackground()
		}
		return ts.tok, nil
	}
	// Expired or never fetched: fetch while holding the lock, so
	// concurrent callers wait for one fetch instead of stampeding.
	return ts.fetchLocked(ctx)
}

func (ts *tokenSource) refreshInBackground() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, exp, err := ts.request(ctx)
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.refreshing = false
	if err == nil {
		ts.set(tok, exp)
	}
}

func (ts *tokenSource) fetchLocked(ctx context.Context) (string, error) {
	tok, exp, err := ts.request(ctx)
	if err != nil {
		return "", err
	}
	ts.set(tok, exp)
	return tok, nil
}

// set stores a token valid for exp and plans its refresh when 20% of
// its life (at most 5 minutes) remains. The caller holds ts.mu.
func (ts *tokenSource) set(tok string, exp time.Duration) {
	t := ts.clock()
	margin := min(exp/5, 5*time.Minute)
	ts.tok, ts.expires, ts.refreshAt = tok, t.Add(exp-10*time.Second), t.Add(exp-margin)
}

func (ts *tokenSource) request(ctx context.Context) (string, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.tokenURL, strings.NewReader(ts.form))
	if err != nil {
		return "", 0, fmt.Errorf("entra token request: %v", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := ts.client.Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("entra token endpoint unreachable: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", 0, fmt.Errorf("entra token response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		// error and error_description never contain the secret.
		r := gjson.ParseBytes(body)
		return "", 0, fmt.Errorf("entra token endpoint answered %d: %s: %s", resp.StatusCode,
			r.Get("error").Str, firstLine(r.Get("error_description").Str))
	}
	r := gjson.ParseBytes(body)
	tok := r.Get("access_token").Str
	exp := time.Duration(r.Get("expires_in").Int()) * time.Second
	if tok == "" || exp <= 0 {
		return "", 0, fmt.Errorf("entra token response lacks access_token or expires_in")
	}
	return tok, exp, nil
}

func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return s[:i]
	}
	return s
}
