package caddymodule

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"

	"github.com/caddyserver/caddy/v2"

	"github.com/groundgate/groundgate/entra"
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

type entraCreds struct{ src *entra.Source }

func (c entraCreds) apply(ctx context.Context, h http.Header) error {
	tok, err := c.src.Token(ctx)
	if err != nil {
		return err
	}
	h["Authorization"] = []string{"Bearer " + tok}
	return nil
}

func (g *Gateway) newCredentials(repl *caddy.Replacer, u *upstream, uc *UpstreamConfig, loopback bool) (credentials, error) {
	if uc.Entra != nil {
		if uc.APIKey != "" || uc.LoopbackAPIKey != "" {
			return nil, fmt.Errorf("%s: give api_key or entra, not both", u.name)
		}
		return g.newEntraCreds(repl, u.name, uc.Entra)
	}
	key, err := repl.ReplaceOrErr(uc.APIKey, false, true)
	if err != nil {
		return nil, fmt.Errorf("%s: api_key: %v", u.name, err)
	}
	if key == "" && uc.LoopbackAPIKey != "" && loopback {
		key = uc.LoopbackAPIKey
	}
	if key == "" {
		if uc.APIKey != "" {
			return nil, fmt.Errorf("%s: api_key %s is empty (unset environment variable?)", u.name, uc.APIKey)
		}
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
	// Tokens are shared by all configs (and survive reloads) per identity.
	src, key := entra.Shared(tokenURL, clientID, secret, scope, func() *http.Client { return g.client })
	g.held = append(g.held, func() { _ = entra.Release(key) })
	return entraCreds{src: src}, nil
}

// isLoopback reports whether an endpoint's host is this machine.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
