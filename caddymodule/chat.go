package caddymodule

import (
	"bytes"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/groundgate/groundgate/filters"
	"github.com/groundgate/groundgate/policies"
	"github.com/groundgate/groundgate/tokens"
	"github.com/groundgate/groundgate/wire"
)

// chatAPI adapts chat completions to the pipeline.
type chatAPI struct{}

func (chatAPI) op() operation          { return opChat }
func (chatAPI) prepare() promptAdapter { return chatMessages{} }
func (chatAPI) parse(body []byte) (apiRequest, error) {
	chat, err := wire.ParseChat(body)
	if err != nil {
		return apiRequest{}, err
	}
	return apiRequest{model: chat.Model, stream: chat.Stream, includeUsage: chat.IncludeUsage,
		structured: structuredFormat(chat.ResponseFormat)}, nil
}

// forUpstream asks for the usage chunk on streams: without it token
// accounting is blind.
func (chatAPI) forUpstream(body []byte, req apiRequest) ([]byte, error) {
	if req.stream && !req.includeUsage {
		return setIncludeUsage(body)
	}
	return body, nil
}

func (chatAPI) relayStream(ex *exchange, at *attempt, req apiRequest) error {
	return ex.relayEvents(at, newChatEvents(ex, req.includeUsage))
}

// relayAnswer sends a whole completion through the output filters and
// post-processors, or an upstream 4xx unchanged.
func (chatAPI) relayAnswer(ex *exchange, at *attempt, _ apiRequest) error {
	if at.resp.StatusCode == http.StatusOK {
		ex.recordUsage(gjson.GetBytes(at.body, "usage"), chatUsage)
		ex.traceResponse(at.body)
		ex.responseID = gjson.GetBytes(at.body, "id").Str
		at.body = ex.mergePromptAnnotations(ex.filterAnswer(at.body))
		var err error
		if at.body, err = ex.postAnswer(at.body); err != nil {
			return err
		}
		if !ex.usageReported {
			ex.collectMessages(at.body)
		}
	}
	return ex.relayJSON(at)
}

// chatMessages reads and rewrites chat messages for preprocessing.
type chatMessages struct{}

func (chatMessages) userText(body []byte) string {
	return lastUserText(gjson.GetBytes(body, "messages"))
}

func (chatMessages) filterInput(ex *exchange, chain *filters.Chain, body []byte) ([]byte, error) {
	return filterChatInput(ex, chain, body)
}

func (chatMessages) applyMeta(body []byte, meta *policies.MetaPrompt, d policies.Data) ([]byte, error) {
	return meta.Apply(body, d)
}

// applyMetaCounted: a meta prompt added as a system message of its own
// costs what tokens.MessageTokens says, when its text goes into the JSON
// body unchanged (valid UTF-8; AppendString replaces invalid bytes). An
// empty prompt adds nothing.
func (chatMessages) applyMetaCounted(body []byte, meta *policies.MetaPrompt, d policies.Data, enc *tokens.Encoder) ([]byte, int, bool, error) {
	added, exact := 0, true
	out, err := meta.ApplyWith(body, d, func(p string) {
		switch {
		case p == "":
		case utf8.ValidString(p):
			added = enc.MessageTokens("system", p)
		default:
			exact = false
		}
	})
	return out, added, exact, err
}

func (chatMessages) clampOutput(body []byte, max int, tokenizer string) ([]byte, error) {
	return clampCompletion(body, max, tokenizer)
}

func (chatMessages) maxOutput(body []byte) int64 { return maxCompletion(body) }

// countPrompt counts a body validated by wire.ParseChat.
func (chatMessages) countPrompt(enc *tokens.Encoder, body []byte) (int, error) {
	return enc.CountChatValid(body)
}

func (chatMessages) promptParam() string { return "messages" }

func (chatMessages) cacheable(stream bool, answer []byte) bool {
	if stream {
		return bytes.HasSuffix(answer, doneEvent) && !bytes.Contains(answer, []byte(`"finish_reason":"content_filter"`))
	}
	return gjson.GetBytes(answer, "choices.0.finish_reason").Str != "content_filter"
}

// requestedModel is the alias named by the Azure path or the body.
func requestedModel(rt route, bodyModel string) (string, error) {
	alias := bodyModel
	if rt.api == apiAzure && rt.deployment != "" {
		alias = rt.deployment
	}
	if alias == "" {
		return "", wire.BadRequest("model", "missing_required_parameter", "You must provide a model parameter.")
	}
	return alias, nil
}

func unknownModel(rt route, alias string) error {
	if rt.api == apiAzure && rt.deployment != "" {
		return &wire.Error{Status: http.StatusNotFound, Type: wire.TypeInvalidRequest, Code: "DeploymentNotFound",
			Message: "The API deployment " + alias + " does not exist on this gateway."}
	}
	return &wire.Error{Status: http.StatusNotFound, Type: wire.TypeInvalidRequest, Param: "model", Code: "model_not_found",
		Message: "The model `" + alias + "` does not exist or you do not have access to it."}
}

// relayJSON sends a whole upstream answer as it now is, caching a
// successful one when the policy caches.
func (ex *exchange) relayJSON(at *attempt) error {
	if at.resp.StatusCode == http.StatusOK {
		if ex.cacheKey != "" {
			ex.cacheStore(ex.cacheKey, false, at.body, ex.rt.cacheTTL)
		}
	} else {
		ex.forgetSent() // nothing to count for an upstream error
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

// setModel names the upstream's model in the body (OpenAI-compatible and
// Azure v1 upstreams read the deployment from it).
func setModel(body []byte, name string) ([]byte, error) {
	return sjson.SetBytes(body, "model", name)
}

// setIncludeUsage asks the upstream for the usage chunk.
func setIncludeUsage(body []byte) ([]byte, error) {
	return sjson.SetBytes(body, "stream_options.include_usage", true)
}
