package caddymodule

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/groundgate/groundgate/filters"
	"github.com/groundgate/groundgate/post"
	"github.com/groundgate/groundgate/sse"
	"github.com/groundgate/groundgate/wire"
)

// responsesEvents relays a Responses stream's typed events. Untouched
// streams are forwarded byte for byte. With output filters or
// post-processors, each output_text delta passes the filters' bounded
// hold-back window and the rewriters; what they still hold is released in
// one more delta just before response.output_text.done; the done events
// and the final response carry the text as the client received it;
// function call arguments are held until complete and filtered whole.
// Sequence numbers stay consecutive.
type responsesEvents struct {
	ex       *exchange
	store    bool // record the response's owner
	chain    *filters.Chain
	posts    *post.Chain
	active   bool  // events are rewritten
	offset   int64 // events the gateway added so far
	lastSeq  int64
	parts    map[partKey]*partState
	calls    map[int64]*callState
	snapshot []byte // the response object as created, for a filtered end
	terminal bool
	// upstreamError: the upstream sent an error event; its end is not a
	// break to report again.
	upstreamError bool
}

type partKey struct{ item, part int64 }

// partState is one output_text part on its way to the client.
type partState struct {
	sc   *filters.StreamScanner
	rw   post.Rewriter
	text []byte // as sent
	ctx  []byte // context members from the rewriters
	// Where its deltas go, for releasing what is held when the upstream
	// ends the item without a done event for the part. (A copy: a part
	// lives as long as its item, and must not pin the event it came in.)
	itemID    string
	deltaType string // response.output_text.delta, …refusal.delta, …reasoning_summary_text.delta
	index     string // "content_index" or "summary_index"
	closed    bool
}

// callState is one function call whose arguments are held.
type callState struct {
	args []byte
	out  string
	done bool
}

func newResponsesEvents(ex *exchange, store bool) *responsesEvents {
	re := &responsesEvents{ex: ex, store: store, chain: ex.outputChain()}
	if ex.rt != nil && ex.rt.post != nil && ex.rt.post.Len() > 0 {
		re.posts = ex.rt.post
		ex.postResult = new(post.Result)
	}
	re.active = re.chain != nil || re.posts != nil
	if re.active {
		re.parts = map[partKey]*partState{}
		re.calls = map[int64]*callState{}
	}
	return re
}

// Events that end a response.
func terminalEvent(typ string) bool {
	return typ == "response.completed" || typ == "response.incomplete" || typ == "response.failed"
}

func (re *responsesEvents) event(out *streamOut, ev *sse.Event) (bool, error) {
	ex := re.ex
	if ev.Done() { // OpenAI-compatible servers may end with [DONE]
		re.terminal = true
		if err := out.send(ev.Raw); err != nil {
			return true, err
		}
		re.cache()
		return true, nil
	}
	root := gjson.ParseBytes(ev.Data)
	typ := root.Get("type").Str
	switch {
	case typ == "response.created":
		id := root.Get("response.id").Str
		ex.responseID = id
		if id != "" && re.store {
			_ = ex.g.owners.record(ex, id)
		}
		if re.active {
			re.snapshot = []byte(root.Get("response").Raw)
		}
	case typ == "response.output_text.delta" || typ == "response.function_call_arguments.delta" || typ == "response.refusal.delta":
		if ex.ttft == 0 {
			ex.ttft = time.Since(ex.start)
			timeToFirstToken.WithLabelValues(ex.model.alias).Observe(ex.ttft.Seconds())
		}
		if !ex.usageReported {
			ex.collect(0, root.Get("delta").Str) // counted if no usage comes
		}
	case terminalEvent(typ):
		ex.traceResponseObject(root.Get("response"))
		ex.recordUsage(root.Get("response.usage"), responsesUsage)
		if ex.usageReported {
			ex.answers = nil
		}
		ex.finished = true
		re.terminal = true
		if root.Get("response.incomplete_details.reason").Str == "content_filter" {
			ex.markIncomplete(incompleteFiltered)
		}
	case typ == "error":
		// The upstream reported the failure itself; it ends the stream.
		re.upstreamError = true
		ex.markIncomplete(incompleteUpstreamError)
	}
	if seq := root.Get("sequence_number"); seq.Exists() {
		re.lastSeq = seq.Int()
	}
	if !re.active {
		if err := out.send(ev.Raw); err != nil {
			return true, err
		}
		if re.terminal {
			re.cache()
		}
		return re.terminal, nil
	}
	data, blocked, err := re.rewrite(out, typ, root, ev.Data)
	if err != nil || blocked {
		return true, err
	}
	if err := out.sendTyped(typ, re.renumber(data)); err != nil {
		return true, err
	}
	if re.terminal {
		re.cache()
	}
	return re.terminal, nil
}

