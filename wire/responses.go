package wire

import (
	"strconv"

	"github.com/tidwall/gjson"
)

// Responses is what the gateway needs from a Responses API request
// (POST /v1/responses). Values point into the body, which must outlive
// them.
type Responses struct {
	// Model is the body's "model" ("" when absent).
	Model string
	// Stream is true when the client asked for server-sent events.
	Stream bool
	// Input is the input: a string, an array of items, or absent.
	Input gjson.Result
	// Instructions is the client's system instructions ("" when absent).
	Instructions string
	// PreviousResponseID names a stored response the request continues.
	PreviousResponseID string
	// MaxOutputTokens is max_output_tokens (0 when absent).
	MaxOutputTokens int64
	// NoStore is true when the client sent "store": false.
	NoStore bool
	// Background is true for a response run in the background.
	Background bool
}

// ParseResponses validates a Responses request body and extracts its
// fields. Input items are checked for their shape (objects; a message's
// role and content), not for every item type the API knows, so new item
// types pass through. Errors are *Error values ready to send (400).
func ParseResponses(body []byte) (Responses, error) {
	root, err := parseObject(body)
	if err != nil {
		return Responses{}, err
	}
	var r Responses
	var bad *Error
	root.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "model":
			if v.Type != gjson.String {
				bad = typeError("model", "a string", v)
			}
			r.Model = v.Str
		case "stream", "store", "background":
			if v.Type != gjson.True && v.Type != gjson.False && v.Type != gjson.Null {
				bad = typeError(k.Str, "a boolean", v)
			}
			switch k.Str {
			case "stream":
				r.Stream = v.Type == gjson.True
			case "store":
				r.NoStore = v.Type == gjson.False
			default:
				r.Background = v.Type == gjson.True
			}
		case "input":
			r.Input = v
		case "instructions":
			if v.Type != gjson.String && v.Type != gjson.Null {
				bad = typeError("instructions", "a string", v)
			}
			r.Instructions = v.Str
		case "previous_response_id":
			if v.Type != gjson.String && v.Type != gjson.Null {
				bad = typeError("previous_response_id", "a string", v)
			}
			r.PreviousResponseID = v.Str
		case "max_output_tokens":
			if v.Type == gjson.Null {
				return true
			}
			if v.Type != gjson.Number || v.Num < 1 || v.Num != float64(int64(v.Num)) {
				bad = typeError("max_output_tokens", "a positive integer", v)
			}
			r.MaxOutputTokens = int64(v.Num)
		}
		return bad == nil
	})
	if bad != nil {
		return Responses{}, bad
	}
	if err := checkInput(r.Input); err != nil {
		return Responses{}, err
	}
	return r, nil
}

// checkInput requires a string or an array of item objects; a message
// item (type "message" or none) needs a string role and a content that is
// a string or an array of objects.
func checkInput(in gjson.Result) error {
	switch {
	case !in.Exists(), in.Type == gjson.Null, in.Type == gjson.String:
		return nil
	case !in.IsArray():
		return typeError("input", "a string or an array", in)
	}
	i := -1
	var bad error
	in.ForEach(func(_, it gjson.Result) bool {
		i++
		param := "input[" + strconv.Itoa(i) + "]"
		if !it.IsObject() {
			bad = typeError(param, "an object", it)
			return false
		}
		typ := it.Get("type")
		if typ.Exists() && typ.Type != gjson.String {
			bad = typeError(param+".type", "a string", typ)
			return false
		}
		if typ.Str != "" && typ.Str != "message" {
			return true
		}
		role := it.Get("role")
		if role.Type != gjson.String {
			bad = BadRequest(param+".role", "missing_required_parameter", "Missing required parameter: '"+param+".role'.")
			return false
		}
		c := it.Get("content")
		if c.Type != gjson.String && !c.IsArray() {
			bad = typeError(param+".content", "a string or an array of objects", c)
			return false
		}
		if c.Type == gjson.String {
			return true
		}
		c.ForEach(func(_, part gjson.Result) bool {
			if !part.IsObject() {
				bad = typeError(param+".content", "an array of objects", part)
				return false
			}
			return true
		})
		return bad == nil
	})
	return bad
}
