package caddymodule

import (
	"bytes"
	"net/http"
	"strconv"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/groundgate/groundgate/filters"
	"github.com/groundgate/groundgate/grounding"
	"github.com/groundgate/groundgate/policies"
	"github.com/groundgate/groundgate/tokens"
	"github.com/groundgate/groundgate/wire"
)

// responsesAPI adapts the Responses API (POST .../responses) to the
// pipeline: the meta prompt goes in instructions, the input items are
// filtered and grounded like chat messages, answers are output items
// and typed stream events.
type responsesAPI struct{}

func (responsesAPI) op() operation          { return opResponses }
func (responsesAPI) prepare() promptAdapter { return responsesPrompt{} }

func (responsesAPI) parse(body []byte) (apiRequest, error) {
	r, err := wire.ParseResponses(body)
	if err != nil {
		return apiRequest{}, err
	}
	// Conversations live at the upstream under the gateway's one key and
	// the gateway serves no /conversations route: any conversation id is
	// one no principal of the gateway created, so none may be continued.
	if c := gjson.GetBytes(body, "conversation"); c.Exists() && c.Type != gjson.Null {
		return apiRequest{}, wire.BadRequest("conversation", "unsupported_parameter",
			"The gateway does not support 'conversation'; continue a conversation with previous_response_id.")
	}
	return apiRequest{model: r.Model, stream: r.Stream, previousID: r.PreviousResponseID, noStore: r.NoStore}, nil
}

// forUpstream sends the body as is: usage always comes with the
// response (and with a stream's response.completed).
func (responsesAPI) forUpstream(body []byte, _ apiRequest) ([]byte, error) { return body, nil }

func (responsesAPI) relayStream(ex *exchange, at *attempt, req apiRequest) error {
	return ex.relayEvents(at, newResponsesEvents(ex, !req.noStore))
}

// relayAnswer sends a whole response through the output filters and
// post-processors and records who owns it; an upstream 4xx passes
// through unchanged.
func (responsesAPI) relayAnswer(ex *exchange, at *attempt, req apiRequest) error {
	if at.resp.StatusCode == http.StatusOK {
		root := gjson.ParseBytes(at.body)
		ex.recordUsage(root.Get("usage"), responsesUsage)
		ex.traceResponseObject(root)
		ex.responseID = root.Get("id").Str
		if !ex.usageReported {
			collectOutput(ex, root.Get("output"))
		}
		if id := root.Get("id").Str; id != "" && !req.noStore {
			if err := ex.g.owners.record(ex, id); err != nil {
				return err
			}
		}
		at.body = ex.filterResponse(at.body)
		var err error
		if at.body, err = ex.postResponse(at.body); err != nil {
			return err
		}
	}
	return ex.relayJSON(at)
}

// traceResponseObject records a response's id, model and status (its
// finish reason) on the request's span.
func (ex *exchange) traceResponseObject(resp gjson.Result) {
	if tr := ex.tr; tr != nil {
		tr.respID, tr.respModel = resp.Get("id").Str, resp.Get("model").Str
		tr.finish = append(tr.finish, resp.Get("status").Str)
	}
}

// collectOutput keeps a response's output for counting its tokens when
// the upstream reports no usage: texts, refusals, function calls.
func collectOutput(ex *exchange, output gjson.Result) {
	output.ForEach(func(_, it gjson.Result) bool {
		ex.collect(0, it.Get("name").Str)
		ex.collect(0, it.Get("arguments").Str)
		it.Get("content").ForEach(func(_, part gjson.Result) bool {
			ex.collect(0, part.Get("text").Str)
			ex.collect(0, part.Get("refusal").Str)
			return true
		})
		return true
	})
}

// responsesPrompt reads and rewrites a Responses request's input.
type responsesPrompt struct{}

func (responsesPrompt) userText(body []byte) string {
	return grounding.LastUserText(gjson.ParseBytes(body))
}

