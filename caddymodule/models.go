package caddymodule

import (
	"net/http"
	"slices"

	"github.com/groundgate/groundgate/policies"
	"github.com/groundgate/groundgate/wire"
)

// buildModelList renders the model list once, at provisioning.
func buildModelList(models []ModelConfig) []byte {
	b := []byte(`{"object":"list","data":[`)
	for i, m := range models {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendModel(b, m.Alias)
	}
	return append(b, "]}"...)
}

func appendModel(b []byte, alias string) []byte {
	b = append(b, `{"id":`...)
	b = wire.AppendString(b, alias)
	return append(b, `,"object":"model","created":0,"owned_by":"groundgate"}`...)
}

// serveModels answers GET /v1/models, /openai/v1/models, /openai/models
// and their /{id} forms. Besides the configured models it lists the
// copilot feature aliases (e.g. copilot-draft-email) that policies give
// a pool and that the caller's key may use, so clients that look a model
// up before calling it find them.
func (g *Gateway) serveModels(ex *exchange) error {
	aliases := g.featureAliases(ex)
	body := g.modelList
	if id := ex.route.deployment; id != "" {
		if _, ok := g.models[id]; !ok && !slices.Contains(aliases, id) {
			return &wire.Error{Status: http.StatusNotFound, Type: wire.TypeInvalidRequest, Param: "model", Code: "model_not_found",
				Message: "The model `" + id + "` does not exist or you do not have access to it."}
		}
		body = appendModel(nil, id)
	} else if len(aliases) > 0 {
		body = append(body[:len(body)-2:len(body)-2], ',') // reopen the list (a copy: at least one model is configured)
		for i, a := range aliases {
			if i > 0 {
				body = append(body, ',')
			}
			body = appendModel(body, a)
		}
		body = append(body, "]}"...)
	}
	ex.w.Header().Set("Content-Type", "application/json")
	ex.writeHeader(http.StatusOK)
	if ex.r.Method != http.MethodHead {
		_, _ = ex.w.Write(body)
	}
	return nil
}

// featureAliases are the model aliases of copilot features the principal
// may call: named in a policy's match.aliases, served by the policy's
// pool, not a configured model, and matched for this key and team.
func (g *Gateway) featureAliases(ex *exchange) []string {
	if g.policies == nil {
		return nil
	}
	set := g.policies.cur.Load().set
	var out []string
	for _, p := range set.Policies() {
		if p.Pool == "" {
			continue
		}
		for _, a := range p.Match.Aliases {
			if _, configured := g.models[a]; configured || slices.Contains(out, a) {
				continue
			}
			for _, route := range [...]string{policies.RouteChat, policies.RouteResponses} {
				d := set.Match(policies.Input{API: ex.route.api, Route: route, Model: a,
					Key: ex.principal.name, Team: ex.principal.team, Overrides: g.toggles})
				if !d.Denied && d.ByAlias && d.Policy != nil && d.Policy.Pool != "" {
					out = append(out, a)
					break
				}
			}
		}
	}
	return out
}