// rewrite applies filters and rewriters to one event; blocked means the
// stream was ended for the client.
func (re *responsesEvents) rewrite(out *streamOut, typ string, root gjson.Result, data []byte) ([]byte, bool, error) {
	switch typ {
	case "response.reasoning_summary_text.delta":
		if re.chain == nil {
			break // rewriters act on the answer, not on reasoning
		}
		ps := re.summary(root)
		emit, ok := ps.push(root.Get("delta").Str)
		if !ok {
			return nil, true, re.block(out, ps.sc)
		}
		data, _ = sjson.SetBytes(data, "delta", emit)
	case "response.reasoning_summary_text.done":
		if re.chain == nil {
			break
		}
		ps := re.summary(root)
		rest, ok := ps.close()
		if !ok {
			return nil, true, re.block(out, ps.sc)
		}
		if rest != "" {
			extra, _ := sjson.SetBytes(data, "type", "response.reasoning_summary_text.delta")
			extra, _ = sjson.DeleteBytes(extra, "text")
			extra, _ = sjson.SetBytes(extra, "delta", rest)
			if err := out.sendTyped("response.reasoning_summary_text.delta", re.renumber(extra)); err != nil {
				return nil, false, err
			}
			re.offset++
		}
		data, _ = sjson.SetBytes(data, "text", string(ps.text))
	case "response.reasoning_summary_part.done":
		if ps, ok := re.parts[summaryKey(root.Get("output_index").Int(), root.Get("summary_index").Int())]; ok {
			data, _ = sjson.SetBytes(data, "part.text", string(ps.text))
		}
	case "response.output_text.delta", "response.refusal.delta":
		ps := re.part(root, typ == "response.output_text.delta")
		emit, ok := ps.push(root.Get("delta").Str)
		if !ok {
			return nil, true, re.block(out, ps.sc)
		}
		data, _ = sjson.SetBytes(data, "delta", emit)
	case "response.output_text.done", "response.refusal.done":
		field, deltaType := "text", "response.output_text.delta"
		if typ == "response.refusal.done" {
			field, deltaType = "refusal", "response.refusal.delta"
		}
		ps := re.part(root, field == "text")
		rest, ok := ps.close()
		if !ok {
			return nil, true, re.block(out, ps.sc)
		}
		if rest != "" {
			extra, _ := sjson.SetBytes(data, "type", deltaType)
			extra, _ = sjson.DeleteBytes(extra, field)
			extra, _ = sjson.SetBytes(extra, "delta", rest)
			if err := out.sendTyped(deltaType, re.renumber(extra)); err != nil {
				return nil, false, err
			}
			re.offset++
		}
		data, _ = sjson.SetBytes(data, field, string(ps.text))
	case "response.content_part.done":
		if ps, ok := re.parts[partKey{root.Get("output_index").Int(), root.Get("content_index").Int()}]; ok {
			data, _ = sjson.SetBytes(data, "part."+partField(root.Get("part")), string(ps.text))
		}
	case "response.output_item.done":
		if blocked, err := re.release(out, root.Get("output_index").Int()); blocked || err != nil {
			return nil, blocked, err
		}
		data = re.fixItem(data, "item", root.Get("output_index").Int(), root.Get("item"))
	case "response.function_call_arguments.delta":
		if re.chain != nil {
			cs := re.call(root.Get("output_index").Int())
			cs.args = append(cs.args, root.Get("delta").Str...)
			data, _ = sjson.SetBytes(data, "delta", "")
		}
	case "response.function_call_arguments.done":
		if re.chain != nil {
			cs := re.call(root.Get("output_index").Int())
			res := runArguments(re.chain, root.Get("arguments").Str)
			re.ex.countFindings(res.Findings, "output")
			if res.Blocked {
				return nil, true, re.block(out, nil)
			}
			cs.out, cs.done = res.Text, true
			extra, _ := sjson.SetBytes(data, "type", "response.function_call_arguments.delta")
			extra, _ = sjson.DeleteBytes(extra, "arguments")
			extra, _ = sjson.DeleteBytes(extra, "name")
			extra, _ = sjson.SetBytes(extra, "delta", cs.out)
			if err := out.sendTyped("response.function_call_arguments.delta", re.renumber(extra)); err != nil {
				return nil, false, err
			}
			re.offset++
			data, _ = sjson.SetBytes(data, "arguments", cs.out)
		}
	default:
		if terminalEvent(typ) {
			if blocked, err := re.release(out, -1); blocked || err != nil {
				return nil, blocked, err
			}
			i := int64(-1)
			root.Get("response.output").ForEach(func(_, it gjson.Result) bool {
				i++
				data = re.fixItem(data, "response.output."+strconv.FormatInt(i, 10), i, it)
				return true
			})
			if v := re.ex.postResult; v != nil && v.HeaderValue() != "" {
				data, _ = sjson.SetBytes(data, "response.metadata.groundgate_grounding", v.HeaderValue())
			}
		}
	}
	return data, false, nil
}

