package simulator

import (
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/tidwall/gjson"

	"github.com/groundgate/groundgate/tokens"
)

// Chat completions: request parsing and validation, the deterministic
// answer, and the non-streamed response.

const (
	opChat       = "ChatCompletions_Create"
	opEmbeddings = "Embeddings_Create"

	// maxChoices caps n: larger values are accepted (up to OpenAI's 128)
	// but produce maxChoices choices.
	maxChoices = 8
	// quoteLimit is how many characters of the last user message the
	// default answer quotes.
	quoteLimit = 200
)

// chatRequest is what the simulator keeps of a chat completions request.
type chatRequest struct {
	dep          *deployment
	apiVersion   string
	stream       bool
	includeUsage bool
	n            int
	maxTokens    int          // 0 = no limit
	stop         gjson.Result // string or array of strings; may not exist
	dir          directives
	promptTokens int

	call     *toolCall // the answer is this function call
	logprobs bool      // logprobs were asked for

	// preset replaces the default answer (JSON for a response format, a
	// tool result's summary); directives still take precedence.
	preset string

	answer           string
	finish           string // stop | length | content_filter
	completionTokens int    // per choice
	filteredAt       int    // byte offset of a blocked output term in answer, or -1
}

func (h *Simulator) serveChat(w http.ResponseWriter, r *http.Request, dep *deployment, apiVersion string, rng *rand.PCG) error {
	body, root, ok := h.readObject(w, r)
	if !ok {
		return nil
	}
	if dep = h.textDeployment(w, root, dep, "chatCompletion"); dep == nil {
		return nil
	}

	req := chatRequest{dep: dep, apiVersion: apiVersion, n: 1, filteredAt: -1}
	msgs, lastUser, rerr := h.parseChat(root, &req)
	if rerr != nil {
		if rerr.code == "content_filter" {
			writeJSON(w, http.StatusBadRequest, promptFilteredBody(h.FilterCategory))
			return nil
		}
		writeJSON(w, rerr.status, rerr.body())
		return nil
	}
	pt, err := dep.enc.CountChatValid(body) // parseJSONObject validated it
	if err != nil {
		rerr = badRequest("messages", "", "Invalid 'messages': "+err.Error())
		writeJSON(w, rerr.status, rerr.body())
		return nil
	}
	req.promptTokens = pt
	h.chatTools(root, &req, msgs, lastUser, rng)
	h.buildAnswer(&req, msgs, lastUser)
	if req.call != nil {
		req.answer, req.finish, req.filteredAt = "", "tool_calls", -1
		req.completionTokens = dep.enc.Count(req.call.name + req.call.arguments)
	}
	faults := h.drawFaults(rng)

	adm := dep.window.admit(h.now(), int64(req.promptTokens+req.completionTokens*req.n), h.RequestsPerMinute, h.TokensPerMinute)
	setRemaining(w.Header(), adm)
	if !adm.ok {
		writeRateLimited(w, opChat, apiVersion, adm.kind, adm.retryAfter)
		return nil
	}

	ctx := r.Context()
	if !sleepCtx(ctx, time.Duration(h.Latency)+time.Duration(req.dir.delayMs)*time.Millisecond) {
		return nil
	}
	switch {
	case req.dir.status != 0:
		h.writeInjectedError(w, req.dir.status, opChat, apiVersion, req.dir.retryAfterMs)
		return nil
	case faults.status != 0:
		h.writeInjectedError(w, faults.status, opChat, apiVersion, req.dir.retryAfterMs)
		return nil
	}

	id := newChatID(rng)
	created := h.now().Unix()
	if req.stream {
		dropAt := -1
		if req.dir.dropAfter >= 0 {
			dropAt = req.dir.dropAfter
		} else if faults.drop {
			dropAt = int(rng.Uint64() % uint64(countPieces(req.answer, req.filteredAt)*req.n+1))
		}
		return h.streamChat(w, r, &req, id, created, dropAt)
	}
	h.writeCompletion(w, &req, id, created)
	return nil
}

