package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/groundgate/groundgate/grounding"
	"github.com/groundgate/groundgate/policies"
	"github.com/groundgate/groundgate/tokens"
)

// contextSection is a policy's `context` section: grounding's spec plus
// what the gateway decides around it.
type contextSection struct {
	MaxTokens int                     `yaml:"max_tokens"`
	Records   *grounding.RecordsSpec  `yaml:"records"`
	Articles  *grounding.ArticlesSpec `yaml:"articles"`
	// OnError: "proceed" (default) answers without the context a failed
	// source would have given; "fail" refuses the request with 503.
	// Either way the X-Groundgate-Context header says what happened.
	OnError string `yaml:"on_error"`
	// Timeout bounds the lookups and the search. Default: 2s.
	Timeout string `yaml:"timeout"`
}

// groundingPlan is a policy's compiled context section.
type groundingPlan struct {
	plan     *grounding.Plan
	records  grounding.RecordSource
	index    grounding.Index
	rewriter grounding.Rewriter // the query rewriter (nil: none)
	failOK   bool               // on_error: proceed
	timeout  time.Duration
}

func (g *Gateway) provisionContext(ctx caddy.Context) error {
	if len(g.ContextRaw) == 0 {
		return nil
	}
	mods, err := ctx.LoadModule(g, "ContextRaw")
	if err != nil {
		return fmt.Errorf("loading context sources: %v", err)
	}
	g.recordSources = map[string]grounding.RecordSource{}
	g.indexes = map[string]grounding.Index{}
	g.rewriters = map[string]grounding.Rewriter{}
	for name, m := range mods.(map[string]any) {
		used := false
		if rw, ok := m.(grounding.Rewriter); ok {
			g.rewriters[name], used = rw, true
		}
		if rs, ok := m.(grounding.RecordSource); ok {
			g.recordSources[name], used = rs, true
		}
		if ix, ok := m.(grounding.Index); ok {
			g.indexes[name], used = ix, true
		}
		if !used {
			return fmt.Errorf("context source %q (%T) is neither a record source, an index nor a query rewriter", name, m)
		}
	}
	return nil
}

// pick finds a named source, or the only one (or the one named "default")
// when the policy names none.
func pick[T any](kind, name string, all map[string]T) (T, error) {
	var zero T
	if name != "" {
		s, ok := all[name]
		if !ok {
			return zero, fmt.Errorf("%s %q is not configured in llm_gateway (have: %v)", kind, name, keys(all))
		}
		return s, nil
	}
	if s, ok := all["default"]; ok {
		return s, nil
	}
	if len(all) == 1 {
		for _, s := range all {
			return s, nil
		}
	}
	if len(all) == 0 {
		return zero, fmt.Errorf("no %s is configured in llm_gateway (add a context source)", kind)
	}
	return zero, fmt.Errorf("several %ss are configured (%v): name one, or call one \"default\"", kind, keys(all))
}

func keys[T any](m map[string]T) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// compileContext decodes and compiles a policy's context section.
func (g *Gateway) compileContext(p *policies.Policy) (*groundingPlan, error) {
	if p.Context.IsZero() {
		return nil, nil
	}
	var sec contextSection
	if err := p.Context.Decode(&sec); err != nil {
		return nil, err
	}
	where := fmt.Sprintf("%s:%d: policy %q: context", p.Context.File, p.Context.Line, p.Name)
	plan, err := grounding.Compile(grounding.ContextSpec{MaxTokens: sec.MaxTokens, Records: sec.Records, Articles: sec.Articles})
	if err != nil {
		return nil, fmt.Errorf("%s: %v", where, err)
	}
	gp := &groundingPlan{plan: plan, timeout: 2 * time.Second}
	switch sec.OnError {
	case "", "proceed":
		gp.failOK = true
	case "fail":
	default:
		return nil, fmt.Errorf("%s: on_error must be proceed or fail, not %q", where, sec.OnError)
	}
	if sec.Timeout != "" {
		d, err := caddy.ParseDuration(sec.Timeout)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%s: timeout %q is not a positive duration", where, sec.Timeout)
		}
		gp.timeout = d
	}
	if !g.provisioning {
		// Adapting a Caddyfile: sources are not loaded yet; the
		// section itself is checked.
		return gp, nil
	}
	if plan.Spec.Records != nil {
		if gp.records, err = pick("record source", plan.Spec.Records.Source, g.recordSources); err != nil {
			return nil, fmt.Errorf("%s.records: %v", where, err)
		}
	}
	if plan.Spec.Articles != nil {
		if gp.index, err = pick("index", plan.Spec.Articles.Index, g.indexes); err != nil {
			return nil, fmt.Errorf("%s.articles: %v", where, err)
		}
		if rw := plan.Spec.Articles.Query.Rewrite; rw != nil {
			if gp.rewriter, err = pick("query rewriter", rw.Source, g.rewriters); err != nil {
				return nil, fmt.Errorf("%s.articles.query.rewrite: %v", where, err)
			}
		}
	}
	return gp, nil
}