// fixItem puts the text and arguments as sent into an output item at path.
func (re *responsesEvents) fixItem(data []byte, path string, idx int64, it gjson.Result) []byte {
	switch it.Get("type").Str {
	case "message":
		var ctx []byte
		j := int64(-1)
		it.Get("content").ForEach(func(_, part gjson.Result) bool {
			j++
			if ps, ok := re.parts[partKey{idx, j}]; ok {
				data, _ = sjson.SetBytes(data, path+".content."+strconv.FormatInt(j, 10)+"."+partField(part), string(ps.text))
				ctx = post.MergeContext(ctx, ps.ctx)
			}
			return true
		})
		if len(ctx) > 0 {
			data, _ = sjson.SetRawBytes(data, path+".context", ctx)
		}
	case "reasoning":
		j := int64(-1)
		it.Get("summary").ForEach(func(_, part gjson.Result) bool {
			j++
			if ps, ok := re.parts[summaryKey(idx, j)]; ok {
				data, _ = sjson.SetBytes(data, path+".summary."+strconv.FormatInt(j, 10)+".text", string(ps.text))
			}
			return true
		})
	case "function_call":
		if cs, ok := re.calls[idx]; ok && cs.done {
			data, _ = sjson.SetBytes(data, path+".arguments", cs.out)
		}
	}
	return data
}

// part is the state of the text part an event belongs to; rewriters
// (citations, disclaimers) apply to output text, not to refusals.
func (re *responsesEvents) part(root gjson.Result, text bool) *partState {
	k := partKey{root.Get("output_index").Int(), root.Get("content_index").Int()}
	ps, ok := re.parts[k]
	if !ok {
		ps = &partState{itemID: strings.Clone(root.Get("item_id").Str), index: "content_index", deltaType: "response.output_text.delta"}
		if !text {
			ps.deltaType = "response.refusal.delta"
		}
		if re.chain != nil {
			ps.sc = re.chain.NewStreamScanner(filters.StageOutput)
		}
		if re.posts != nil && text {
			ps.rw = re.posts.NewRewriter(re.ex.postRequest(), re.ex.postResult)
		}
		re.parts[k] = ps
	}
	return ps
}

// release closes the parts of output item idx (-1: of every item) that the
// upstream ended without their done event, sending what they still hold
// as one more delta each, so nothing held back is lost. A block found
// then ends the stream.
func (re *responsesEvents) release(out *streamOut, idx int64) (bool, error) {
	for k, ps := range re.parts {
		if ps.closed || (idx >= 0 && k.item != idx) {
			continue
		}
		rest, ok := ps.close()
		if !ok {
			return true, re.block(out, ps.sc)
		}
		if rest == "" {
			continue
		}
		sub := k.part
		if ps.index == "summary_index" {
			sub = -1 - k.part
		}
		b := []byte(`{"type":"` + ps.deltaType + `","sequence_number":0,"item_id":`)
		b = wire.AppendString(b, ps.itemID)
		b = append(b, `,"output_index":`+strconv.FormatInt(k.item, 10)+`,"`+ps.index+`":`+strconv.FormatInt(sub, 10)+`,"delta":`...)
		b = wire.AppendString(b, rest)
		b = append(b, '}')
		if err := out.sendTyped(ps.deltaType, re.renumber(b)); err != nil {
			return false, err
		}
		re.offset++
	}
	return false, nil
}

// summaryKey names a reasoning summary part apart from content parts.
func summaryKey(item, summary int64) partKey { return partKey{item, -1 - summary} }

// summary is the state of a reasoning summary part: filtered, not
// rewritten.
func (re *responsesEvents) summary(root gjson.Result) *partState {
	k := summaryKey(root.Get("output_index").Int(), root.Get("summary_index").Int())
	ps, ok := re.parts[k]
	if !ok {
		ps = &partState{sc: re.chain.NewStreamScanner(filters.StageOutput), itemID: strings.Clone(root.Get("item_id").Str),
			index: "summary_index", deltaType: "response.reasoning_summary_text.delta"}
		re.parts[k] = ps
	}
	return ps
}

func (re *responsesEvents) call(idx int64) *callState {
	cs, ok := re.calls[idx]
	if !ok {
		cs = new(callState)
		re.calls[idx] = cs
	}
	return cs
}

