package caddymodule

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/groundgate/groundgate/filters"
	"github.com/groundgate/groundgate/post"
)

// Output filters and post-processors on Responses answers. Text is in
// output items of type "message" (content parts of type "output_text"
// and "refusal") and in reasoning summaries; function calls carry their
// arguments as one JSON string. Filters scan all of them; rewriters
// (citations, disclaimers) act on output_text only. A blocked text
// or call ends the response the way the service ends a filtered one:
// status "incomplete", incomplete_details.reason "content_filter", and
// nothing of the blocked item.

// filterResponse applies the output filters to a whole response object.
func (ex *exchange) filterResponse(body []byte) []byte {
	chain := ex.outputChain()
	if chain == nil {
		return body
	}
	blocked := false
	var drop []int // output items removed, in order
	i := -1
	gjson.GetBytes(body, "output").ForEach(func(_, it gjson.Result) bool {
		i++
		base := "output." + strconv.Itoa(i)
		switch it.Get("type").Str {
		case "message":
			body, blocked = ex.filterParts(chain, body, it.Get("content"), base+".content.", partField, blocked)
		case "reasoning":
			body, blocked = ex.filterParts(chain, body, it.Get("summary"), base+".summary.", summaryField, blocked)
		case "function_call":
			res := runArguments(chain, it.Get("arguments").Str)
			ex.countFindings(res.Findings, "output")
			switch {
			case res.Blocked:
				drop = append(drop, i)
				blocked = true
			case res.Redacted:
				body, _ = sjson.SetBytes(body, base+".arguments", res.Text)
			}
		}
		return true
	})
	for k := len(drop) - 1; k >= 0; k-- {
		body, _ = sjson.DeleteBytes(body, "output."+strconv.Itoa(drop[k]))
	}
	if blocked {
		body = markFiltered(body, "")
	}
	return body
}

// summaryField is where a reasoning summary part keeps its text.
func summaryField(gjson.Result) string { return "text" }

// filterParts runs the output filters over the text of each part of an
// item's array (message content, reasoning summary) at prefix: a
// redaction rewrites the text, a block empties it and reports blocked.
func (ex *exchange) filterParts(chain *filters.Chain, body []byte, parts gjson.Result, prefix string,
	field func(gjson.Result) string, blocked bool) ([]byte, bool) {
	j := -1
	parts.ForEach(func(_, part gjson.Result) bool {
		j++
		f := field(part)
		t := part.Get(f)
		if t.Type != gjson.String {
			return true
		}
		res := chain.Run(t.Str, filters.StageOutput)
		ex.countFindings(res.Findings, "output")
		path := prefix + strconv.Itoa(j) + "." + f
		switch {
		case res.Blocked:
			body, _ = sjson.SetBytes(body, path, "")
			blocked = true
		case res.Redacted:
			body, _ = sjson.SetBytes(body, path, res.Text)
		}
		return true
	})
	return body, blocked
}

// runArguments filters function call arguments. A redaction that would
// leave JSON arguments invalid (a label standing for a bare value) blocks
// instead: clients parse arguments, so fail closed.
func runArguments(chain *filters.Chain, args string) filters.Result {
	res := chain.Run(args, filters.StageOutput)
	if res.Redacted && gjson.Valid(args) && !gjson.Valid(res.Text) {
		res.Blocked = true
	}
	return res
}

// markFiltered sets a response object (at path prefix, "" for the root)
// incomplete for content filtering.
func markFiltered(body []byte, prefix string) []byte {
	body, _ = sjson.SetBytes(body, prefix+"status", "incomplete")
	body, _ = sjson.SetRawBytes(body, prefix+"incomplete_details", []byte(`{"reason":"content_filter"}`))
	return body
}

// postResponse runs the policy's post-processors over each output text
// (citations, disclaimers). Context members they return (citations) go
// in the message item's "context", as Azure "On Your Data" puts them in
// message.context.
func (ex *exchange) postResponse(body []byte) ([]byte, error) {
	if ex.rt == nil || ex.rt.post == nil {
		return body, nil
	}
	defer ex.step("groundgate.post").end(nil)
	ex.postResult = new(post.Result)
	req := ex.postRequest()
	i := -1
	gjson.GetBytes(body, "output").ForEach(func(_, it gjson.Result) bool {
		i++
		if it.Get("type").Str != "message" {
			return true
		}
		base := "output." + strconv.Itoa(i)
		var ctx []byte
		j := -1
		it.Get("content").ForEach(func(_, part gjson.Result) bool {
			j++
			if part.Get("type").Str != "output_text" {
				return true
			}
			rw := ex.rt.post.NewRewriter(req, ex.postResult)
			if rw == nil {
				return false
			}
			// What Delta returns is only valid until the next call.
			text, cx := rw.Delta(part.Get("text").Str)
			text, ctx = strings.Clone(text), post.MergeContext(ctx, bytes.Clone(cx))
			tail, cx := rw.Finish()
			ctx = post.MergeContext(ctx, bytes.Clone(cx))
			body, _ = sjson.SetBytes(body, base+".content."+strconv.Itoa(j)+".text", text+tail)
			return true
		})
		if len(ctx) > 0 {
			body, _ = sjson.SetRawBytes(body, base+".context", ctx)
		}
		return true
	})
	if v := ex.postResult.HeaderValue(); v != "" {
		ex.w.Header().Set(post.GroundingHeader, v)
	}
	return body, nil
}
