package simulator

import (
	"net/http"
	"time"
)

// Response objects and the typed events of a streamed response, in the
// service's order: response.created, response.in_progress, then per
// output item output_item.added, (content_part.added, output_text.delta…,
// output_text.done, content_part.done | function_call_arguments.delta…,
// function_call_arguments.done), output_item.done, and response.completed
// (or response.incomplete). Every event has an "event:" line with its type
// and a sequence_number.

// responseState builds one response's objects and events.
type responseState struct {
	req     *responsesRequest
	id      string
	created int64
	itemID  string
	seq     int64
}

// text is the output text as the model produced it (cut where a blocked
// term begins).
func (rs *responseState) text() string {
	if rs.req.filtered {
		return rs.req.chat.answer[:rs.req.chat.filteredAt]
	}
	return rs.req.chat.answer
}

// object is the response object with the given status; "completed"
// becomes "incomplete" when the answer was cut (max_output_tokens,
// content filter). "in_progress" has no output and no usage.
func (rs *responseState) object(status string) []byte {
	req := rs.req
	incomplete := ""
	if status == "completed" {
		switch {
		case req.filtered:
			status, incomplete = "incomplete", "content_filter"
		case req.chat.finish == "length":
			status, incomplete = "incomplete", "max_output_tokens"
		}
	}
	b := make([]byte, 0, 1024+len(req.chat.answer))
	b = append(b, `{"id":"`...)
	b = append(b, rs.id...)
	b = append(b, `","object":"response","created_at":`...)
	b = appendInt(b, rs.created)
	b = append(b, `,"status":"`...)
	b = append(b, status...)
	b = append(b, `","background":`...)
	b = appendBool(b, req.background)
	b = append(b, `,"error":null,"incomplete_details":`...)
	if incomplete != "" {
		b = append(b, `{"reason":"`+incomplete+`"}`...)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"instructions":`...)
	if req.instructions.Exists() {
		b = append(b, req.instructions.Raw...)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"max_output_tokens":`...)
	if req.maxTokens > 0 {
		b = appendInt(b, int64(req.maxTokens))
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"model":`...)
	b = appendJSONString(b, req.dep.model)
	b = append(b, `,"output":[`...)
	if status != "in_progress" && status != "queued" {
		b = rs.appendItem(b, "completed")
	}
	b = append(b, `],"parallel_tool_calls":true,"previous_response_id":`...)
	if req.previous != nil {
		b = appendJSONString(b, req.previous.id)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"reasoning":{"effort":null,"summary":null},"service_tier":"default","store":`...)
	b = appendBool(b, req.store)
	b = append(b, `,"temperature":1.0,"text":{"format":`...)
	if req.format.IsObject() {
		b = append(b, req.format.Raw...)
	} else {
		b = append(b, `{"type":"text"}`...)
	}
	b = append(b, `},"tool_choice":`...)
	if req.toolChoice.Exists() {
		b = append(b, req.toolChoice.Raw...)
	} else {
		b = append(b, `"auto"`...)
	}
	b = append(b, `,"tools":`...)
	if req.tools.IsArray() {
		b = append(b, req.tools.Raw...)
	} else {
		b = append(b, "[]"...)
	}
	b = append(b, `,"top_p":1.0,"truncation":"disabled","usage":`...)
	if status == "in_progress" || status == "queued" {
		b = append(b, "null"...)
	} else {
		b = append(b, `{"input_tokens":`...)
		b = appendInt(b, int64(req.promptTokens))
		b = append(b, `,"input_tokens_details":{"cached_tokens":0},"output_tokens":`...)
		b = appendInt(b, int64(req.chat.completionTokens))
		b = append(b, `,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":`...)
		b = appendInt(b, int64(req.promptTokens+req.chat.completionTokens))
		b = append(b, '}')
	}
	b = append(b, `,"user":null,"metadata":`...)
	if req.metadata.IsObject() {
		b = append(b, req.metadata.Raw...)
	} else {
		b = append(b, "{}"...)
	}
	return append(b, '}')
}

