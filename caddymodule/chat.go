package caddymodule

import (
	"net/http"
	"strconv"

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
	alias, err := requestedModel(ex.route, chat.Model)
	if err != nil {
		return err
	}
	if body, err = g.applyPolicy(ex, body, alias, chat.Messages); err != nil {
		return err
	}
	if rt := ex.rt; rt != nil {
		if rt.cacheTTL > 0 {
			ex.cacheKey = ex.computeCacheKey(body)
			if ex.cacheLookup(ex.cacheKey) {
				return nil
			}
		}
		// A cached answer costs nothing upstream; only a call is budgeted.
		if err := ex.reserve(body, rt); err != nil {
			return err
		}
	}
	// Usage must come back on streams too, or token accounting is blind.
	if chat.Stream && !chat.IncludeUsage {
		if body, err = setIncludeUsage(body); err != nil {
			return err
		}
	}
	ex.sent = body
	ex.traceRequest(body)
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

// requestedModel is the alias named by the Azure path or the body.
func requestedModel(rt route, bodyModel string) (string, error) {
	alias := bodyModel
	if rt.api == apiAzure {
		alias = rt.deployment
	}
	if alias == "" {
		return "", wire.BadRequest("model", "missing_required_parameter", "You must provide a model parameter.")
	}
	return alias, nil
}

func unknownModel(rt route, alias string) error {
	if rt.api == apiAzure {
		return &wire.Error{Status: http.StatusNotFound, Type: wire.TypeInvalidRequest, Code: "DeploymentNotFound",
			Message: "The API deployment " + alias + " does not exist on this gateway."}
	}
	return &wire.Error{Status: http.StatusNotFound, Type: wire.TypeInvalidRequest, Param: "model", Code: "model_not_found",
		Message: "The model `" + alias + "` does not exist or you do not have access to it."}
}

// relayJSON sends a whole upstream answer: a completion, or an upstream
// 4xx passed through unchanged.
func (ex *exchange) relayJSON(at *attempt) error {
	if at.resp.StatusCode == http.StatusOK {
		ex.recordUsage(gjson.GetBytes(at.body, "usage"))
		ex.traceResponse(at.body)
		if ex.route.op == opChat {
			ex.responseID = gjson.GetBytes(at.body, "id").Str
			at.body = ex.mergePromptAnnotations(ex.filterAnswer(at.body))
			var err error
			if at.body, err = ex.postAnswer(at.body); err != nil {
				return err
			}
		}
		if ex.cacheKey != "" {
			ex.cacheStore(ex.cacheKey, false, at.body, ex.rt.cacheTTL)
		}
		if !ex.usageReported && ex.route.op == opChat {
			ex.collectMessages(at.body)
		}
	} else {
		ex.sent = nil // nothing to count for an upstream error
	}
	h := ex.w.Header()
	ct := at.resp.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/json"
	}
	h.Set("Content-Type", ct)
	h.Set("Content-Length", strconv.Itoa(len(at.body)))
	ex.writeHeader(at.resp.StatusCode)
	return ex.writeBody(at.body)
}

// recordUsage takes the upstream's token counts.
func (ex *exchange) recordUsage(u gjson.Result) {
	if !u.IsObject() {
		return
	}
	ex.usageReported = true
	ex.promptTokens = u.Get("prompt_tokens").Int()
	ex.completionTokens = u.Get("completion_tokens").Int()
	ex.cachedTokens = u.Get("prompt_tokens_details.cached_tokens").Int()
}

// setModel names the upstream's model in the body (OpenAI-compatible and
// Azure v1 upstreams read the deployment from it).
func setModel(body []byte, name string) ([]byte, error) {
	return sjson.SetBytes(body, "model", name)
}

// setIncludeUsage asks the upstream for the usage chunk.
func setIncludeUsage(body []byte) ([]byte, error) {
	return sjson.SetBytes(body, "stream_options.include_usage", true)
}
