package tokens

import (
	"errors"
	"strings"
	"unsafe"

	"github.com/tidwall/gjson"
)

// Chat formatting overhead, from OpenAI's cookbook "How to count tokens with
// tiktoken" (num_tokens_from_messages), which matches usage.prompt_tokens
// for gpt-3.5-turbo, gpt-4, gpt-4o and gpt-4o-mini.
const (
	tokensPerMessage = 3 // <|start|>{role}<|message|>...<|end|>
	tokensPerName    = 1
	replyPriming     = 3 // every reply is primed with <|start|>assistant<|message|>
)

// Image inputs, from OpenAI's vision pricing: "low" detail costs a flat 85
// tokens; otherwise the image is scaled to fit 2048x2048, then its shortest
// side to 768px, and costs 85 + 170 per 512px tile. The request carries no
// image dimensions, so every non-"low" image is counted as a 1024x1024
// image at high detail: 768x768, 4 tiles, 85 + 4*170 = 765 tokens.
const (
	imageLowDetail     = 85
	imageDefaultTokens = 85 + 170*4
)

// num_tokens_for_tools constants shared by both families (func_init is per
// encoding, see Encoder.funcInit).
const (
	propInit = 3
	propKey  = 3
	enumInit = -3
	enumItem = 3
	funcEnd  = 12
)

var (
	errMalformed   = errors.New("tokens: request body is not valid JSON")
	errNotObject   = errors.New("tokens: request body is not a JSON object")
	errNoMessages  = errors.New("tokens: request body has no messages array")
	errBadMessages = errors.New("tokens: messages is not an array")
)

// CountChat counts the prompt tokens of an OpenAI chat completions request
// body (JSON) the way the API reports usage.prompt_tokens:
//
//   - every message costs 3 tokens plus the tokens of its role and content,
//     and a "name" costs 1 more plus its tokens;
//   - content may be a string or an array of parts: text (and refusal) parts
//     count their text; image_url parts count 85 tokens for detail "low" and
//     otherwise 765 (a 1024x1024 image at high detail, since the request
//     does not carry the image size); other parts (audio, files) count 0;
//   - assistant tool_calls (and the legacy function_call) count the function
//     name and arguments of each call; tool messages count like any other;
//   - the reply is primed with 3 tokens;
//   - "tools" (or legacy "functions") add the tokens of the function
//     definitions by the cookbook's num_tokens_for_tools formula.
//
// Other message fields (tool_call_id, refusal: null, audio, ...) are not
// counted. A body that is not a JSON object, or has no messages array, is an
// error.
func (e *Encoder) CountChat(body []byte) (int, error) {
	if !gjson.ValidBytes(body) {
		return 0, errMalformed
	}
	return e.CountChatValid(body)
}

// CountChatValid is CountChat for a body the caller has already checked
// to be valid JSON (a gateway validates each request once, on arrival,
// and only patches it after): it skips the validating pass. On invalid
// JSON it does not fail, it miscounts.
func (e *Encoder) CountChatValid(body []byte) (int, error) {
	// body is only read during this call, and nothing keeps the results.
	root := gjson.Parse(unsafe.String(unsafe.SliceData(body), len(body)))
	if !root.IsObject() {
		return 0, errNotObject
	}
	var messages, tools, functions gjson.Result
	root.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "messages":
			messages = v
		case "tools":
			tools = v
		case "functions":
			functions = v
		}
		return true
	})
	if !messages.Exists() {
		return 0, errNoMessages
	}
	if !messages.IsArray() {
		return 0, errBadMessages
	}
	n := e.CountMessages(messages)
	if tools.IsArray() || functions.IsArray() {
		n += e.countTools(tools, functions)
	}
	return n, nil
}

// MessageTokens is what one more message, with this role and a string
// content, adds to CountChat's total: a gateway that adds a message of
// its own to a counted prompt counts that message alone.
func (e *Encoder) MessageTokens(role, content string) int {
	return tokensPerMessage + e.Count(role) + e.Count(content)
}

// CountMessages counts an already parsed messages array like CountChat,
// without tools, with the reply priming. Elements that are not objects cost
// the per-message overhead only.
func (e *Encoder) CountMessages(messages gjson.Result) int {
	n := replyPriming
	messages.ForEach(func(_, m gjson.Result) bool {
		n += e.countMessage(m)
		return true
	})
	return n
}

func (e *Encoder) countMessage(m gjson.Result) int {
	n := tokensPerMessage
	if !m.IsObject() {
		return n
	}
	// members, not m.ForEach: see rawjson.go.
	members(m.Raw, func(k, raw string) {
		switch k {
		case "role":
			n += e.countValue(raw)
		case "name":
			n += tokensPerName + e.countValue(raw)
		case "content":
			if raw[0] == '"' {
				n += e.countRawString(raw)
			} else {
				n += e.countContent(gjson.Parse(raw))
			}
		case "tool_calls":
			v := gjson.Parse(raw)
			if !v.IsArray() {
				break
			}
			v.ForEach(func(_, call gjson.Result) bool {
				n += e.countFunctionCall(call.Get("function"))
				return true
			})
		case "function_call":
			n += e.countFunctionCall(gjson.Parse(raw))
		}
	})
	return n
}

// countString counts a JSON string value; other scalars count as their
// JSON text, objects and arrays and null as 0.
func (e *Encoder) countString(v gjson.Result) int {
	switch v.Type {
	case gjson.String:
		return e.Count(v.Str)
	case gjson.Number, gjson.True, gjson.False:
		return e.Count(v.Raw)
	}
	return 0
}