// appendItem appends the output item with its full content; a message
// cut by the content filter has no content.
func (rs *responseState) appendItem(b []byte, status string) []byte {
	req := rs.req
	if req.call != nil {
		b = append(b, `{"id":"`...)
		b = append(b, rs.itemID...)
		b = append(b, `","type":"function_call","status":"`+status+`","arguments":`...)
		if status == "completed" {
			b = appendJSONString(b, req.call.arguments)
		} else {
			b = append(b, `""`...)
		}
		b = append(b, `,"call_id":"`...)
		b = append(b, req.call.callID...)
		b = append(b, `","name":`...)
		b = appendJSONString(b, req.call.name)
		return append(b, '}')
	}
	b = append(b, `{"id":"`...)
	b = append(b, rs.itemID...)
	b = append(b, `","type":"message","status":"`+status+`","role":"assistant","content":[`...)
	if status == "completed" && !req.filtered {
		b = rs.appendPart(b, req.chat.answer)
	}
	return append(b, "]}"...)
}

func (rs *responseState) appendPart(b []byte, text string) []byte {
	b = append(b, `{"type":"output_text","annotations":[],"logprobs":`...)
	b = rs.appendLogprobs(b, text)
	b = append(b, `,"text":`...)
	b = appendJSONString(b, text)
	return append(b, '}')
}

// appendLogprobs appends one entry per token-sized piece of text when
// logprobs were asked for, else [].
func (rs *responseState) appendLogprobs(b []byte, text string) []byte {
	b = append(b, '[')
	if rs.req.logprobs {
		for pos, k := 0, 0; pos < len(text); k++ {
			next := nextPiece(text, pos)
			if k > 0 {
				b = append(b, ',')
			}
			b = appendLogprob(b, text[pos:next])
			pos = next
		}
	}
	return append(b, ']')
}

// appendLogprob appends {"token","logprob","bytes","top_logprobs"} for
// one piece: a fixed, plausible log probability.
func appendLogprob(b []byte, token string) []byte {
	b = append(b, `{"token":`...)
	b = appendJSONString(b, token)
	b = append(b, `,"logprob":-0.0001,"bytes":[`...)
	for i := 0; i < len(token); i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendInt(b, int64(token[i]))
	}
	return append(b, `],"top_logprobs":[]}`...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, "true"...)
	}
	return append(b, "false"...)
}

// event starts one typed event in sw's buffer: "event: typ", then the
// data's opening members; the caller appends the rest and closes it with
// endEvent.
func (rs *responseState) event(sw *streamWriter, typ string) {
	sw.buf = append(sw.buf, "event: "...)
	sw.buf = append(sw.buf, typ...)
	sw.buf = append(sw.buf, "\ndata: {\"type\":\""...)
	sw.buf = append(sw.buf, typ...)
	sw.buf = append(sw.buf, `","sequence_number":`...)
	sw.buf = appendInt(sw.buf, rs.seq)
	rs.seq++
}

func endEvent(sw *streamWriter) bool {
	sw.buf = append(sw.buf, "}\n\n"...)
	return sw.send()
}

// itemRef appends the item_id, output_index and content_index members.
func (rs *responseState) itemRef(sw *streamWriter, content bool) {
	sw.buf = append(sw.buf, `,"item_id":"`...)
	sw.buf = append(sw.buf, rs.itemID...)
	sw.buf = append(sw.buf, `","output_index":0`...)
	if content {
		sw.buf = append(sw.buf, `,"content_index":0`...)
	}
}

