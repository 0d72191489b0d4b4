package caddymodule

import (
	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/groundgate/groundgate/tokens"
)

// When the upstream reports no usage (a stream that broke or was
// abandoned before its usage chunk, an OpenAI-compatible server that
// ignores include_usage), the gateway counts the tokens itself: the
// prompt it sent, with the model's tokenizer, and the answers it received
// and passed on, every choice, text, refusals and tool calls alike.

// Why an answer is incomplete, for the audit record.
const (
	incompleteClientGone    = "client_disconnected" // the client left (or stopped reading) before the end
	incompleteUpstreamError = "upstream_error"      // the upstream stream broke (reset, cut)
	incompleteUpstreamIdle  = "upstream_timeout"    // the upstream stream stalled past stream_idle_timeout
	incompleteFiltered      = "content_filter"      // a content filter ended the answer
)

// maxCountedChoices bounds the per-choice buffers: n is at most 128.
const maxCountedChoices = 128

// collectDelta keeps the answer text of one stream chunk, every choice.
// It reports whether a choice ended with finish_reason content_filter.
func (ex *exchange) collectDelta(choices gjson.Result) (filtered bool) {
	choices.ForEach(func(_, c gjson.Result) bool {
		if c.Get("finish_reason").Str == "content_filter" {
			filtered = true
		}
		if ex.usageReported {
			return true
		}
		d := c.Get("delta")
		if !d.Exists() {
			return true
		}
		i := int(c.Get("index").Int())
		d.ForEach(func(k, v gjson.Result) bool {
			switch k.Str {
			case "content", "refusal":
				ex.collect(i, v.Str)
			case "tool_calls":
				v.ForEach(func(_, tc gjson.Result) bool {
					ex.collect(i, tc.Get("function.name").Str)
					ex.collect(i, tc.Get("function.arguments").Str)
					return true
				})
			case "function_call":
				ex.collect(i, v.Get("name").Str)
				ex.collect(i, v.Get("arguments").Str)
			}
			return true
		})
		return true
	})
	return filtered
}

// collectMessages keeps the answer text of a whole completion.
func (ex *exchange) collectMessages(body []byte) {
	gjson.GetBytes(body, "choices").ForEach(func(_, c gjson.Result) bool {
		i := int(c.Get("index").Int())
		m := c.Get("message")
		ex.collect(i, m.Get("content").Str)
		ex.collect(i, m.Get("refusal").Str)
		m.Get("tool_calls").ForEach(func(_, tc gjson.Result) bool {
			ex.collect(i, tc.Get("function.name").Str)
			ex.collect(i, tc.Get("function.arguments").Str)
			return true
		})
		ex.collect(i, m.Get("function_call.name").Str)
		ex.collect(i, m.Get("function_call.arguments").Str)
		return true
	})
}

func (ex *exchange) collect(choice int, s string) {
	if s == "" || choice < 0 || choice >= maxCountedChoices {
		return
	}
	for len(ex.answers) <= choice {
		ex.answers = append(ex.answers, nil)
	}
	ex.answers[choice] = append(ex.answers[choice], s...)
}

// countUsage counts the tokens of what was sent upstream and what came
// back, for a request whose upstream reported no usage.
func (ex *exchange) countUsage() {
	enc, err := tokens.ForModel(ex.model.tokenizer)
	if err != nil {
		ex.g.logger.Warn("upstream reported no usage and no tokenizer is known for the model",
			zap.String("model", ex.model.alias), zap.String("tokenizer", ex.model.tokenizer))
		return
	}
	if ex.route.op == opEmbeddings {
		ex.promptTokens = countEmbeddingsInput(enc, gjson.GetBytes(ex.sent, "input"))
		return
	}
	if ex.api == nil || ex.api.prepare() == nil {
		return
	}
	if ex.sent == nil {
		ex.promptTokens = ex.sentTokens
	} else if n, err := ex.api.prepare().countPrompt(enc, ex.sent); err == nil {
		ex.promptTokens = int64(n)
	}
	var completion int64
	for _, a := range ex.answers {
		completion += int64(enc.Count(string(a)))
	}
	ex.completionTokens = completion
}

// markIncomplete records the first reason the answer is incomplete.
func (ex *exchange) markIncomplete(reason string) {
	if ex.incomplete == "" {
		ex.incomplete = reason
	}
}

// abandon notes that the client left while an upstream attempt was in
// flight: the upstream has the request and may bill it. A stream stops
// when its connection closes, so only its prompt counts; a non-streamed
// answer may still be generated in full, so its budgets keep the whole
// completion estimate.
func (ex *exchange) abandon(stream bool) {
	ex.abandoned = true
	if !stream {
		ex.unseenCompletion = ex.est.completion
	}
	ex.markIncomplete(incompleteClientGone)
}