// ground fetches the request's records and articles for the meta prompt.
// A failed source either fails the request or is reported in
// X-Groundgate-Context, as the policy says.
func (ex *exchange) ground(gp *groundingPlan, body []byte) (*grounding.Packed, error) {
	defer ex.step("groundgate.grounding").end(nil)
	enc, err := tokens.ForModel(ex.model.tokenizer)
	if err != nil {
		return nil, fmt.Errorf("policy %q grounds requests but model %q has no known tokenizer: %w", ex.policy.Name, ex.model.alias, err)
	}
	ctx, cancel := context.WithTimeout(ex.r.Context(), gp.timeout)
	defer cancel()
	res, err := gp.plan.Ground(ctx, grounding.Sources{Records: gp.records, Index: gp.index, Rewriter: gp.rewriter},
		grounding.Request{Header: ex.r.Header, Body: body}, ex.principal.scope, enc)
	if rw := res.Rewrite; rw != nil {
		// The rewrite's tokens are the request's too: settled against
		// the budgets with the answer's, and audited.
		ex.rewrite = rw
		ex.w.Header().Set("X-Groundgate-Rewrite-Tokens", strconv.Itoa(rw.PromptTokens+rw.CompletionTokens))
		ex.g.logger.Debug("search query rewritten", zap.String("request_id", ex.id), zap.String("policy", ex.policy.Name),
			zap.Int("prompt_tokens", rw.PromptTokens), zap.Int("completion_tokens", rw.CompletionTokens))
	}
	for _, d := range res.Denied {
		// An audit trail of refused lookups: never the record itself.
		ex.g.logger.Warn("record outside the principal's scope withheld", zap.String("request_id", ex.id),
			zap.String("principal", ex.principal.name), zap.String("policy", ex.policy.Name), zap.String("denied", d.String()))
		recordsDenied.WithLabelValues(ex.policy.Name).Inc()
		ex.denied = append(ex.denied, d.String())
	}
	state := "ok"
	if err != nil {
		if ex.r.Context().Err() != nil {
			return nil, errClientGone
		}
		groundingErrors.WithLabelValues(ex.policy.Name).Inc()
		ex.g.logger.Error("grounding source failed", zap.String("request_id", ex.id), zap.String("policy", ex.policy.Name),
			zap.Bool("proceeding", gp.failOK), zap.Error(err))
		if !gp.failOK {
			ex.w.Header().Set("X-Groundgate-Context", "failed")
			return nil, contextUnavailable(ex.policy.Name)
		}
		state = "degraded"
	}
	ex.w.Header().Set("X-Groundgate-Context", state)
	return &res.Packed, nil
}

// contextJSON is the Docs mapping for logs and the explain endpoint.
func contextJSON(p *grounding.Packed) json.RawMessage {
	if p == nil {
		return nil
	}
	b, _ := json.Marshal(map[string]any{"records": p.Records, "docs": p.Docs, "tokens": p.Tokens})
	return b
}

// rewriteTokens are the tokens the query rewrite used (0 without one).
func (ex *exchange) rewriteTokens() int64 {
	if ex.rewrite == nil {
		return 0
	}
	return int64(ex.rewrite.PromptTokens + ex.rewrite.CompletionTokens)
}
