package simulator

import (
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"

	"github.com/tidwall/gjson"
)

// Responses requests: validation, the conversation, and the answer.

var validInputRoles = [...]string{"user", "assistant", "system", "developer"}

// parseResponses validates the request, normalises its input items
// (type and id on each, string contents as parts) and returns the last
// user text and the conversation as chat messages, for the answer.
func (h *Simulator) parseResponses(root fields, req *responsesRequest, rng *rand.PCG) (string, gjson.Result, *requestError) {
	var none gjson.Result
	for _, name := range [...]string{"stream", "store", "background"} {
		v := root.Get(name)
		if !v.Exists() || v.Type == gjson.Null {
			continue
		}
		if v.Type != gjson.True && v.Type != gjson.False {
			return "", none, invalidType(name, "a boolean", v)
		}
		switch name {
		case "stream":
			req.stream = v.Type == gjson.True
		case "store":
			req.store = v.Type == gjson.True
		default:
			req.background = v.Type == gjson.True
		}
	}
	mt, ok, rerr := intParam(root, "max_output_tokens", 16, math.MaxInt32)
	if rerr != nil {
		return "", none, rerr
	}
	if ok {
		req.maxTokens = mt
	}
	if in := root.Get("instructions"); in.Exists() && in.Type != gjson.Null {
		if in.Type != gjson.String {
			return "", none, invalidType("instructions", "a string", in)
		}
		req.instructions = in
	}
	if p := root.Get("previous_response_id"); p.Exists() && p.Type != gjson.Null {
		if p.Type != gjson.String {
			return "", none, invalidType("previous_response_id", "a string", p)
		}
		if req.previous = h.responses.get(p.Str); req.previous == nil {
			return "", none, &requestError{status: http.StatusNotFound, param: "previous_response_id", code: "previous_response_not_found",
				message: "Previous response with id '" + p.Str + "' not found."}
		}
	}
	req.tools, req.toolChoice, req.metadata = root.Get("tools"), root.Get("tool_choice"), root.Get("metadata")
	if req.tools.Exists() && req.tools.Type != gjson.Null && !req.tools.IsArray() {
		return "", none, invalidType("tools", "an array", req.tools)
	}
	req.format = root.Get("text.format")
	root.Get("include").ForEach(func(_, v gjson.Result) bool {
		req.logprobs = req.logprobs || v.Str == "message.output_text.logprobs"
		return true
	})
	if root.Get("top_logprobs").Int() > 0 {
		req.logprobs = true
	}

	// Normalise the input items.
	in := root.Get("input")
	items := []byte{'['}
	add := func(it []byte) {
		if len(items) > 1 {
			items = append(items, ',')
		}
		items = append(items, it...)
	}
	switch {
	case !in.Exists() || in.Type == gjson.Null:
		if req.previous == nil {
			return "", none, badRequest("input", "missing_required_parameter", "Missing required parameter: 'input'.")
		}
	case in.Type == gjson.String:
		add(messageItem(newPrefixedID(rng, "msg_"), "user", in))
	case in.IsArray():
		var ierr *requestError
		i := -1
		in.ForEach(func(_, it gjson.Result) bool {
			i++
			param := "input[" + strconv.Itoa(i) + "]"
			if !it.IsObject() {
				ierr = invalidType(param, "an object", it)
				return false
			}
			switch typ := it.Get("type").Str; typ {
			case "", "message":
				role := it.Get("role")
				known := false
				for _, r := range validInputRoles {
					known = known || r == role.Str
				}
				if role.Type != gjson.String || !known {
					ierr = badRequest(param+".role", "invalid_value", "Invalid value for '"+param+".role': expected one of 'user', 'assistant', 'system' or 'developer'.")
					return false
				}
				c := it.Get("content")
				if c.Type != gjson.String && !c.IsArray() {
					ierr = invalidType(param+".content", "a string or an array", c)
					return false
				}
				if len(h.blocked) > 0 && role.Str != "assistant" && firstBlocked(partsText(c), h.blocked) >= 0 {
					ierr = &requestError{status: http.StatusBadRequest, code: "content_filter"}
					return false
				}
				id := it.Get("id").Str
				if id == "" {
					id = newPrefixedID(rng, "msg_")
				}
				add(messageItem(id, role.Str, c))
			case "function_call_output":
				if it.Get("call_id").Type != gjson.String {
					ierr = badRequest(param+".call_id", "missing_required_parameter", "Missing required parameter: '"+param+".call_id'.")
					return false
				}
				add(withID(it, rng, "fco_"))
			case "function_call":
				add(withID(it, rng, "fc_"))
			default:
				add(withID(it, rng, "item_"))
			}
			return true
		})
		if ierr != nil {
			return "", none, ierr
		}
	default:
		return "", none, invalidType("input", "a string or an array", in)
	}
	req.input = append(items, ']')

	// The conversation as chat messages: instructions, history, input.
	msgs := []byte{'['}
	addMsg := func(role, text string) {
		if len(msgs) > 1 {
			msgs = append(msgs, ',')
		}
		msgs = append(msgs, `{"role":`...)
		msgs = appendJSONString(msgs, role)
		msgs = append(msgs, `,"content":`...)
		msgs = appendJSONString(msgs, text)
		msgs = append(msgs, '}')
	}
	if req.instructions.Exists() {
		addMsg("system", req.instructions.Str)
	}
	lastUser := ""
	conv := msgsHistory(req.previous, req.input)
	gjson.ParseBytes(conv).ForEach(func(_, it gjson.Result) bool {
		switch it.Get("type").Str {
		case "message":
			text := partsText(it.Get("content"))
			addMsg(it.Get("role").Str, text)
			if it.Get("role").Str == "user" {
				lastUser = text
			}
		case "function_call_output":
			addMsg("tool", it.Get("output").String())
		}
		return true
	})
	msgs = append(msgs, ']')
	dir, rerr := parseDirectives(lastUser)
	if rerr != nil {
		return "", none, rerr
	}
	req.dir = dir
	pt, err := req.dep.enc.CountResponsesValid([]byte(root.Raw))
	if err == nil {
		req.promptTokens = pt
	}
	if req.previous != nil {
		if n, err := req.dep.enc.CountResponsesValid(append(append([]byte(`{"input":`), req.previous.history...), '}')); err == nil {
			req.promptTokens += n
		}
	}
	return lastUser, gjson.ParseBytes(msgs), nil
}

