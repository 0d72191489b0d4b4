package caddymodule

import (
	"fmt"

	"github.com/groundgate/groundgate/policies"
	"github.com/groundgate/groundgate/tokens"
)

// checkTokenizers refuses, when the config loads, a policy that counts
// tokens (grounding packs context into a token budget; budgets count
// prompts) on a model alias whose tokenizer is unknown: otherwise every
// such request would fail with 500 at run time.
func (g *Gateway) checkTokenizers(cp *compiledPolicies) error {
	for _, p := range cp.set.Policies() {
		why := tokenizerNeed(cp.rt[p.Name])
		if why == "" {
			continue
		}
		for _, mc := range g.Models { // config order: the first bad alias is named
			if !p.MayServe(policies.RouteChat, mc.Alias) {
				continue
			}
			if err := knownTokenizer(g.models[mc.Alias].tokenizer); err != nil {
				return fmt.Errorf("%s:%d: policy %q %s, but model alias %q counts with %q, an unknown tokenizer (set `tokenizer <OpenAI model name>` on the alias): %v",
					p.Source, p.Line, p.Name, why, mc.Alias, g.models[mc.Alias].tokenizer, err)
			}
		}
		if p.Pool == "" {
			continue
		}
		for _, alias := range p.Match.Aliases {
			if _, defined := g.models[alias]; defined {
				continue // checked above
			}
			if tok := g.poolTokenizer(p.Pool); knownTokenizer(tok) != nil {
				return fmt.Errorf("%s:%d: policy %q %s, but its alias %q is served by pool %q whose models count with %q, an unknown tokenizer",
					p.Source, p.Line, p.Name, why, alias, p.Pool, tok)
			}
		}
	}
	return nil
}

// tokenizerNeed says why a policy counts tokens ("" when it does not).
func tokenizerNeed(rt *policyRuntime) string {
	switch {
	case rt == nil:
		return ""
	case rt.ground != nil:
		return "grounds requests (context is packed by tokens)"
	case rt.budget.PromptTokens > 0 || len(rt.counters) > 0 || len(rt.deployCounters) > 0:
		return "has token budgets"
	}
	return ""
}

func knownTokenizer(name string) error {
	_, err := tokens.ForModel(name)
	return err
}