func (h *Simulator) streamResponse(w http.ResponseWriter, r *http.Request, rs *responseState, dropAt int) error {
	hdr := w.Header()
	hdr["Content-Type"] = headerSSE
	hdr["Cache-Control"] = headerNoCache
	hdr["X-Accel-Buffering"] = headerNo
	w.WriteHeader(http.StatusOK)
	ctx := r.Context()
	bp := getBuf()
	defer putBuf(bp)
	sw := streamWriter{w: w, rc: http.NewResponseController(w), buf: (*bp)[:0]}
	defer func() { *bp = sw.buf }()
	req := rs.req

	for _, typ := range [...]string{"response.created", "response.in_progress"} {
		rs.event(&sw, typ)
		sw.buf = append(sw.buf, `,"response":`...)
		sw.buf = append(sw.buf, rs.object("in_progress")...)
		if !endEvent(&sw) {
			return nil
		}
	}
	if !sleepCtx(ctx, time.Duration(h.TimeToFirstToken)) {
		return nil
	}
	rs.event(&sw, "response.output_item.added")
	sw.buf = append(sw.buf, `,"output_index":0,"item":`...)
	sw.buf = rs.appendItem(sw.buf, "in_progress")
	if !endEvent(&sw) {
		return nil
	}
	text, deltaType := rs.text(), "response.output_text.delta"
	if req.call != nil {
		text, deltaType = req.call.arguments, "response.function_call_arguments.delta"
	} else {
		rs.event(&sw, "response.content_part.added")
		rs.itemRef(&sw, true)
		sw.buf = append(sw.buf, `,"part":{"type":"output_text","annotations":[],"logprobs":[],"text":""}`...)
		if !endEvent(&sw) {
			return nil
		}
	}
	var interval time.Duration
	if h.TokensPerSecond > 0 {
		interval = time.Duration(float64(time.Second) / h.TokensPerSecond)
	}
	start := time.Now()
	emitted := 0
	for pos, k := 0, 0; pos < len(text); k++ {
		next := nextPiece(text, pos)
		if interval > 0 && k > 0 {
			if !sleepCtx(ctx, time.Until(start.Add(time.Duration(k)*interval))) {
				return nil
			}
		} else if ctx.Err() != nil {
			return nil
		}
		if dropAt >= 0 && emitted >= dropAt {
			h.logDrop(emitted)
			abortStream(&sw)
		}
		rs.event(&sw, deltaType)
		rs.itemRef(&sw, req.call == nil)
		sw.buf = append(sw.buf, `,"delta":`...)
		sw.buf = appendJSONString(sw.buf, text[pos:next])
		if req.call == nil {
			sw.buf = append(sw.buf, `,"logprobs":`...)
			if req.logprobs {
				sw.buf = append(sw.buf, '[')
				sw.buf = appendLogprob(sw.buf, text[pos:next])
				sw.buf = append(sw.buf, ']')
			} else {
				sw.buf = append(sw.buf, "[]"...)
			}
		}
		if !endEvent(&sw) {
			return nil
		}
		emitted++
		pos = next
	}
	if dropAt >= 0 {
		h.logDrop(emitted)
		abortStream(&sw)
	}
	if req.filtered {
		rs.event(&sw, "response.incomplete")
		sw.buf = append(sw.buf, `,"response":`...)
		sw.buf = append(sw.buf, rs.object("completed")...)
		endEvent(&sw)
		return nil
	}
	if req.call != nil {
		rs.event(&sw, "response.function_call_arguments.done")
		rs.itemRef(&sw, false)
		sw.buf = append(sw.buf, `,"name":`...)
		sw.buf = appendJSONString(sw.buf, req.call.name)
		sw.buf = append(sw.buf, `,"arguments":`...)
		sw.buf = appendJSONString(sw.buf, text)
		if !endEvent(&sw) {
			return nil
		}
	} else {
		rs.event(&sw, "response.output_text.done")
		rs.itemRef(&sw, true)
		sw.buf = append(sw.buf, `,"text":`...)
		sw.buf = appendJSONString(sw.buf, text)
		sw.buf = append(sw.buf, `,"logprobs":`...)
		sw.buf = rs.appendLogprobs(sw.buf, text)
		if !endEvent(&sw) {
			return nil
		}
		rs.event(&sw, "response.content_part.done")
		rs.itemRef(&sw, true)
		sw.buf = append(sw.buf, `,"part":`...)
		sw.buf = rs.appendPart(sw.buf, text)
		if !endEvent(&sw) {
			return nil
		}
	}
	rs.event(&sw, "response.output_item.done")
	sw.buf = append(sw.buf, `,"output_index":0,"item":`...)
	sw.buf = rs.appendItem(sw.buf, "completed")
	if !endEvent(&sw) {
		return nil
	}
	typ := "response.completed"
	final := rs.object("completed")
	if req.chat.finish == "length" {
		typ = "response.incomplete"
	}
	rs.event(&sw, typ)
	sw.buf = append(sw.buf, `,"response":`...)
	sw.buf = append(sw.buf, final...)
	endEvent(&sw)
	return nil
}