// messageItem is an input message item with its content as parts.
func messageItem(id, role string, content gjson.Result) []byte {
	b := []byte(`{"id":`)
	b = appendJSONString(b, id)
	b = append(b, `,"type":"message","role":`...)
	b = appendJSONString(b, role)
	b = append(b, `,"status":"completed","content":`...)
	if content.Type == gjson.String {
		part := "input_text"
		if role == "assistant" {
			part = "output_text"
		}
		b = append(b, `[{"type":"`+part+`","text":`...)
		b = appendJSONString(b, content.Str)
		b = append(b, "}]"...)
	} else {
		b = append(b, content.Raw...)
	}
	return append(b, '}')
}

// withID returns an item with an id (its own, or a new one).
func withID(it gjson.Result, rng *rand.PCG, prefix string) []byte {
	if it.Get("id").Type == gjson.String {
		return []byte(it.Raw)
	}
	b := []byte(`{"id":`)
	b = appendJSONString(b, newPrefixedID(rng, prefix))
	rest := it.Raw[1:]
	for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\n' || rest[0] == '\t' || rest[0] == '\r') {
		rest = rest[1:]
	}
	if rest != "}" {
		b = append(b, ',')
	}
	return append(b, rest...)
}

// partsText is a content's text: the string, or its text parts joined.
func partsText(c gjson.Result) string {
	if c.Type == gjson.String {
		return c.Str
	}
	text := ""
	c.ForEach(func(_, p gjson.Result) bool {
		if t := p.Get("text"); t.Type == gjson.String {
			if text != "" {
				text += "\n"
			}
			text += t.Str
		}
		return true
	})
	return text
}

