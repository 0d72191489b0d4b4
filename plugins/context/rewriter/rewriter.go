// Package rewriter is the llm_gateway.context.query_rewriter module: a
// small chat deployment (e.g. gpt-4o-mini) that rewrites a conversation
// into one standalone search query for the knowledge index — "Do they
// have big rooms?" after three turns about the Avalon becomes "Avalon
// hotel room size". Policies switch it on with
// context.articles.query.rewrite; the tokens it uses are reported with
// the request (audit log, X-Groundgate-Rewrite-Tokens) and counted
// against the policy's budgets.
//
// JSON config:
//
//	{
//	  "source": "query_rewriter",
//	  "endpoint": "https://my-resource.openai.azure.com",
//	  "deployment": "gpt-4o-mini",
//	  "api_key": "{env.AZURE_OPENAI_API_KEY}"
//	}
package rewriter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/tidwall/gjson"

	"github.com/groundgate/groundgate/grounding"
	"github.com/groundgate/groundgate/wire"
)

func init() {
	caddy.RegisterModule(new(Rewriter))
}

// Defaults.
const (
	DefaultAPIVersion = "2024-10-21"
	DefaultTimeout    = 3 * time.Second
	// DefaultInstructions is the system message of the rewrite.
	DefaultInstructions = "Rewrite the customer's last message as one standalone search query for a knowledge base of FAQs and reviews. " +
		"Name the product, place or record it is about, taken from earlier messages. Answer with the query only, no quotes, no explanation."
	maxAnswer = 1 << 20
)

// Rewriter is the llm_gateway.context.query_rewriter module.
type Rewriter struct {
	// Endpoint is the resource URL (https://<resource>.openai.azure.com),
	// or the API base for "api": "openai" (e.g. https://api.openai.com/v1).
	// Plain http only to loopback.
	Endpoint string `json:"endpoint"`
	// Deployment is the Azure deployment, or the model for "openai".
	Deployment string `json:"deployment"`
	// APIVersion is Azure's api-version. Default 2024-10-21.
	APIVersion string `json:"api_version,omitempty"`
	// APIKey is sent as api-key (Azure) or a bearer token (openai). Use a
	// placeholder such as {env.AZURE_OPENAI_API_KEY}.
	APIKey string `json:"api_key,omitempty"`
	// API is "azure" (default) or "openai".
	API string `json:"api,omitempty"`
	// Instructions replace the default system message.
	Instructions string `json:"instructions,omitempty"`
	// Timeout bounds one rewrite. Default 3s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	url, key string
	client   *http.Client
}

// CaddyModule returns the Caddy module information.
func (*Rewriter) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "llm_gateway.context.query_rewriter",
		New: func() caddy.Module { return new(Rewriter) },
	}
}

// Provision resolves placeholders and builds the request URL.
func (r *Rewriter) Provision(caddy.Context) error {
	if err := r.Validate(); err != nil {
		return err
	}
	repl := caddy.NewReplacer()
	endpoint, err := repl.ReplaceOrErr(r.Endpoint, true, true)
	if err != nil {
		return fmt.Errorf("query_rewriter: endpoint: %v", err)
	}
	u, err := wire.ServiceURL(strings.TrimSpace(endpoint))
	if err != nil {
		return fmt.Errorf("query_rewriter: endpoint %v", err)
	}
	if r.key, err = repl.ReplaceOrErr(r.APIKey, true, true); err != nil {
		return fmt.Errorf("query_rewriter: api_key: %v", err)
	}
	base := strings.TrimRight(u.String(), "/")
	if r.api() == "azure" {
		v := r.APIVersion
		if v == "" {
			v = DefaultAPIVersion
		}
		r.url = base + "/openai/deployments/" + url.PathEscape(r.Deployment) + "/chat/completions?api-version=" + url.QueryEscape(v)
	} else {
		r.url = base + "/chat/completions"
	}
	timeout := time.Duration(r.Timeout)
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	r.client = &http.Client{Timeout: timeout}
	return nil
}

func (r *Rewriter) api() string {
	if r.API == "" {
		return "azure"
	}
	return r.API
}

// Validate checks the configuration as written.
func (r *Rewriter) Validate() error {
	switch {
	case strings.TrimSpace(r.Endpoint) == "":
		return errors.New("query_rewriter: endpoint is required")
	case strings.TrimSpace(r.Deployment) == "":
		return errors.New("query_rewriter: deployment is required")
	case r.api() != "azure" && r.api() != "openai":
		return fmt.Errorf("query_rewriter: api must be azure or openai, got %q", r.API)
	case r.Timeout < 0:
		return errors.New("query_rewriter: timeout must not be negative")
	}
	return nil
}

type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Rewrite implements grounding.Rewriter: one non-streaming chat
// completion over the conversation, at most maxTokens long. Errors name
// the endpoint and status, never the key.
func (r *Rewriter) Rewrite(ctx context.Context, conv []grounding.Turn, maxTokens int) (grounding.Rewritten, error) {
	var out grounding.Rewritten
	if r.client == nil {
		return out, errors.New("query_rewriter: not provisioned")
	}
	instr := r.Instructions
	if instr == "" {
		instr = DefaultInstructions
	}
	// The conversation goes as one user message: the model is asked
	// about it, it does not continue it.
	var b strings.Builder
	b.WriteString("Conversation:\n")
	for _, t := range conv {
		who := "Customer"
		if t.Role == "assistant" {
			who = "Agent"
		}
		b.WriteString(who + ": " + strings.ReplaceAll(t.Text, "\n", " ") + "\n")
	}
	b.WriteString("\nSearch query for the customer's last message:")
	req := map[string]any{
		"messages":    []message{{Role: "system", Content: instr}, {Role: "user", Content: b.String()}},
		"max_tokens":  maxTokens,
		"temperature": 0,
	}
	if r.api() == "openai" {
		req["model"] = r.Deployment
	}
	body, err := json.Marshal(req)
	if err != nil {
		return out, err
	}
	where := "query_rewriter " + wire.RedactURL(r.url)
	data, err := wire.PostModel(ctx, r.client, r.url, r.api() == "azure", r.key, body, maxAnswer, "query_rewriter")
	if err != nil {
		return out, err
	}
	content := gjson.GetBytes(data, "choices.0.message.content")
	if content.Type != gjson.String {
		return out, fmt.Errorf("%s: the answer has no message content", where)
	}
	out.Query = strings.Trim(strings.TrimSpace(content.Str), `"`)
	out.Model = gjson.GetBytes(data, "model").Str
	out.PromptTokens = int(gjson.GetBytes(data, "usage.prompt_tokens").Int())
	out.CompletionTokens = int(gjson.GetBytes(data, "usage.completion_tokens").Int())
	return out, nil
}

// Interface guards.
var (
	_ caddy.Provisioner  = (*Rewriter)(nil)
	_ caddy.Validator    = (*Rewriter)(nil)
	_ grounding.Rewriter = (*Rewriter)(nil)
)