// readObject reads the request body and parses it as a JSON object;
// when it cannot, it answers the client and returns false.
func (h *Simulator) readObject(w http.ResponseWriter, r *http.Request) ([]byte, fields, bool) {
	body, rerr := h.readBody(w, r)
	if rerr == nil {
		var root fields
		if root, rerr = parseJSONObject(body); rerr == nil {
			return body, root, true
		}
	}
	writeJSON(w, rerr.status, rerr.body())
	return nil, fields{}, false
}

// readBody reads the request body up to MaxRequestBodySize.
func (h *Simulator) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *requestError) {
	limit := h.MaxRequestBodySize
	body := http.MaxBytesReader(w, r.Body, limit)
	var buf []byte
	var err error
	if n := r.ContentLength; n > 0 && n <= limit {
		buf = make([]byte, n)
		_, err = io.ReadFull(body, buf)
	} else {
		buf, err = io.ReadAll(body)
	}
	if err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			return nil, &requestError{status: http.StatusRequestEntityTooLarge, code: "request_too_large",
				message: "Request body too large: the maximum is " + strconv.FormatInt(limit, 10) + " bytes."}
		}
		return nil, badRequest("", "", "Could not read the request body: "+err.Error())
	}
	return buf, nil
}

// parseJSONObject validates the body and returns its root object. The
// returned Result views body without copying; body must not change.
func parseJSONObject(body []byte) (fields, *requestError) {
	if len(body) == 0 {
		return fields{}, badRequest("", "", msgInvalidJSON)
	}
	s := unsafe.String(unsafe.SliceData(body), len(body))
	if !gjson.Valid(s) {
		return fields{}, badRequest("", "", msgInvalidJSON)
	}
	root := gjson.Parse(s)
	if !root.IsObject() {
		return fields{}, badRequest("", "invalid_type", "Invalid type for request body: expected an object, but got "+typeName(root)+" instead.")
	}
	return indexFields(root), nil
}

// deploymentFromBody resolves the body's "model" on the OpenAI-shaped
// paths. A nil deployment without error means "not found".
// textDeployment is the chat deployment a text request runs on: dep
// (from an Azure path) or, on OpenAI-shaped paths, the body's model. It
// answers the client itself and returns nil for an unknown model or an
// embeddings deployment (Azure's OperationNotSupported for op).
func (h *Simulator) textDeployment(w http.ResponseWriter, root fields, dep *deployment, op string) *deployment {
	if dep == nil {
		var rerr *requestError
		if dep, rerr = h.deploymentFromBody(root); rerr != nil {
			writeJSON(w, rerr.status, rerr.body())
			return nil
		}
		if dep == nil {
			writeJSON(w, http.StatusNotFound, bodyDeploymentNotFound)
			return nil
		}
	}
	if dep.embeddings {
		writeJSON(w, http.StatusBadRequest, operationNotSupportedBody(op, dep.model))
		return nil
	}
	return dep
}

func (h *Simulator) deploymentFromBody(root fields) (*deployment, *requestError) {
	m := root.Get("model")
	if !m.Exists() || m.Type == gjson.Null {
		return nil, badRequest("model", "missing_required_parameter", "Missing required parameter: 'model'.")
	}
	if m.Type != gjson.String {
		return nil, invalidType("model", "a string", m)
	}
	return h.lookup(m.Str), nil
}

