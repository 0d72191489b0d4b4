package integration

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/option"
	"github.com/tidwall/gjson"

	"github.com/groundgate/groundgate/oidc/oidctest"
)

const gatewayAudience = "api://groundgate"

// tokenCredential is what DefaultAzureCredential is to an AzureOpenAI
// client: it hands out access tokens, here minted by the local issuer.
type tokenCredential struct {
	mu     sync.Mutex
	mint   func() string
	scopes []string
}

func (c *tokenCredential) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.scopes = o.Scopes
	return azcore.AccessToken{Token: c.mint(), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func (c *tokenCredential) set(mint func() string) {
	c.mu.Lock()
	c.mint = mint
	c.mu.Unlock()
}

func entraClient(cred azcore.TokenCredential) openai.Client {
	return openai.NewClient(
		azure.WithEndpoint(gatewayURL(""), "2024-10-21"),
		azure.WithTokenCredential(cred),
		azure.WithUnsafeAllowHTTP(),
		option.WithMaxRetries(0),
	)
}

func identityCaddyfile(is, down *oidctest.Issuer) string {
	return caddyfile(fmt.Sprintf(`
		oidc %s {
			audience %s
			keys_min_refetch 200ms
			require_grant
			grant Support.Agent {
				team support
				scope {
					business_units "Business Support"
				}
			}
			grant Support.Lead {
				team leads
			}
		}
		oidc %s {
			audience %s
			keys_min_refetch 100ms
			default_team partners
		}
		introspect 5b7e3a5c-0000-4000-8000-00000000a11c`, is.URL, gatewayAudience, down.URL, gatewayAudience), "")
}

// TestEntraTokens: an AzureOpenAI client signed in with Entra ID (a token
// credential, as azure_ad_token_provider / DefaultAzureCredential) works
// unchanged through a real Caddy; the token's oid names the principal and
// its app role gives the team; static keys keep working beside it; bad,
// expired and foreign tokens get 401 without detail; the issuer's key
// rotation is followed.
func TestEntraTokens(t *testing.T) {
	is := oidctest.New(t)
	down := oidctest.New(t)
	down.SetDown(true)
	load(t, identityCaddyfile(is, down))
	ctx := t.Context()

	agent := func() map[string]any {
		c := is.Claims(gatewayAudience)
		c["roles"] = []string{"Support.Agent", "Other.Role"}
		return c
	}
	cred := &tokenCredential{mint: func() string { return is.Token(agent()) }}
	c := entraClient(cred)
	resp, err := c.Chat.Completions.New(ctx, chatParams("My soundbar has no sound"))
	if err != nil {
		t.Fatalf("chat with an Entra token: %v", err)
	}
	if !strings.Contains(resp.Choices[0].Message.Content, "My soundbar has no sound") {
		t.Fatalf("answer: %+v", resp.Choices)
	}
	// Streaming too.
	stream := c.Chat.Completions.NewStreaming(ctx, chatParams("stream please"))
	var chunks int
	for stream.Next() {
		chunks++
	}
	if err := stream.Err(); err != nil || chunks == 0 {
		t.Fatalf("stream with an Entra token: %d chunks, %v", chunks, err)
	}
	// The static key beside it.
	static := azureClient()
	if _, err := static.Chat.Completions.New(ctx, chatParams("hi")); err != nil {
		t.Fatalf("static key: %v", err)
	}

	// Who the gateway thinks the caller is: explain answers the principal
	// and team (the oid is allowed to introspect).
	explain := func(tok string) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, "POST", gatewayURL("/groundgate/explain/v1/chat/completions"),
			strings.NewReader(`{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		r, err := plainClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, string(b)
	}
	code, body := explain(is.Token(agent()))
	if code != 200 || gjson.Get(body, "principal").Str != "5b7e3a5c-0000-4000-8000-00000000a11c" || gjson.Get(body, "team").Str != "support" {
		t.Fatalf("explain: %d %s", code, body)
	}
	lead := is.Claims(gatewayAudience)
	lead["roles"] = []string{"Support.Lead", "Support.Agent"}
	if code, body = explain(is.Token(lead)); code != 200 || gjson.Get(body, "team").Str != "support" {
		t.Fatalf("first matching grant names the team: %d %s", code, body)
	}

	// Refused tokens: 401, OpenAI's shape, the same words whatever failed.
	with := func(k string, v any) map[string]any {
		m := agent()
		m[k] = v
		return m
	}
	now := time.Now()
	const generic = "The access token is invalid, expired or not meant for this gateway."
	for name, tok := range map[string]string{
		"wrong audience":        is.Token(with("aud", "https://cognitiveservices.azure.com")),
		"expired":               is.Token(with("exp", now.Add(-10*time.Minute).Unix())),
		"not yet valid":         is.Token(with("nbf", now.Add(10*time.Minute).Unix())),
		"wrong issuer":          is.Token(with("iss", "https://login.microsoftonline.com/evil/v2.0")),
		"alg none":              oidctest.Unsigned(agent()),
		"HS256 with public key": is.HMACWithPublicKey(agent()),
		"other issuer's key":    oidctest.SignRSA(mustKey(t), "key-1", agent()),
		"garbage JWT":           "eyJhbGciOiJSUzI1NiJ9.eyJ4Ijoi.c2ln",
	} {
		cred.set(func() string { return tok })
		_, err := c.Chat.Completions.New(ctx, chatParams("hi"))
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 || apiErr.Code != "invalid_api_key" || apiErr.Message != generic {
			t.Errorf("%s: %v", name, err)
			continue
		}
		// Nothing tells which check failed: every refusal is the same body.
		if raw := apiErr.RawJSON(); raw != `{"message":"`+generic+`","type":"invalid_request_error","param":null,"code":"invalid_api_key"}` {
			t.Errorf("%s: error body %s", name, raw)
		}
	}

	// A valid token whose roles the gateway grants nothing: 403.
	cred.set(func() string { return is.Token(with("roles", []string{"Other.Role"})) })
	_, err = c.Chat.Completions.New(ctx, chatParams("hi"))
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 403 {
		t.Fatalf("no granted role: %v", err)
	}

	// Key rotation: the issuer retires its key; tokens with the new key
	// work (one refetch), tokens signed by the retired one stop working.
	old := is.Token(agent())
	time.Sleep(250 * time.Millisecond) // past keys_min_refetch
	is.Rotate(true)
	cred.set(func() string { return is.Token(agent()) })
	if _, err := c.Chat.Completions.New(ctx, chatParams("after rotation")); err != nil {
		t.Fatalf("token signed with the rotated key: %v", err)
	}
	cred.set(func() string { return old })
	if _, err := c.Chat.Completions.New(ctx, chatParams("old key")); !errors.As(err, &apiErr) || apiErr.StatusCode != 401 {
		t.Fatalf("token signed with the retired key: %v", err)
	}

	// The second issuer is unreachable and its keys were never fetched:
	// its tokens cannot be checked (503, retry), until it is back.
	partner := down.Claims(gatewayAudience)
	cred.set(func() string { return down.Token(partner) })
	if _, err := c.Chat.Completions.New(ctx, chatParams("issuer down")); !errors.As(err, &apiErr) || apiErr.StatusCode != 503 ||
		apiErr.Response.Header.Get("Retry-After") == "" {
		t.Fatalf("issuer unreachable: %v", err)
	}
	down.SetDown(false)
	time.Sleep(150 * time.Millisecond)
	if _, err := c.Chat.Completions.New(ctx, chatParams("issuer back")); err != nil {
		t.Fatalf("issuer back: %v", err)
	}
}

func mustKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