func (e *Encoder) countContent(v gjson.Result) int {
	if !v.IsArray() {
		return e.countString(v)
	}
	n := 0
	v.ForEach(func(_, part gjson.Result) bool {
		switch part.Type {
		case gjson.String: // tolerate bare strings in the array
			n += e.Count(part.Str)
			return true
		case gjson.JSON:
		default:
			return true
		}
		switch part.Get("type").Str {
		case "text":
			n += e.countString(part.Get("text"))
		case "refusal":
			n += e.countString(part.Get("refusal"))
		case "image_url":
			n += imageTokens(part.Get("image_url"))
		}
		return true
	})
	return n
}

func imageTokens(img gjson.Result) int {
	if img.IsObject() && strings.EqualFold(img.Get("detail").Str, "low") {
		return imageLowDetail
	}
	return imageDefaultTokens
}

// countFunctionCall counts {"name": ..., "arguments": ...}.
func (e *Encoder) countFunctionCall(f gjson.Result) int {
	if !f.IsObject() {
		return 0
	}
	n := 0
	f.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "name", "arguments":
			n += e.countString(v)
		}
		return true
	})
	return n
}

// countTools implements num_tokens_for_tools from OpenAI's cookbook "How to
// count tokens with tiktoken" (section 7), for "tools" entries
// ({"type":"function","function":{...}}) and legacy "functions" entries
// (the function object itself):
//
//	per function:  func_init + tokens(name + ":" + description)
//	if it has properties:  prop_init, and per property
//	  prop_key + tokens(key + ":" + type + ":" + description)
//	  with an enum:  enum_init + per item (enum_item + tokens(item))
//	once, if there are functions:  func_end
//
// A description loses one trailing "."; missing fields count as "".
// func_init is 7 for o200k_base (gpt-4o family) and 10 for cl100k_base
// (gpt-3.5-turbo, gpt-4); the other constants are the same for both.
// Nested schemas (properties of object-typed properties, items of arrays)
// are not counted, exactly as in the cookbook.
//
// Counts of tool lists of 256 bytes or more are cached by their raw JSON,
// since clients send the same tools with every request.
func (e *Encoder) countTools(tools, functions gjson.Result) int {
	// Cache by the raw JSON of the one list given (both: uncached).
	raw := tools.Raw
	if !tools.IsArray() {
		raw = functions.Raw
	} else if functions.IsArray() {
		raw = ""
	}
	var key cacheKey
	cached := e.cache != nil && len(raw) >= minCachedLen
	if cached {
		key = e.cache.key(raw, tagTools)
		if n, ok := e.cache.get(key); ok {
			return n
		}
	}
	n, funcs := 0, 0
	if tools.IsArray() {
		tools.ForEach(func(_, t gjson.Result) bool {
			if f := t.Get("function"); f.IsObject() {
				n += e.countFunctionDef(f)
				funcs++
			}
			return true
		})
	}
	if functions.IsArray() {
		functions.ForEach(func(_, f gjson.Result) bool {
			if f.IsObject() {
				n += e.countFunctionDef(f)
				funcs++
			}
			return true
		})
	}
	if funcs > 0 {
		n += funcEnd
	}
	if cached {
		e.cache.put(key, n)
	}
	return n
}

func (e *Encoder) countFunctionDef(f gjson.Result) int {
	var buf [256]byte
	n := e.funcInit
	var name, desc, props gjson.Result
	f.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "name":
			name = v
		case "description":
			desc = v
		case "parameters":
			props = v.Get("properties")
		}
		return true
	})
	line := append(buf[:0], name.String()...)
	line = append(line, ':')
	line = append(line, strings.TrimSuffix(desc.String(), ".")...)
	n += e.Count(bytesString(line))

	if !props.IsObject() {
		return n
	}
	first := true
	props.ForEach(func(key, p gjson.Result) bool {
		if first {
			n += propInit
			first = false
		}
		n += propKey
		var typ, pdesc, enum gjson.Result
		p.ForEach(func(k, v gjson.Result) bool {
			switch k.Str {
			case "type":
				typ = v
			case "description":
				pdesc = v
			case "enum":
				enum = v
			}
			return true
		})
		if enum.Exists() {
			n += enumInit
			enum.ForEach(func(_, item gjson.Result) bool {
				n += enumItem + e.Count(item.String())
				return true
			})
		}
		line = append(line[:0], key.String()...)
		line = append(line, ':')
		line = appendPyStr(line, typ)
		line = append(line, ':')
		line = append(line, strings.TrimSuffix(pdesc.String(), ".")...)
		n += e.Count(bytesString(line))
		return true
	})
	return n
}

// appendPyStr appends v the way Python's f"{v}" shows the decoded JSON
// value, for the types a JSON-schema "type" can have: a string as is, a list
// of strings as ['a', 'b'], anything else as its JSON text.
func appendPyStr(b []byte, v gjson.Result) []byte {
	switch {
	case v.Type == gjson.String:
		return append(b, v.Str...)
	case v.IsArray():
		b = append(b, '[')
		i := 0
		v.ForEach(func(_, x gjson.Result) bool {
			if i > 0 {
				b = append(b, ", "...)
			}
			i++
			if x.Type == gjson.String {
				b = append(b, '\'')
				b = append(b, x.Str...)
				b = append(b, '\'')
			} else {
				b = append(b, x.Raw...)
			}
			return true
		})
		return append(b, ']')
	}
	return append(b, v.Raw...)
}

// bytesString views b as a string for the duration of a Count call.
func bytesString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}