func typeName(v gjson.Result) string {
	switch v.Type {
	case gjson.String:
		return "a string"
	case gjson.Number:
		if strings.ContainsAny(v.Raw, ".eE") {
			return "a decimal"
		}
		return "an integer"
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

func invalidType(param, want string, got gjson.Result) *requestError {
	return badRequest(param, "invalid_type", "Invalid type for '"+param+"': expected "+want+", but got "+typeName(got)+" instead.")
}

// intParam reads an optional integer parameter within [lo, hi].
func intParam(root fields, name string, lo, hi int) (int, bool, *requestError) {
	v := root.Get(name)
	if !v.Exists() || v.Type == gjson.Null {
		return 0, false, nil
	}
	if v.Type != gjson.Number || v.Num != math.Trunc(v.Num) || math.IsInf(v.Num, 0) {
		return 0, false, invalidType(name, "an integer", v)
	}
	if v.Num < float64(lo) {
		return 0, false, badRequest(name, "integer_below_min_value", "Invalid '"+name+
			"': integer below minimum value. Expected a value >= "+strconv.Itoa(lo)+", but got "+v.Raw+" instead.")
	}
	if v.Num > float64(hi) {
		return 0, false, badRequest(name, "integer_above_max_value", "Invalid '"+name+
			"': integer above maximum value. Expected a value <= "+strconv.Itoa(hi)+", but got "+v.Raw+" instead.")
	}
	return int(v.Num), true, nil
}

var validRoles = [...]string{"system", "assistant", "user", "function", "tool", "developer"}

// parseChat validates the parameters the simulator honours and the
// messages, applies the prompt content filter, and returns the messages
// array and the text of the last user message.
func (h *Simulator) parseChat(root fields, req *chatRequest) (gjson.Result, string, *requestError) {
	var none gjson.Result
	if v := root.Get("stream"); v.Exists() && v.Type != gjson.Null {
		if v.Type != gjson.True && v.Type != gjson.False {
			return none, "", invalidType("stream", "a boolean", v)
		}
		req.stream = v.Type == gjson.True
	}
	if so := root.Get("stream_options"); so.Exists() && so.Type != gjson.Null {
		if !req.stream {
			return none, "", badRequest("stream_options", "invalid_value", "The 'stream_options' parameter is only allowed when 'stream' is enabled.")
		}
		if !so.IsObject() {
			return none, "", invalidType("stream_options", "an object", so)
		}
		iu := so.Get("include_usage")
		if iu.Exists() && iu.Type != gjson.Null && iu.Type != gjson.True && iu.Type != gjson.False {
			return none, "", invalidType("stream_options.include_usage", "a boolean", iu)
		}
		req.includeUsage = iu.Type == gjson.True
	}
	n, ok, rerr := intParam(root, "n", 1, 128)
	if rerr != nil {
		return none, "", rerr
	}
	if ok {
		req.n = min(n, maxChoices)
	}
	for _, name := range [...]string{"max_completion_tokens", "max_tokens"} {
		mt, ok, rerr := intParam(root, name, 1, math.MaxInt32)
		if rerr != nil {
			return none, "", rerr
		}
		if ok && req.maxTokens == 0 {
			req.maxTokens = mt
		}
	}
	if v := root.Get("stop"); v.Exists() && v.Type != gjson.Null {
		req.stop = v
		switch {
		case v.Type == gjson.String:
		case v.IsArray():
			arr := v.Array()
			if len(arr) > 4 {
				return none, "", badRequest("stop", "array_above_max_length", "Invalid 'stop': array too long. Expected an array with maximum length 4, but got an array with length "+strconv.Itoa(len(arr))+" instead.")
			}
			for i, s := range arr {
				if s.Type != gjson.String {
					return none, "", invalidType("stop["+strconv.Itoa(i)+"]", "a string", s)
				}
			}
		default:
			return none, "", invalidType("stop", "a string or array of strings", v)
		}
	}

	msgs := root.Get("messages")
	if !msgs.Exists() || msgs.Type == gjson.Null {
		return none, "", badRequest("messages", "missing_required_parameter", "Missing required parameter: 'messages'.")
	}
	if !msgs.IsArray() {
		return none, "", invalidType("messages", "an array of objects", msgs)
	}
	var lastUser gjson.Result
	count := 0
	var merr *requestError
	msgs.ForEach(func(_, m gjson.Result) bool {
		param := "messages[" + strconv.Itoa(count) + "]"
		count++
		if !m.IsObject() {
			merr = invalidType(param, "an object", m)
			return false
		}
		role := m.Get("role")
		if !role.Exists() || role.Type == gjson.Null {
			merr = badRequest(param+".role", "missing_required_parameter", "Missing required parameter: '"+param+".role'.")
			return false
		}
		if role.Type != gjson.String {
			merr = invalidType(param+".role", "a string", role)
			return false
		}
		known := false
		for _, r := range validRoles {
			known = known || r == role.Str
		}
		if !known {
			merr = badRequest(param+".role", "invalid_value", "Invalid value: '"+truncateRunes(role.Str, 64)+
				"'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'.")
			return false
		}
		content := m.Get("content")
		switch {
		case !content.Exists() || content.Type == gjson.Null:
			if role.Str == "user" || role.Str == "system" || role.Str == "developer" {
				merr = badRequest(param+".content", "missing_required_parameter", "Missing required parameter: '"+param+".content'.")
				return false
			}
		case content.Type == gjson.String:
		case content.IsArray():
			var perr *requestError
			i := 0
			content.ForEach(func(_, part gjson.Result) bool {
				if !part.IsObject() {
					perr = invalidType(param+".content["+strconv.Itoa(i)+"]", "an object", part)
					return false
				}
				i++
				return true
			})
			if perr != nil {
				merr = perr
				return false
			}
		default:
			merr = invalidType(param+".content", "one of a string or array of objects", content)
			return false
		}
		if len(h.blocked) > 0 && firstBlocked(messageText(content), h.blocked) >= 0 {
			merr = &requestError{status: http.StatusBadRequest, code: "content_filter"}
			return false
		}
		if role.Str == "user" {
			lastUser = content
		}
		return true
	})
	if merr != nil {
		return none, "", merr
	}
	if count == 0 {
		return none, "", badRequest("messages", "empty_array", "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.")
	}
	last := messageText(lastUser)
	dir, rerr := parseDirectives(last)
	if rerr != nil {
		return none, "", rerr
	}
	req.dir = dir
	return msgs, last, nil
}

// messageText returns a message content's text: the string itself, or the
// "text" of its text parts joined by newlines.
func messageText(content gjson.Result) string {
	if content.Type == gjson.String {
		return content.Str
	}
	if !content.IsArray() {
		return ""
	}
	var parts []string
	content.ForEach(func(_, p gjson.Result) bool {
		if t := p.Get("text"); t.Type == gjson.String {
			parts = append(parts, t.Str)
		}
		return true
	})
	return strings.Join(parts, "\n")
}

// buildAnswer computes the answer text, finish_reason and completion
// tokens: a pure function of the request.
func (h *Simulator) buildAnswer(req *chatRequest, msgs gjson.Result, lastUser string) {
	enc := req.dep.enc
	known := -1 // token count of answer when already known
	var answer string
	switch {
	case req.dir.echo:
		answer = msgs.Raw
	case req.dir.echoSystem:
		var sys []string
		msgs.ForEach(func(_, m gjson.Result) bool {
			if role := m.Get("role").Str; role == "system" || role == "developer" {
				sys = append(sys, messageText(m.Get("content")))
			}
			return true
		})
		answer = strings.Join(sys, "\n")
	case req.dir.tokens >= 0:
		answer, known = tokenAnswer(enc, req.dir.tokens)
	case req.preset != "":
		answer = req.preset
	default:
		answer = `Simulated answer to: "` + truncateRunes(stripDirectives(lastUser), quoteLimit) + `"`
	}

	req.finish = "stop"
	if cut := firstStop(answer, req.stop); cut >= 0 {
		answer, known = answer[:cut], -1
	}
	if known < 0 {
		known = enc.Count(answer)
	}
	if req.maxTokens > 0 && known > req.maxTokens {
		answer = truncateTokens(enc, answer, req.maxTokens)
		known = enc.Count(answer)
		req.finish = "length"
	}
	req.answer, req.completionTokens = answer, known
	if len(h.blockedOutput) > 0 {
		if i := firstBlocked(answer, h.blockedOutput); i >= 0 {
			req.filteredAt = min(i, len(answer))
			req.finish = "content_filter"
		}
	}
}

// firstStop returns where the answer must be cut for the request's stop
// sequences, or -1.
func firstStop(answer string, stop gjson.Result) int {
	best := -1
	check := func(s string) {
		if s == "" {
			return
		}
		if i := strings.Index(answer, s); i >= 0 && (best < 0 || i < best) {
			best = i
		}
	}
	switch {
	case stop.Type == gjson.String:
		check(stop.Str)
	case stop.IsArray():
		stop.ForEach(func(_, s gjson.Result) bool {
			check(s.Str)
			return true
		})
	}
	return best
}

// tokenWords are single tokens in the cl100k and o200k encodings; an
// answer of N of them (after a leading "The") is N tokens long.
var tokenWords = [...]string{" quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog"}

// tokenAnswer returns a text of exactly n tokens (checked with enc) and
// its token count.
func tokenAnswer(enc *tokens.Encoder, n int) (string, int) {
	if n == 0 {
		return "", 0
	}
	b := make([]byte, 0, n*6)
	b = append(b, "The"...)
	for i := 1; i < n; i++ {
		b = append(b, tokenWords[(i-1)%len(tokenWords)]...)
	}
	s := string(b)
	c := enc.Count(s)
	// The words are single tokens in every encoding we map; should one
	// not be, adjust word by word (bounded).
	for i := 0; c != n && i < 64; i++ {
		if c > n {
			if j := strings.LastIndexByte(s, ' '); j > 0 {
				s = s[:j]
			}
		} else {
			s += " dog"
		}
		c = enc.Count(s)
	}
	return s, c
}

// truncateTokens returns the longest prefix of s (cut at a rune boundary)
// that counts at most limit tokens.
func truncateTokens(enc *tokens.Encoder, s string, limit int) string {
	lo, hi := 0, len(s) // invariant: Count(s[:lo]) <= limit
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		for mid > lo && !utf8.RuneStart(s[mid]) {
			mid--
		}
		if mid == lo {
			// no rune boundary strictly between lo and hi except lo
			mid = lo + 1
			for mid < hi && !utf8.RuneStart(s[mid]) {
				mid++
			}
			if mid >= hi {
				break
			}
		}
		if enc.Count(s[:mid]) <= limit {
			lo = mid
		} else {
			hi = mid
		}
	}
	return s[:lo]
}

// truncateRunes returns the first n runes of s.
func truncateRunes(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}

// bufPool recycles response buffers.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > 256<<10 {
		return
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

// writeCompletion writes the non-streamed chat.completion.
func (h *Simulator) writeCompletion(w http.ResponseWriter, req *chatRequest, id string, created int64) {
	bp := getBuf()
	b := *bp
	dep := req.dep
	filtered := req.filteredAt >= 0
	b = append(b, `{"choices":[`...)
	var contentJSON []byte
	for i := 0; i < req.n; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"content_filter_results":`...)
		if filtered {
			b = appendChoiceFilterResults(b, h.FilterCategory)
		} else {
			b = append(b, choiceFilterResultsSafe...)
		}
		b = append(b, `,"finish_reason":"`...)
		b = append(b, req.finish...)
		b = append(b, `","index":`...)
		b = appendInt(b, int64(i))
		if filtered {
			b = append(b, `,"logprobs":null,"message":{"role":"assistant"}}`...)
			continue
		}
		if req.logprobs {
			b = append(b, `,"logprobs":{"content":`...)
			b = appendPieceLogprobs(b, req.answer)
			b = append(b, `,"refusal":null}`...)
		} else {
			b = append(b, `,"logprobs":null`...)
		}
		if req.call != nil {
			b = append(b, `,"message":{"annotations":[],"content":null,"refusal":null,"role":"assistant","tool_calls":[`...)
			b = appendToolCall(b, req.call)
			b = append(b, "]}}"...)
			continue
		}
		b = append(b, `,"message":{"annotations":[],"content":`...)
		if contentJSON == nil {
			start := len(b)
			b = appendJSONString(b, req.answer)
			contentJSON = b[start:len(b):len(b)]
		} else {
			b = append(b, contentJSON...)
		}
		b = append(b, `,"refusal":null,"role":"assistant"}}`...)
	}
	b = append(b, `],"created":`...)
	b = appendInt(b, created)
	b = append(b, `,"id":"`...)
	b = append(b, id...)
	b = append(b, `","model":`...)
	b = appendJSONString(b, dep.model)
	b = append(b, `,"object":"chat.completion","prompt_filter_results":`...)
	b = append(b, promptFilterResultsSafe...)
	b = append(b, `,"system_fingerprint":"`...)
	b = append(b, dep.fingerprint...)
	b = append(b, `","usage":`...)
	b = appendUsage(b, req.promptTokens, req.completionTokens*req.n)
	b = append(b, '}')
	writeJSON(w, http.StatusOK, b)
	*bp = b
	putBuf(bp)
}

