package caddymodule

import (
	"encoding/json"
	"net/http"
	"slices"

	"github.com/groundgate/groundgate/policies"
	"github.com/groundgate/groundgate/tokens"
	"github.com/groundgate/groundgate/wire"
)

// serveTokenCounter answers POST /utils/token_counter with the prompt
// tokens of {model, messages} counted as OpenAI bills a chat prompt
// (LiteLLM's endpoint and field names).
func (g *Gateway) serveTokenCounter(ex *exchange) error {
	body, err := ex.readBody()
	if err != nil {
		return err
	}
	chat, err := wire.ParseChat(body)
	if err != nil {
		return err
	}
	if chat.Model == "" {
		return wire.BadRequest("model", "missing_required_parameter", "You must provide a model parameter.")
	}
	tokenizer := chat.Model
	if m, ok := g.models[chat.Model]; ok {
		tokenizer = m.tokenizer
	}
	enc, err := tokens.ForModel(tokenizer)
	if err != nil {
		return wire.BadRequest("model", "model_not_found", "No tokenizer is known for model `"+chat.Model+"`: "+err.Error())
	}
	n, err := enc.CountChat(body)
	if err != nil {
		return wire.BadRequest("messages", "invalid_value", err.Error())
	}
	return ex.writeJSON(map[string]any{
		"total_tokens":   n,
		"request_model":  chat.Model,
		"model_used":     tokenizer,
		"tokenizer_type": enc.Name(),
	})
}

// operator checks that the caller may use the operator endpoints.
func (g *Gateway) operator(ex *exchange) error {
	if slices.Contains(g.Introspect, ex.principal.name) {
		return nil
	}
	if len(g.Introspect) == 0 {
		return notFound(ex.r)
	}
	return &wire.Error{Status: http.StatusForbidden, Type: wire.TypePermission, Code: "operator_only",
		Message: "Key " + ex.principal.name + " may not call the gateway's operator endpoints (see introspect)."}
}

// serveExplain answers POST /groundgate/explain/{route}?principal=NAME:
// which policy a request would match and why, and the upstream request
// the gateway would send (without credentials). Nothing is sent.
func (g *Gateway) serveExplain(ex *exchange) error {
	if err := g.operator(ex); err != nil {
		return err
	}
	// An operator may explain a request as any principal would make it:
	// the decision and the context use that principal's scope, but the
	// exchange stays the operator's own dry run (audit record included).
	operator := ex.principal
	ex.dryRunAs = operator.name
	if name := ex.r.URL.Query().Get("principal"); name != "" {
		p := g.keys.byName(name)
		if p == nil {
			return wire.BadRequest("principal", "unknown_principal", "No key is named "+name+".")
		}
		ex.principal, ex.dryRunAs = p, p.name
		defer func() { ex.principal = operator }()
	}
	body, err := ex.readBody()
	if err != nil {
		return err
	}
	ad := adapterFor(ex.route.explains)
	ex.api = ad
	req, err := ad.parse(body)
	if err != nil {
		return err
	}
	alias, err := requestedModel(ex.route, req.model)
	if err != nil {
		return err
	}
	out := map[string]any{"principal": ex.principal.name, "team": ex.principal.team, "model": alias}
	if g.policies != nil {
		set := g.policies.cur.Load().set
		d := set.Match(policies.Input{API: ex.route.api, Route: ex.route.name, Model: alias,
			Key: ex.principal.name, Team: ex.principal.team, Feature: ex.r.Header.Get(policies.FeatureHeader), Overrides: g.toggles})
		dec := map[string]any{"denied": d.Denied, "reason": d.Reason, "feature": d.Feature, "by_alias": d.ByAlias, "trace": d.Trace, "policy_set_hash": set.Hash()}
		if d.Policy != nil {
			dec["policy"], dec["source"], dec["hash"] = d.Policy.Name, d.Policy.Source, d.Policy.Hash
		}
		out["decision"] = dec
	}
	ex.route.op = ex.route.explains
	patched, err := g.applyPolicy(ex, ad, body, alias)
	if err == nil {
		patched, err = ad.forUpstream(patched, req)
	}
	if err != nil {
		out["error"] = err.Error()
		return ex.writeJSON(out)
	}
	var ups []map[string]any
	for _, u := range ex.model.pool.order() {
		target := u.target(ex.route.op, &ex.route, "")
		b := patched
		if u.setModel || ex.route.op == opResponses {
			b, _ = setModel(b, u.deployment)
		}
		ups = append(ups, map[string]any{"upstream": u.name, "url": target, "priority": u.priority, "weight": u.weight,
			"breaker": u.state.breaker.State().String(), "body": json.RawMessage(b)})
	}
	out["pool"] = ex.model.pool.name
	out["upstream_requests"] = ups
	return ex.writeJSON(out)
}

// writeJSON sends a small gateway-made JSON answer (operator endpoints,
// token counts): encoding/json is fine off the proxy path.
func (ex *exchange) writeJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	ex.w.Header().Set("Content-Type", "application/json")
	ex.writeHeader(http.StatusOK)
	_, _ = ex.w.Write(b)
	return nil
}