// filterInput filters every text the client sends, as for chat: its
// instructions, the input string, every input item's text whatever its
// role (message contents, replayed function call arguments, function call
// outputs), and the descriptions of the tools offered.
func (responsesPrompt) filterInput(ex *exchange, chain *filters.Chain, body []byte) ([]byte, error) {
	root := gjson.ParseBytes(body)
	var texts []inputText
	if in := root.Get("instructions"); in.Type == gjson.String {
		texts = append(texts, inputText{"instructions", in.Str})
	}
	in := root.Get("input")
	if in.Type == gjson.String {
		texts = append(texts, inputText{"input", in.Str})
	}
	i := -1
	in.ForEach(func(_, it gjson.Result) bool {
		i++
		if !it.IsObject() {
			return true
		}
		base := "input." + strconv.Itoa(i)
		if c := it.Get("content"); c.Exists() {
			texts = appendContentTexts(texts, base+".content", c)
		}
		if a := it.Get("arguments"); a.Type == gjson.String {
			texts = append(texts, inputText{base + ".arguments", a.Str})
		}
		if o := it.Get("output"); o.Exists() {
			texts = appendContentTexts(texts, base+".output", o)
		}
		return true
	})
	texts = appendToolTexts(texts, root.Get("tools"), "tools", "description")
	return ex.filterTexts(chain, body, texts)
}

// applyMeta places the meta prompt in instructions, which, unlike input
// items, a follow-up with previous_response_id does not inherit: each
// turn gets the policy's prompt once. prepend puts it before the client's
// instructions, append after them; replace sets it alone and drops the
// client's system and developer input items.
func (responsesPrompt) applyMeta(body []byte, meta *policies.MetaPrompt, d policies.Data) ([]byte, error) {
	prompt, err := meta.Render(d)
	if err != nil {
		return nil, err
	}
	return applyInstructions(body, prompt, meta.Mode)
}

func applyInstructions(body []byte, prompt string, mode policies.Mode) ([]byte, error) {
	client := gjson.GetBytes(body, "instructions").Str
	instr := prompt
	switch mode {
	case policies.ModeAppend:
		if client != "" {
			instr = client + "\n\n" + prompt
		}
	case policies.ModeReplace:
		in := gjson.GetBytes(body, "input")
		if in.IsArray() {
			kept := make([]byte, 0, len(in.Raw))
			kept = append(kept, '[')
			in.ForEach(func(_, it gjson.Result) bool {
				if r := it.Get("role").Str; r == "system" || r == "developer" {
					return true
				}
				if len(kept) > 1 {
					kept = append(kept, ',')
				}
				kept = append(kept, it.Raw...)
				return true
			})
			kept = append(kept, ']')
			var err error
			if body, err = sjson.SetRawBytes(body, "input", kept); err != nil {
				return nil, err
			}
		}
	default: // prepend
		if client != "" {
			instr = prompt + "\n\n" + client
		}
	}
	if instr == "" {
		return body, nil
	}
	return sjson.SetBytes(body, "instructions", instr)
}

// minOutputTokens is the smallest max_output_tokens the service accepts.
const minOutputTokens = 16

// clampOutput lowers max_output_tokens to limit (at least the service's
// minimum of 16, which it refuses below), or sets it.
func (responsesPrompt) clampOutput(body []byte, limit int, _ string) ([]byte, error) {
	limit = max(limit, minOutputTokens)
	if v := gjson.GetBytes(body, "max_output_tokens"); v.Type == gjson.Number && v.Int() <= int64(limit) {
		return body, nil
	}
	return sjson.SetBytes(body, "max_output_tokens", limit)
}

func (responsesPrompt) maxOutput(body []byte) int64 {
	return gjson.GetBytes(body, "max_output_tokens").Int()
}

// countPrompt counts a body validated by wire.ParseResponses.
func (responsesPrompt) countPrompt(enc *tokens.Encoder, body []byte) (int, error) {
	return enc.CountResponsesValid(body)
}

func (responsesPrompt) promptParam() string { return "input" }

// cacheable: a completed response that no filter cut short.
func (responsesPrompt) cacheable(stream bool, answer []byte) bool {
	if stream {
		return bytes.Contains(answer, []byte(`"type":"response.completed"`)) && !bytes.Contains(answer, []byte(`"content_filter"`))
	}
	return gjson.GetBytes(answer, "status").Str == "completed"
}
