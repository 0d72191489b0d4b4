package caddymodule

import (
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"net/http"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/groundgate/groundgate/filters"
	"github.com/groundgate/groundgate/policies"
	"github.com/groundgate/groundgate/post"
	"github.com/groundgate/groundgate/tokens"
	"github.com/groundgate/groundgate/wire"
)

// budgetSpec is a policy's `budgets` section: per-request token limits.
type budgetSpec struct {
	// PromptTokens refuses a request whose prompt, after the meta prompt is
	// added, counts more tokens (400 context_length_exceeded).
	PromptTokens int `yaml:"prompt_tokens"`
	// CompletionTokens caps the answer: max_tokens / max_completion_tokens
	// are lowered to it, or set when the client sent neither.
	CompletionTokens int `yaml:"completion_tokens"`
	// CompletionEstimate is how many answer tokens a request is assumed
	// to use when it sets no cap, for reservations. Default: 1024.
	CompletionEstimate int `yaml:"completion_estimate"`
	// Limits are rate limits and quotas, reserved before the upstream call
	// and settled with the actual usage after it.
	Limits []limitSpec `yaml:"limits"`
	// OnStoreError says what happens when the budget store cannot answer:
	// "closed" (default) refuses with 503, "open" lets the request through.
	OnStoreError string `yaml:"on_store_error"`
}

// policyRuntime is what the gateway compiles from one policy's sections.
type policyRuntime struct {
	budget   budgetSpec
	counters []counter
	// deployCounters are per-deployment limits, reserved per attempt.
	deployCounters []counter
	ground         *groundingPlan // nil: no context section
	filters        *filters.Chain // nil: no filters section
	post           *post.Chain    // nil: no post section
	cacheTTL       time.Duration  // 0: no response cache
	traceContent   bool           // prompt and answer text go into spans
}

// compiledPolicies pairs a policy set with what the gateway compiled from
// it, so a swap replaces both at once.
type compiledPolicies struct {
	set *policies.Set
	rt  map[string]*policyRuntime // by policy name
}

// compile decodes the sections the gateway enforces and refuses the ones
// it does not, so a policy never seems to switch on something that is not
// enforced.
func (g *Gateway) compile(set *policies.Set) (*compiledPolicies, error) {
	cp := &compiledPolicies{set: set, rt: make(map[string]*policyRuntime)}
	for _, p := range set.Policies() {
		rt := new(policyRuntime)
		if err := p.Budgets.Decode(&rt.budget); err != nil {
			return nil, err
		}
		b := &rt.budget
		if b.PromptTokens < 0 || b.CompletionTokens < 0 || b.CompletionEstimate < 0 {
			return nil, fmt.Errorf("%s:%d: policy %q: budgets must not be negative", p.Budgets.File, p.Budgets.Line, p.Name)
		}
		if b.CompletionEstimate == 0 {
			b.CompletionEstimate = 1024
			if b.CompletionTokens > 0 {
				b.CompletionEstimate = b.CompletionTokens
			}
		}
		switch b.OnStoreError {
		case "":
			b.OnStoreError = "closed"
		case "open", "closed":
		default:
			return nil, fmt.Errorf("%s:%d: policy %q: budgets.on_store_error must be open or closed, not %q", p.Budgets.File, p.Budgets.Line, p.Name, b.OnStoreError)
		}
		all, err := compileLimits(p.Name, b.Limits)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: policy %q: budgets.%v", p.Budgets.File, p.Budgets.Line, p.Name, err)
		}
		for _, c := range all {
			if c.per == "deployment" {
				rt.deployCounters = append(rt.deployCounters, c)
			} else {
				rt.counters = append(rt.counters, c)
			}
		}
		if rt.ground, err = g.compileContext(p); err != nil {
			return nil, err
		}
		if !p.Cache.IsZero() {
			var cs cacheSpec
			if err := p.Cache.Decode(&cs); err != nil {
				return nil, err
			}
			d, err := caddy.ParseDuration(cs.TTL)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("%s:%d: policy %q: cache.ttl %q is not a positive duration", p.Cache.File, p.Cache.Line, p.Name, cs.TTL)
			}
			rt.cacheTTL = d
		}
		if rt.filters, err = g.compileFilters(p); err != nil {
			return nil, err
		}
		if rt.post, err = g.compilePost(p); err != nil {
			return nil, err
		}
		if rt.traceContent, err = compileTracing(p); err != nil {
			return nil, err
		}
		cp.rt[p.Name] = rt
	}
	return cp, nil
}

