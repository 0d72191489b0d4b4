package caddymodule

import (
	"net/http"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/groundgate/groundgate/wire"
)

// serveChat handles chat completions on every API shape.
func (g *Gateway) serveChat(ex *exchange) error {
	body, err := ex.readBody()
	if err != nil {
		return err
	}
	chat, err := wire.ParseChat(body)
	if err != nil {
		return err
	}
	if ex.model, err = g.resolveModel(ex.route, chat.Model); err != nil {
		return err
	}
	// Usage must come back on streams too, or token accounting is blind.
	if chat.Stream && !chat.IncludeUsage {
		if body, err = sjson.SetBytes(body, "stream_options.include_usage", true); err != nil {
			return err
		}
	}
	at, err := g.call(ex, ex.model.pool, opChat, body, chat.Stream)
	if err != nil {
		return err
	}
	defer at.close()
	ex.upstream = at.upstream
	if chat.Stream && at.body == nil {
		return g.relayStream(ex, at, chat.IncludeUsage)
	}
	return ex.relayJSON(at)
}

// resolveModel finds the alias named by the Azure path or the body.
func (g *Gateway) resolveModel(rt route, bodyModel string) (*model, error) {
	alias := bodyModel
	if rt.api == apiAzure {
		alias = rt.deployment
	}
	if alias == "" {
		return nil, wire.BadRequest("model", "missing_required_parameter", "You must provide a model parameter.")
	}
	m, ok := g.models[alias]
	if !ok {
		if rt.api == apiAzure {
			return nil, &wire.Error{Status: http.StatusNotFound, Type: wire.TypeInvalidRequest, Code: "DeploymentNotFound",
				Message: "The API deployment " + alias + " does not exist on this gateway."}
		}
		return nil, &wire.Error{Status: http.StatusNotFound, Type: wire.TypeInvalidRequest, Param: "model", Code: "model_not_found",
			Message: "The model `" + alias + "` does not exist or you do not have access to it."}
	}
	return m, nil
}

// relayJSON sends a whole upstream answer: a completion, or an upstream
// 4xx passed through unchanged.
func (ex *exchange) relayJSON(at *attempt) error {
	if at.resp.StatusCode == http.StatusOK {
		ex.recordUsage(gjson.GetBytes(at.body, "usage"))
	}
	h := ex.w.Header()
	ct := at.resp.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/json"
	}
	h.Set("Content-Type", ct)
	ex.writeHeader(at.resp.StatusCode)
	if _, err := ex.w.Write(at.body); err != nil {
		return errClientGone
	}
	return nil
}

// recordUsage takes the upstream's token counts.
func (ex *exchange) recordUsage(u gjson.Result) {
	if !u.IsObject() {
		return
	}
	ex.usageReported = true
	ex.promptTokens = u.Get("prompt_tokens").Int()
	ex.completionTokens = u.Get("completion_tokens").Int()
}

// setModel names the upstream's model in the body (OpenAI-compatible and
// Azure v1 upstreams read the deployment from it).
func setModel(body []byte, name string) ([]byte, error) {
	return sjson.SetBytes(body, "model", name)
}
