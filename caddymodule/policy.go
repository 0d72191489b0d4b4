package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/groundgate/groundgate/policies"
	"github.com/groundgate/groundgate/wire"
)

// policyState holds the active policy set; requests take it once at their
// start, so a swap (reload or watch) never changes a request midway.
type policyState struct {
	cur atomic.Pointer[compiledPolicies]
}

// provisionPolicies loads the policy files and checks they name pools
// the gateway has.
func (g *Gateway) provisionPolicies(ctx caddy.Context) error {
	if len(g.Policies) == 0 {
		return nil
	}
	cp, err := g.loadPolicies()
	if err != nil {
		return err
	}
	g.policies = new(policyState)
	g.policies.cur.Store(cp)
	g.logger.Info("policies loaded", zap.String("hash", cp.set.Hash()), zap.Int("count", len(cp.set.Policies())))
	if g.Watch > 0 {
		go g.watchPolicies(ctx, cp.set.Hash())
	}
	return nil
}

func (g *Gateway) loadPolicies() (*compiledPolicies, error) {
	set, err := policies.Load(g.Policies...)
	if err != nil {
		return nil, err
	}
	for _, p := range set.Policies() {
		if p.Pool != "" {
			if _, ok := g.pools[p.Pool]; !ok {
				return nil, fmt.Errorf("%s:%d: policy %q: upstream pool %q is not defined in llm_gateway (pools: %v)",
					p.Source, p.Line, p.Name, p.Pool, g.poolNames())
			}
		}
	}
	cp, err := g.compile(set)
	if err != nil {
		return nil, err
	}
	if err := g.checkTokenizers(cp); err != nil {
		return nil, err
	}
	return cp, nil
}

func (g *Gateway) poolNames() []string {
	names := make([]string, 0, len(g.Pools))
	for _, p := range g.Pools {
		names = append(names, p.Name)
	}
	return names
}

// watchPolicies polls the policy files and swaps in a new set when their
// contents change and the new set is valid; an invalid set is logged and
// the old one keeps serving. It stops with the config.
func (g *Gateway) watchPolicies(ctx context.Context, hash string) {
	t := time.NewTicker(time.Duration(g.Watch))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cp, err := g.loadPolicies()
		if err != nil {
			if err.Error() != g.lastWatchErr {
				g.logger.Error("policy files changed but are invalid; the previous policies keep serving", zap.Error(err))
				g.lastWatchErr = err.Error()
			}
			continue
		}
		g.lastWatchErr = ""
		if cp.set.Hash() == hash {
			continue
		}
		hash = cp.set.Hash()
		g.policies.cur.Store(cp)
		g.logger.Info("policies reloaded", zap.String("hash", hash), zap.Int("count", len(cp.set.Policies())))
	}
}

// applyPolicy picks the request's model and policy (a refusal is a 403)
// and, for shapes that take them, runs the policy's preprocessing steps
// on the body: input filters, grounding, context filters, meta prompt and
// token limits.
func (g *Gateway) applyPolicy(ex *exchange, ad apiAdapter, body []byte, alias string) ([]byte, error) {
	defer ex.step("groundgate.policy").end(nil)
	cp, err := g.selectPolicy(ex, alias)
	if err != nil || cp == nil {
		return body, err
	}
	rt := cp.rt[ex.policy.Name]
	ex.rt = rt // budgets apply to every shape, prompt steps to some
	pa := ad.prepare()
	if pa == nil {
		if f, ok := ad.(inputFilter); ok { // embeddings: input filters only
			return f.filterInput(ex, rt.filters, body)
		}
		return body, nil
	}
	if body, err = ex.filterInput(pa, rt.filters, body); err != nil {
		return nil, err
	}
	if body, err = ex.capAnswers(pa, body, rt); err != nil {
		return nil, err
	}
	data := policies.Data{
		Principal: policies.Principal{Name: ex.principal.name, Team: ex.principal.team},
		Feature:   ex.feature,
		Now:       ex.start,
		User:      pa.userText(body),
	}
	if rt.ground != nil {
		packed, err := ex.ground(rt.ground, body)
		if err != nil {
			return nil, err
		}
		ex.filterContext(rt.filters, packed)
		ex.packed = packed
		data.Records, data.Articles = packed.Records, packed.Articles
	}
	if body, err = ex.applyMeta(pa, body, data, rt); err != nil {
		return nil, err
	}
	return body, ex.checkPromptLimit(pa, rt)
}

// selectPolicy finds the model the alias names and, with policies, the
// policy that serves the request. It returns the policy set in force (nil
// without policies).
func (g *Gateway) selectPolicy(ex *exchange, alias string) (*compiledPolicies, error) {
	m, known := g.models[alias]
	if g.policies == nil {
		if !known {
			return nil, unknownModel(ex.route, alias)
		}
		ex.model = m
		return nil, nil
	}
	cp := g.policies.cur.Load()
	d := cp.set.Match(policies.Input{
		API: ex.route.api, Route: ex.route.name, Model: alias,
		Key: ex.principal.name, Team: ex.principal.team,
		Feature: ex.r.Header.Get(policies.FeatureHeader), Overrides: g.toggles,
	})
	if d.Denied {
		return nil, &wire.Error{Status: http.StatusForbidden, Type: wire.TypePermission, Code: "policy_denied", Message: d.Reason}
	}
	p := d.Policy
	ex.policy, ex.feature = p, d.Feature
	ex.w.Header().Set("X-Groundgate-Policy", p.Name)

	switch {
	case known && p.Pool == "":
		ex.model = m
	case known:
		ex.model = &model{alias: m.alias, pool: g.pools[p.Pool], tokenizer: m.tokenizer}
	case d.ByAlias && p.Pool != "":
		ex.model = &model{alias: alias, pool: g.pools[p.Pool], tokenizer: g.poolTokenizer(p.Pool)}
	default:
		return nil, unknownModel(ex.route, alias)
	}
	return cp, nil
}

// poolTokenizer is the tokenizer of the first model served by the pool,
// for aliases that only a policy defines.
func (g *Gateway) poolTokenizer(pool string) string {
	for _, mc := range g.Models {
		if mc.Pool == pool {
			return g.models[mc.Alias].tokenizer
		}
	}
	return "gpt-4o"
}

// lastUserText is the text of the last user message (string content or
// its text parts).
func lastUserText(messages gjson.Result) string {
	var last gjson.Result
	messages.ForEach(func(_, m gjson.Result) bool {
		if m.Get("role").Str == "user" {
			last = m.Get("content")
		}
		return true
	})
	if last.Type == gjson.String {
		return last.Str
	}
	var text string
	last.ForEach(func(_, part gjson.Result) bool {
		if part.Get("type").Str == "text" {
			if text != "" {
				text += "\n"
			}
			text += part.Get("text").Str
		}
		return true
	})
	return text
}

// checkPolicyFiles loads and compiles the policy files while the
// Caddyfile is adapted, so `caddy adapt` and `caddy validate` report a bad
// policy file with its line, not only a reload. Relative paths are
// relative to the working directory, as Caddy's other file paths are.
func checkPolicyFiles(patterns []string) error {
	set, err := policies.Load(patterns...)
	if err != nil {
		return err
	}
	_, err = new(Gateway).compile(set)
	return err
}
