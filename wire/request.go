package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tidwall/gjson"
)

// Chat is what the gateway needs from a chat completions request. Values
// point into the request body, which must outlive them.
type Chat struct {
	// Model is the body's "model" ("" when absent, as on Azure's
	// deployment path).
	Model string
	// Stream is true when the client asked for server-sent events.
	Stream bool
	// IncludeUsage mirrors stream_options.include_usage as the client sent it.
	IncludeUsage bool
	// Messages is the messages array.
	Messages gjson.Result
	// MaxTokens is max_completion_tokens, else max_tokens (0 when absent).
	MaxTokens int64
	// User is the optional end-user id.
	User string
	// ResponseFormat is response_format.type ("" when absent).
	ResponseFormat string
}

// Embeddings is what the gateway needs from an embeddings request.
type Embeddings struct {
	Model string
	Input gjson.Result
}

// ParseChat validates a chat completions body and extracts its fields.
// Errors are *Error values ready to send (400).
func ParseChat(body []byte) (Chat, error) {
	root, err := parseObject(body)
	if err != nil {
		return Chat{}, err
	}
	var c Chat
	var bad *Error
	root.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "model":
			if v.Type != gjson.String {
				bad = typeError("model", "a string", v)
				return false
			}
			c.Model = v.Str
		case "stream":
			if v.Type != gjson.True && v.Type != gjson.False && v.Type != gjson.Null {
				bad = typeError("stream", "a boolean", v)
				return false
			}
			c.Stream = v.Type == gjson.True
		case "stream_options":
			if v.Type == gjson.Null {
				return true
			}
			if !v.IsObject() {
				bad = typeError("stream_options", "an object", v)
				return false
			}
			iu := v.Get("include_usage")
			if iu.Exists() && iu.Type != gjson.True && iu.Type != gjson.False && iu.Type != gjson.Null {
				bad = typeError("stream_options.include_usage", "a boolean", iu)
				return false
			}
			c.IncludeUsage = iu.Type == gjson.True
		case "messages":
			c.Messages = v
		case "max_tokens", "max_completion_tokens":
			if v.Type == gjson.Null {
				return true
			}
			if v.Type != gjson.Number || v.Num < 1 || v.Num != float64(int64(v.Num)) {
				bad = typeError(k.Str, "a positive integer", v)
				return false
			}
			if k.Str == "max_completion_tokens" || c.MaxTokens == 0 {
				c.MaxTokens = int64(v.Num)
			}
		case "user":
			if v.Type == gjson.String {
				c.User = v.Str
			}
		case "response_format":
			c.ResponseFormat = v.Get("type").Str
		}
		return true
	})
	if bad != nil {
		return Chat{}, bad
	}
	if err := checkMessages(c.Messages); err != nil {
		return Chat{}, err
	}
	return c, nil
}

// checkMessages requires a non-empty array of objects with a string role.
// Content shapes vary by role and API version, so they pass through.
func checkMessages(m gjson.Result) error {
	if !m.Exists() {
		return BadRequest("messages", "missing_required_parameter", "Missing required parameter: 'messages'.")
	}
	if !m.IsArray() {
		return typeError("messages", "an array", m)
	}
	n := 0
	var bad error
	m.ForEach(func(_, msg gjson.Result) bool {
		param := fmt.Sprintf("messages[%d]", n)
		n++
		if !msg.IsObject() {
			bad = typeError(param, "an object", msg)
			return false
		}
		role := msg.Get("role")
		if role.Type != gjson.String {
			bad = BadRequest(param+".role", "invalid_type", fmt.Sprintf("Invalid value for '%s.role': expected a string.", param))
			return false
		}
		return true
	})
	if bad != nil {
		return bad
	}
	if n == 0 {
		return BadRequest("messages", "empty_array", "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.")
	}
	return nil
}

// ParseEmbeddings validates an embeddings body.
func ParseEmbeddings(body []byte) (Embeddings, error) {
	root, err := parseObject(body)
	if err != nil {
		return Embeddings{}, err
	}
	e := Embeddings{Input: root.Get("input")}
	if m := root.Get("model"); m.Exists() {
		if m.Type != gjson.String {
			return Embeddings{}, typeError("model", "a string", m)
		}
		e.Model = m.Str
	}
	switch {
	case !e.Input.Exists():
		return Embeddings{}, BadRequest("input", "missing_required_parameter", "Missing required parameter: 'input'.")
	case e.Input.Type != gjson.String && !e.Input.IsArray():
		return Embeddings{}, typeError("input", "a string or an array", e.Input)
	}
	return e, nil
}

// parseObject checks that body is one JSON object, not too deep, without
// duplicate members (Check: one pass); only on a syntax error do we pay
// for encoding/json to find the position.
func parseObject(body []byte) (gjson.Result, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return gjson.Result{}, BadRequest("", "invalid_json", "We could not parse the JSON body of your request: the body is empty. Send a JSON object.")
	}
	if err := Check(body); err != nil {
		return gjson.Result{}, err
	}
	root := gjson.ParseBytes(body)
	if !root.IsObject() {
		return gjson.Result{}, BadRequest("", "invalid_json", "We could not parse the JSON body of your request: expected a JSON object at the top level.")
	}
	return root, nil
}

func syntaxError(body []byte) *Error {
	var raw json.RawMessage
	err := json.Unmarshal(body, &raw)
	var se *json.SyntaxError
	where := ""
	if errors.As(err, &se) && len(body) > 0 {
		line, col := position(body, se.Offset)
		where = fmt.Sprintf(" at line %d, column %d (byte %d): %s", line, col, se.Offset, se.Error())
	} else if err != nil {
		where = ": " + err.Error()
	}
	return BadRequest("", "invalid_json", "We could not parse the JSON body of your request"+where+".")
}

// position turns encoding/json's offset (bytes read up to and including
// the offending byte) into the 1-based line and column of that byte.
func position(body []byte, off int64) (line, col int) {
	off = min(max(off, 1), int64(len(body)))
	head := body[:off-1]
	line = bytes.Count(head, []byte{'\n'}) + 1
	col = len(head) - bytes.LastIndexByte(head, '\n')
	return line, col
}

func typeError(param, want string, got gjson.Result) *Error {
	return BadRequest(param, "invalid_type", fmt.Sprintf("Invalid type for '%s': expected %s, but got %s instead.", param, want, kind(got)))
}

func kind(v gjson.Result) string {
	switch v.Type {
	case gjson.String:
		return "a string"
	case gjson.Number:
		return "a number"
	case gjson.True, gjson.False:
		return "a boolean"
	case gjson.Null:
		return "null"
	}
	if v.IsArray() {
		return "an array"
	}
	return "an object"
}
