package tokens

import (
	"errors"
	"unsafe"

	"github.com/tidwall/gjson"
)

var errBadInput = errors.New(`"input" is not a string or an array`)

// CountResponsesValid counts the prompt of a Responses API request the
// caller has already validated: its instructions as a system message,
// each input item as a chat message would be (a string input is one user
// message), function calls and their outputs by their text, and function
// tools by the chat formula. Stored context a previous_response_id brings
// is not in the body and not counted.
func (e *Encoder) CountResponsesValid(body []byte) (int, error) {
	root := gjson.Parse(unsafe.String(unsafe.SliceData(body), len(body)))
	if !root.IsObject() {
		return 0, errNotObject
	}
	n := replyPriming
	if in := root.Get("instructions"); in.Type == gjson.String {
		n += tokensPerMessage + 1 + e.Count(in.Str) // role "system" is one token
	}
	input := root.Get("input")
	switch {
	case !input.Exists(), input.Type == gjson.Null:
	case input.Type == gjson.String:
		n += tokensPerMessage + 1 + e.Count(input.Str)
	case input.IsArray():
		input.ForEach(func(_, it gjson.Result) bool {
			n += e.countInputItem(it)
			return true
		})
	default:
		return 0, errBadInput
	}
	if tools := root.Get("tools"); tools.IsArray() {
		tools.ForEach(func(_, t gjson.Result) bool {
			if t.Get("type").Str == "function" {
				n += tokensPerMessage + e.countString(t.Get("name")) + e.countString(t.Get("description"))
				if p := t.Get("parameters"); p.Exists() {
					n += e.Count(p.Raw)
				}
			}
			return true
		})
	}
	return n, nil
}

// countInputItem counts one input item: a message (role and content), a
// function call (name and arguments), a function call's output, or, for
// other items, the overhead only.
func (e *Encoder) countInputItem(it gjson.Result) int {
	n := tokensPerMessage
	if !it.IsObject() {
		return n
	}
	switch it.Get("type").Str {
	case "", "message":
		n += e.countString(it.Get("role"))
		c := it.Get("content")
		if c.Type == gjson.String {
			return n + e.Count(c.Str)
		}
		c.ForEach(func(_, part gjson.Result) bool {
			switch part.Get("type").Str {
			case "input_text", "output_text", "text":
				n += e.countString(part.Get("text"))
			case "refusal":
				n += e.countString(part.Get("refusal"))
			case "input_image":
				if part.Get("detail").Str == "low" {
					n += imageLowDetail
				} else {
					n += imageDefaultTokens
				}
			}
			return true
		})
	case "function_call":
		n += e.countString(it.Get("name")) + e.countString(it.Get("arguments"))
	case "function_call_output":
		out := it.Get("output")
		if out.Type == gjson.String {
			n += e.Count(out.Str)
		} else if out.Exists() {
			n += e.Count(out.Raw)
		}
	}
	return n
}
