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

// filterInput filters the text of the user's input: the input string, or
// every user message item's text.
func (responsesPrompt) filterInput(ex *exchange, chain *filters.Chain, body []byte) ([]byte, error) {
	in := gjson.GetBytes(body, "input")
	if in.Type == gjson.String {
		return ex.filterText(chain, body, "input", in.Str)
	}
	var err error
	i := -1
	in.ForEach(func(_, it gjson.Result) bool {
		i++
		if it.Get("role").Str != "user" {
			return true
		}
		base := "input." + strconv.Itoa(i) + ".content"
		c := it.Get("content")
		if c.Type == gjson.String {
			body, err = ex.filterText(chain, body, base, c.Str)
			return err == nil
		}
		j := -1
		c.ForEach(func(_, part gjson.Result) bool {
			j++
			if t := part.Get("text"); t.Type == gjson.String && part.Get("type").Str == "input_text" {
				body, err = ex.filterText(chain, body, base+"."+strconv.Itoa(j)+".text", t.Str)
			}
			return err == nil
		})
		return err == nil
	})
	return body, err
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
