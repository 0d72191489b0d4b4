package caddymodule

import (
	"github.com/tidwall/gjson"

	"github.com/groundgate/groundgate/filters"
	"github.com/groundgate/groundgate/policies"
	"github.com/groundgate/groundgate/tokens"
)

// Every model request takes the same named steps, whatever its API shape:
//
//	ingress     route and key → principal (serve)
//	preprocess  body parsed, model and policy picked, input filters,
//	            grounding, meta prompt, token limits, cache lookup,
//	            budgets reserved (preprocess)
//	call        the pool's deployments, with retries and failover (call)
//	relay       the answer to the client, whole or event by event, through
//	            the output filters and post-processors (relay)
//	settle      usage settled against budgets, audit record, metrics and
//	            logs (finish)
//
// An API shape (chat completions, Responses, embeddings) is an adapter:
// it reads and rewrites its own wire format for each step and relays its
// own answers; the steps and their order are the pipeline's.
type apiAdapter interface {
	// op is the upstream operation the shape calls.
	op() operation
	// parse validates the body and returns what the pipeline needs.
	parse(body []byte) (apiRequest, error)
	// prepare is the shape's part of preprocessing: nil for a shape with
	// no prompt (embeddings), which gets budgets and, if it implements
	// inputFilter, input filters, but no grounding, meta prompt, limits
	// or cache.
	prepare() promptAdapter
	// forUpstream makes the last changes before the call (e.g. asking
	// for usage on streams).
	forUpstream(body []byte, req apiRequest) ([]byte, error)
	// relayAnswer sends a whole upstream answer.
	relayAnswer(ex *exchange, at *attempt, req apiRequest) error
	// relayStream sends a streamed answer, event by event.
	relayStream(ex *exchange, at *attempt, req apiRequest) error
}

// inputFilter is implemented by shapes without prompt steps whose input
// is still filtered (embeddings).
type inputFilter interface {
	filterInput(ex *exchange, chain *filters.Chain, body []byte) ([]byte, error)
}

// apiRequest is what the pipeline reads from a request body.
type apiRequest struct {
	model        string // "" when absent (Azure's deployment path)
	stream       bool
	includeUsage bool // the client asked for the usage chunk (chat)
	// previousID is the stored response a request continues (Responses);
	// it must belong to the request's principal.
	previousID string
	noStore    bool // the client asked the upstream not to store the answer
	// structured: the client asked for a JSON answer (chat's
	// response_format), which post-processors must leave alone.
	structured bool
}

// promptAdapter reads and rewrites the prompt of one API shape for the
// preprocessing steps.
type promptAdapter interface {
	// userText is the text of the client's last user turn, for meta
	// prompt templates and the semantic search.
	userText(body []byte) string
	// filterInput runs the input stage of the chain over the client's
	// text: a block refuses the request, a redaction rewrites the body.
	filterInput(ex *exchange, chain *filters.Chain, body []byte) ([]byte, error)
	// applyMeta places the rendered meta prompt in the body.
	applyMeta(body []byte, meta *policies.MetaPrompt, d policies.Data) ([]byte, error)
	// clampOutput lowers (or sets) the answer's token cap to max.
	clampOutput(body []byte, max int, tokenizer string) ([]byte, error)
	// maxOutput is the request's own answer cap (0: none).
	maxOutput(body []byte) int64
	// countPrompt counts the prompt's tokens as the model will see them.
	countPrompt(enc *tokens.Encoder, body []byte) (int, error)
	// promptParam names the body member a prompt error points at.
	promptParam() string
	// cacheable reports whether a complete answer may be cached.
	cacheable(stream bool, answer []byte) bool
}

// serveModel runs a model request through the pipeline's steps.
func (g *Gateway) serveModel(ex *exchange, ad apiAdapter) error {
	ex.api = ad
	body, req, err := g.preprocess(ex, ad)
	if err != nil || ex.cacheHit {
		return err
	}
	if body, err = ad.forUpstream(body, req); err != nil {
		return err
	}
	ex.sent = body
	ex.traceRequest(body)
	at, err := g.call(ex, ex.model.pool, ad.op(), body, req.stream)
	if err != nil {
		return err
	}
	defer at.close()
	ex.upstream = at.upstream
	return ex.relay(ad, at, req)
}

// preprocess reads the body and applies the policy before the call: it
// ends with a cache hit (ex.cacheHit) or the body to send upstream, with
// its budget reserved.
func (g *Gateway) preprocess(ex *exchange, ad apiAdapter) ([]byte, apiRequest, error) {
	body, err := ex.readBody()
	if err != nil {
		return nil, apiRequest{}, err
	}
	req, err := ad.parse(body)
	if err != nil {
		return nil, req, err
	}
	ex.structured = req.structured
	alias, err := requestedModel(ex.route, req.model)
	if err != nil {
		return nil, req, err
	}
	if req.previousID != "" {
		if ex.stored, err = g.owners.check(ex, req.previousID, "previous_response_id"); err != nil {
			return nil, req, err
		}
	}
	if body, err = g.applyPolicy(ex, ad, body, alias); err != nil {
		return nil, req, err
	}
	if rt := ex.rt; rt != nil {
		if rt.cacheTTL > 0 && ad.prepare() != nil {
			ex.cacheKey = ex.computeCacheKey(body)
			if ex.cacheLookup(ex.cacheKey) {
				return nil, req, nil
			}
		}
		// A cached answer costs nothing upstream; only a call is budgeted.
		if err := ex.reserve(body, rt); err != nil {
			return nil, req, err
		}
	}
	return body, req, nil
}

// relay sends the upstream's answer through the shape's adapter. Its span
// covers a stream to its end, so the output filters and post-processors a
// stream runs event by event are inside a step of the trace too.
func (ex *exchange) relay(ad apiAdapter, at *attempt, req apiRequest) (err error) {
	sp := ex.step("groundgate.relay")
	defer func() {
		sp.relayEnd(req.stream && at.body == nil, ex.incomplete)
		sp.end(&err)
	}()
	if req.stream && at.body == nil {
		return ad.relayStream(ex, at, req)
	}
	return ad.relayAnswer(ex, at, req)
}

// usageFields name the members of a shape's usage object.
type usageFields struct{ prompt, completion, cached string }

var (
	chatUsage      = usageFields{"prompt_tokens", "completion_tokens", "prompt_tokens_details.cached_tokens"}
	responsesUsage = usageFields{"input_tokens", "output_tokens", "input_tokens_details.cached_tokens"}
)

// recordUsage takes the upstream's token counts.
func (ex *exchange) recordUsage(u gjson.Result, f usageFields) {
	if !u.IsObject() {
		return
	}
	ex.usageReported = true
	ex.promptTokens = u.Get(f.prompt).Int()
	ex.completionTokens = u.Get(f.completion).Int()
	ex.cachedTokens = u.Get(f.cached).Int()
}

// adapterFor is the adapter of an operation's API shape.
func adapterFor(op operation) apiAdapter {
	switch op {
	case opEmbeddings:
		return embeddingsAPI{}
	case opResponses:
		return responsesAPI{}
	}
	return chatAPI{}
}
