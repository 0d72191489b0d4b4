package caddymodule

// The gateway's {llm.*} placeholders are read from the exchange when a
// log or another handler asks for them, not written into the replacer's
// map on every request: most requests have nobody reading most of them,
// and the twenty map writes and boxed values were 2 KB per request.

// placeholder answers the {llm.*} placeholders (caddy.ReplacerFunc). A
// placeholder exists from the moment its value does, as when it was Set:
// principal and team after authentication, policy and feature once a
// policy is chosen, context counts after grounding, and the outcome
// (model, upstream, tokens, cost) once the exchange has finished.
func (ex *exchange) placeholder(key string) (any, bool) {
	if len(key) < 5 || key[:4] != "llm." {
		return nil, false
	}
	switch key[4:] {
	case "request_id":
		return ex.id, true
	case "principal", "team":
		if ex.principal == nil {
			return nil, false
		}
		if key == "llm.team" {
			return ex.principal.team, true
		}
		return ex.principal.name, true
	case "policy", "policy_hash", "feature":
		if ex.policy == nil {
			return nil, false
		}
		switch key {
		case "llm.policy":
			return ex.policy.Name, true
		case "llm.policy_hash":
			return ex.policy.Hash, true
		}
		return ex.feature, true
	case "context_records", "context_docs":
		if ex.packed == nil {
			return nil, false
		}
		if key == "llm.context_docs" {
			return len(ex.packed.Docs), true
		}
		return len(ex.packed.Records), true
	case "rewrite_tokens":
		if ex.rewrite == nil {
			return nil, false
		}
		return ex.rewrite.PromptTokens + ex.rewrite.CompletionTokens, true
	}
	if !ex.done {
		return nil, false
	}
	switch key[4:] {
	case "model":
		if ex.model == nil {
			return "", true
		}
		return ex.model.alias, true
	case "upstream", "deployment":
		if ex.upstream == nil {
			return nil, false
		}
		if key == "llm.deployment" {
			return ex.upstream.deployment, true
		}
		return ex.upstream.name, true
	case "cache":
		if ex.cacheKey == "" {
			return nil, false
		}
		if ex.cacheHit {
			return "hit", true
		}
		return "miss", true
	case "attempts":
		return ex.attempts, true
	case "prompt_tokens":
		return ex.promptTokens, true
	case "completion_tokens":
		return ex.completionTokens, true
	case "total_tokens":
		return ex.promptTokens + ex.completionTokens, true
	case "ttft_ms":
		if ex.ttft <= 0 {
			return nil, false
		}
		return ex.ttft.Milliseconds(), true
	case "cost_usd":
		if ex.costUSD <= 0 {
			return nil, false
		}
		return ex.costUSD, true
	}
	return nil, false
}