// chooseTool picks the function tool to call, or nil: the one tool_choice
// names, else the first function tool unless tool_choice is "none" or
// (with "auto") the input already brings a tool's result.
func chooseTool(tools, choice gjson.Result, lastIsToolResult bool) *gjson.Result {
	var pick *gjson.Result
	want := ""
	switch {
	case choice.Str == "none":
		return nil
	case choice.IsObject():
		want = choice.Get("name").Str
		if want == "" {
			want = choice.Get("function.name").Str
		}
	case choice.Str != "required" && lastIsToolResult:
		return nil
	}
	tools.ForEach(func(_, t gjson.Result) bool {
		if t.Get("type").Str != "function" {
			return true
		}
		name := t.Get("name").Str
		if name == "" {
			name = t.Get("function.name").Str
		}
		if want == "" || name == want {
			t := t
			pick = &t
			return false
		}
		return true
	})
	return pick
}

// toolArguments are arguments valid against a function tool's schema.
func toolArguments(tool gjson.Result) (string, string) {
	name, params := tool.Get("name").Str, tool.Get("parameters")
	if f := tool.Get("function"); f.IsObject() { // chat completions' shape
		name, params = f.Get("name").Str, f.Get("parameters")
	}
	if !params.Exists() {
		return name, "{}"
	}
	return name, string(exampleJSON(nil, params))
}

// formatAnswer is the answer a response format asks for ("" for text).
func formatAnswer(format gjson.Result, quote string) string {
	switch format.Get("type").Str {
	case "json_schema":
		schema := format.Get("schema")
		if !schema.Exists() {
			schema = format.Get("json_schema.schema") // chat completions' shape
		}
		return string(exampleJSON(nil, schema))
	case "json_object":
		b := []byte(`{"answer":`)
		b = appendJSONString(b, quote)
		return string(append(b, '}'))
	}
	return ""
}

func (h *Simulator) buildResponseAnswer(req *responsesRequest, msgs gjson.Result, lastUser string, rng *rand.PCG) {
	last := gjson.GetBytes(req.input, "@reverse.0")
	lastIsToolResult := last.Get("type").Str == "function_call_output"
	if t := chooseTool(req.tools, req.toolChoice, lastIsToolResult); t != nil && !req.dir.echo && !req.dir.echoSystem && req.dir.tokens < 0 {
		name, args := toolArguments(*t)
		req.call = &toolCall{name: name, arguments: args, callID: newCallID(rng)}
		req.chat = chatRequest{dep: req.dep, finish: "stop", answer: "", completionTokens: req.dep.enc.Count(name + args), filteredAt: -1}
		return
	}
	req.chat = chatRequest{dep: req.dep, n: 1, maxTokens: req.maxTokens, dir: req.dir, filteredAt: -1}
	quote := `Simulated answer to: "` + truncateRunes(stripDirectives(lastUser), quoteLimit) + `"`
	switch {
	case req.format.Exists():
		req.chat.preset = formatAnswer(req.format, quote)
	case lastIsToolResult:
		req.chat.preset = `Simulated answer using the tool result: ` + truncateRunes(last.Get("output").String(), quoteLimit)
	}
	h.buildAnswer(&req.chat, msgs, lastUser)
	req.filtered = req.chat.filteredAt >= 0
}

// newCallID returns "call_" and 24 alphanumerics.
func newCallID(rng *rand.PCG) string {
	b := []byte("call_")
	for len(b) < 29 {
		v := rng.Uint64()
		for j := 0; j < 8 && len(b) < 29; j++ {
			b = append(b, idAlphabet[v%uint64(len(idAlphabet))])
			v /= uint64(len(idAlphabet))
		}
	}
	return string(b)
}