// appendUsage appends the usage object, with the detail objects recent
// Azure API versions include.
func appendUsage(b []byte, prompt, completion int) []byte {
	b = append(b, `{"completion_tokens":`...)
	b = appendInt(b, int64(completion))
	b = append(b, `,"completion_tokens_details":{"accepted_prediction_tokens":0,"audio_tokens":0,"reasoning_tokens":0,"rejected_prediction_tokens":0},"prompt_tokens":`...)
	b = appendInt(b, int64(prompt))
	b = append(b, `,"prompt_tokens_details":{"audio_tokens":0,"cached_tokens":0},"total_tokens":`...)
	b = appendInt(b, int64(prompt+completion))
	return append(b, '}')
}

// chatTools reads what shapes a chat answer beyond its text: a function
// call when tools are sent (the first function tool, or the one
// tool_choice names, unless the last message is already a tool's result
// or tool_choice is "none"), JSON for response_format, logprobs.
// Directives (echo, tokens=N) keep their text answer.
func (h *Simulator) chatTools(root fields, req *chatRequest, msgs gjson.Result, lastUser string, rng *rand.PCG) {
	req.logprobs = root.Get("logprobs").Type == gjson.True
	var last gjson.Result // the last message (@reverse would copy them all)
	msgs.ForEach(func(_, m gjson.Result) bool { last = m; return true })
	lastIsTool := last.Get("role").Str == "tool"
	directed := req.dir.echo || req.dir.echoSystem || req.dir.tokens >= 0
	if t := chooseTool(root.Get("tools"), root.Get("tool_choice"), lastIsTool); t != nil && !directed {
		name, args := toolArguments(*t)
		req.call = &toolCall{name: name, arguments: args, callID: newCallID(rng)}
		return
	}
	quote := `Simulated answer to: "` + truncateRunes(stripDirectives(lastUser), quoteLimit) + `"`
	if f := formatAnswer(root.Get("response_format"), quote); f != "" {
		req.preset = f
	} else if lastIsTool {
		req.preset = "Simulated answer using the tool result: " + truncateRunes(messageText(last.Get("content")), quoteLimit)
	}
}

// appendToolCall appends a chat tool call.
func appendToolCall(b []byte, c *toolCall) []byte {
	b = append(b, `{"id":"`...)
	b = append(b, c.callID...)
	b = append(b, `","type":"function","function":{"name":`...)
	b = appendJSONString(b, c.name)
	b = append(b, `,"arguments":`...)
	b = appendJSONString(b, c.arguments)
	return append(b, "}}"...)
}

// appendPieceLogprobs appends a logprobs content array: one entry per
// token-sized piece of text.
func appendPieceLogprobs(b []byte, text string) []byte {
	b = append(b, '[')
	for pos, k := 0, 0; pos < len(text); k++ {
		next := nextPiece(text, pos)
		if k > 0 {
			b = append(b, ',')
		}
		b = appendLogprob(b, text[pos:next])
		pos = next
	}
	return append(b, ']')
}