// applyMeta places the meta prompt and, when the policy limits prompt
// tokens or budgets them, counts the prompt as the upstream will see it.
// A chat prompt whose meta prompt comes as a message of its own is
// counted as the client's messages plus that message: the long grounded
// text is counted from the rendered text, not walked again in the body.
func (ex *exchange) applyMeta(pa promptAdapter, body []byte, d policies.Data, rt *policyRuntime) ([]byte, error) {
	meta := ex.policy.Meta
	if !rt.countsPrompt() {
		if meta == nil {
			return body, nil
		}
		return pa.applyMeta(body, meta, d)
	}
	enc, err := tokens.ForModel(ex.model.tokenizer)
	if err != nil {
		return nil, fmt.Errorf("policy %q counts prompt tokens but model %q has no known tokenizer: %w", ex.policy.Name, ex.model.alias, err)
	}
	if mc, ok := pa.(metaCounter); ok && meta != nil && meta.AddsMessage() {
		base, err := pa.countPrompt(enc, body)
		if err != nil {
			return nil, wire.BadRequest(pa.promptParam(), "invalid_value", err.Error())
		}
		out, added, exact, err := mc.applyMetaCounted(body, meta, d, enc)
		if err != nil {
			return nil, err
		}
		if exact {
			ex.promptCount = base + added
			return out, nil
		}
		body = out
	} else if meta != nil {
		if body, err = pa.applyMeta(body, meta, d); err != nil {
			return nil, err
		}
	}
	n, err := pa.countPrompt(enc, body)
	if err != nil {
		return nil, wire.BadRequest(pa.promptParam(), "invalid_value", err.Error())
	}
	ex.promptCount = n
	return body, nil
}

// metaCounter is implemented by shapes that can say what their meta
// prompt adds to the prompt's count.
type metaCounter interface {
	// applyMetaCounted is applyMeta, also returning the tokens the meta
	// prompt added; exact is false when they could not be told apart
	// from the body's (the caller then counts the whole body).
	applyMetaCounted(body []byte, meta *policies.MetaPrompt, d policies.Data, enc *tokens.Encoder) (out []byte, added int, exact bool, err error)
}

// countsPrompt reports whether the prompt's tokens are needed: for the
// prompt limit, or for budgets' reservations.
func (rt *policyRuntime) countsPrompt() bool {
	return rt.budget.PromptTokens > 0 || len(rt.counters) > 0 || len(rt.deployCounters) > 0
}

// checkPromptLimit refuses a prompt longer than the policy allows.
func (ex *exchange) checkPromptLimit(pa promptAdapter, rt *policyRuntime) error {
	limit, n := rt.budget.PromptTokens, ex.promptCount
	if limit <= 0 || n <= limit {
		return nil
	}
	return &wire.Error{Status: http.StatusBadRequest, Type: wire.TypeInvalidRequest, Param: pa.promptParam(), Code: "context_length_exceeded",
		Message: "This request's prompt is limited to " + strconv.Itoa(limit) + " tokens by policy " + ex.policy.Name +
			". However, your " + pa.promptParam() + " resulted in " + strconv.Itoa(n) + " tokens. Please reduce the length of the " + pa.promptParam() + "."}
}

// capAnswers sets the completion cap per answer that the upstream gets.
// completion_tokens bounds the whole request, so its n answers share it:
// each gets completion_tokens/n. A policy that counts tokens also caps a
// request that sets no cap, at completion_estimate per answer, so that
// the reservation (n times the cap) bounds what the answers can cost.
// It runs on the client's body, before grounding makes it long, and
// keeps n and the cap for the reservation.
func (ex *exchange) capAnswers(pa promptAdapter, body []byte, rt *policyRuntime) ([]byte, error) {
	b := rt.budget
	counts := rt.countsTokens()
	if b.CompletionTokens == 0 && !counts {
		return body, nil
	}
	n, err := choiceCount(body)
	if err != nil {
		return nil, err
	}
	limit := int64(0)
	clientCap := pa.maxOutput(body)
	switch {
	case b.CompletionTokens > 0:
		limit = int64(b.CompletionTokens) / n
		if limit < 1 {
			return nil, wire.BadRequest("n", "invalid_value", "Policy "+ex.policy.Name+" allows "+strconv.Itoa(b.CompletionTokens)+
				" completion tokens per request, to be shared by its answers; n="+strconv.FormatInt(n, 10)+" answers cannot have one each. Lower n.")
		}
	case clientCap == 0:
		limit = int64(b.CompletionEstimate)
	default:
		ex.choices, ex.answerCap = n, clientCap // the client's own cap, counted n times
		return body, nil
	}
	if body, err = pa.clampOutput(body, int(limit), ex.model.tokenizer); err != nil {
		return nil, err
	}
	ex.choices, ex.answerCap = n, pa.maxOutput(body)
	return body, nil
}

// clampCompletion lowers the client's completion limit to max, or sets
// one: max_completion_tokens for reasoning models (they refuse
// max_tokens), max_tokens for the others.
func clampCompletion(body []byte, max int, tokenizer string) ([]byte, error) {
	set := false
	for _, field := range []string{"max_completion_tokens", "max_tokens"} {
		v := gjson.GetBytes(body, field)
		if v.Type != gjson.Number {
			continue
		}
		set = true
		if v.Int() > int64(max) {
			var err error
			if body, err = sjson.SetBytes(body, field, max); err != nil {
				return nil, err
			}
		}
	}
	if set {
		return body, nil
	}
	field := "max_tokens"
	if reasoningModel(tokenizer) {
		field = "max_completion_tokens"
	}
	return sjson.SetBytes(body, field, max)
}

func reasoningModel(name string) bool {
	for _, p := range []string{"o1", "o3", "o4", "gpt-5"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}
