package caddymodule

import (
	"fmt"
	"math"
)

// Price is a model's price in US dollars per million tokens.
type Price struct {
	// Input is the price of prompt tokens.
	Input float64 `json:"input"`
	// CachedInput is the price of prompt tokens served from the provider's
	// prompt cache (usage.prompt_tokens_details.cached_tokens). Default:
	// Input.
	CachedInput float64 `json:"cached_input,omitempty"`
	// Output is the price of completion tokens.
	Output float64 `json:"output"`
}

// microUSD is the cost of a request in millionths of a dollar (budget
// counters are integers).
func (p Price) microUSD(prompt, cached, completion int64) int64 {
	cached = min(cached, prompt)
	usd := (float64(prompt-cached)*p.Input + float64(cached)*p.CachedInput + float64(completion)*p.Output) / 1e6
	return int64(math.Ceil(usd * 1e6))
}

func (g *Gateway) provisionPrices() error {
	g.prices = make(map[string]Price, len(g.Prices))
	for name, p := range g.Prices {
		if _, ok := g.models[name]; !ok {
			return fmt.Errorf("price for %q: no such model alias", name)
		}
		if p.Input < 0 || p.Output < 0 || p.CachedInput < 0 {
			return fmt.Errorf("price for %q: prices must not be negative", name)
		}
		if p.CachedInput == 0 {
			p.CachedInput = p.Input
		}
		g.prices[name] = p
	}
	return nil
}

// costMicroUSD is what this request cost, 0 when its model has no price.
func (ex *exchange) costMicroUSD() int64 {
	return ex.priceMicroUSD(ex.promptTokens, ex.completionTokens)
}

// priceMicroUSD prices prompt and completion tokens of this request's
// model (the upstream's cached prompt tokens at their own price).
func (ex *exchange) priceMicroUSD(prompt, completion int64) int64 {
	if ex.model == nil {
		return 0
	}
	p, ok := ex.g.prices[ex.model.alias]
	if !ok {
		return 0
	}
	return p.microUSD(prompt, ex.cachedTokens, completion)
}