// push passes a delta through the filters' window and the rewriters;
// false means a filter blocked.
func (ps *partState) push(text string) (string, bool) {
	emit := text
	if ps.sc != nil {
		var v filters.Verdict
		if emit, v = ps.sc.Push(text); v == filters.Blocked {
			return "", false
		}
	}
	if ps.rw != nil {
		var cx []byte
		emit, cx = ps.rw.Delta(emit)
		emit, ps.ctx = strings.Clone(emit), post.MergeContext(ps.ctx, bytes.Clone(cx))
	}
	ps.text = append(ps.text, emit...)
	return emit, true
}

// close releases what the part still holds.
func (ps *partState) close() (string, bool) {
	if ps.closed {
		return "", true
	}
	ps.closed = true
	rest := ""
	if ps.sc != nil {
		var v filters.Verdict
		if rest, v = ps.sc.Close(); v == filters.Blocked {
			return "", false
		}
	}
	if ps.rw != nil {
		e, cx := ps.rw.Delta(rest)
		rest, ps.ctx = strings.Clone(e), post.MergeContext(ps.ctx, bytes.Clone(cx))
		tail, cx := ps.rw.Finish()
		rest += tail
		ps.ctx = post.MergeContext(ps.ctx, bytes.Clone(cx))
	}
	ps.text = append(ps.text, rest...)
	return rest, true
}

// block ends a stream an output filter blocked: response.incomplete with
// incomplete_details.reason content_filter, and nothing of the blocked
// text. The upstream stream is abandoned.
func (re *responsesEvents) block(out *streamOut, sc *filters.StreamScanner) error {
	ex := re.ex
	if sc != nil {
		ex.countFindings(sc.Findings(), "output")
	}
	resp := re.snapshot
	if len(resp) == 0 {
		resp = []byte(`{"object":"response"}`)
	}
	resp = markFiltered(bytes.Clone(resp), "")
	resp, _ = sjson.SetRawBytes(resp, "output", []byte("[]"))
	b := []byte(`{"type":"response.incomplete","sequence_number":0,"response":`)
	b = append(b, resp...)
	b = append(b, '}')
	b = re.renumber(b)
	ex.armWrite()
	if _, err := ex.w.Write(typedEvent("response.incomplete", b)); err != nil {
		return ex.clientGone(err)
	}
	_ = out.rc.Flush()
	ex.filteredOut = true
	ex.markIncomplete(incompleteFiltered)
	return nil
}

// renumber gives an event the next sequence number when the gateway has
// added events before it.
func (re *responsesEvents) renumber(data []byte) []byte {
	if seq := gjson.GetBytes(data, "sequence_number"); re.offset == 0 && (!seq.Exists() || seq.Int() == re.lastSeq) {
		return data // unchanged; servers without sequence numbers get none
	}
	data, _ = sjson.SetBytes(data, "sequence_number", re.lastSeq+re.offset)
	return data
}

func (re *responsesEvents) closed(*streamOut) (bool, error) {
	if re.upstreamError && !re.terminal {
		re.ex.status = http.StatusBadGateway // for metrics: 200 headers, then a failure
	}
	return re.terminal || re.upstreamError, nil
}

var (
	responsesBrokenBody = []byte(`{"type":"error","code":"upstream_stream_error","message":"The upstream stream ended unexpectedly; the response is incomplete.","param":null}`)
	responsesIdleBody   = []byte(`{"type":"error","code":"upstream_stream_timeout","message":"The upstream stream stalled; the response is incomplete.","param":null}`)
)

// broken ends a cut stream with an error event, as the service reports
// a failure mid-stream.
func (re *responsesEvents) broken(stalled bool) []byte {
	body := responsesBrokenBody
	if stalled {
		body = responsesIdleBody
	}
	body, _ = sjson.SetBytes(body, "sequence_number", re.lastSeq+re.offset+1)
	return typedEvent("error", body)
}

func (re *responsesEvents) cache() {
	if ex := re.ex; ex.cacheKey != "" && !ex.filteredOut {
		ex.cacheStore(ex.cacheKey, true, ex.streamCopy, ex.rt.cacheTTL)
	}
}

// typedEvent is an SSE event with its type as the event name.
func typedEvent(typ string, data []byte) []byte {
	b := make([]byte, 0, len(typ)+len(data)+16)
	b = append(b, "event: "...)
	b = append(b, typ...)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	return append(b, "\n\n"...)
}

// partField is the member holding a content part's text.
func partField(part gjson.Result) string {
	if part.Get("type").Str == "refusal" {
		return "refusal"
	}
	return "text"
}
