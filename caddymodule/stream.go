package caddymodule

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/groundgate/groundgate/post"
	"github.com/groundgate/groundgate/sse"
	"github.com/groundgate/groundgate/wire"
)

var (
	doneEvent        = []byte("data: [DONE]\n\n")
	streamBrokenBody = (&wire.Error{Type: wire.TypeServer, Code: "upstream_stream_error",
		Message: "The upstream stream ended unexpectedly; the answer is incomplete."}).AppendJSON([]byte("data: "))
	streamIdleBody = (&wire.Error{Type: wire.TypeServer, Code: "upstream_stream_timeout",
		Message: "The upstream stream stalled; the answer is incomplete."}).AppendJSON([]byte("data: "))
)

// eventRelay is an API shape's part of relaying a stream: what each
// upstream event becomes for the client, and how the stream ends.
type eventRelay interface {
	// event handles one upstream event that carries data, sending what
	// the client gets through out. done reports that the stream has ended
	// for the client.
	event(out *streamOut, ev *sse.Event) (done bool, err error)
	// closed handles the upstream closing without its end marker:
	// complete reports that the answer was whole and the stream has been
	// ended for the client; otherwise it is a broken stream.
	closed(out *streamOut) (complete bool, err error)
	// broken is what ends a stream cut short for the client (stalled: by
	// the idle timeout).
	broken(stalled bool) []byte
}

// streamOut writes a stream's events to the client.
type streamOut struct {
	ex    *exchange
	rc    *http.ResponseController
	frame []byte // the event being sent, reused: a stream allocates none per event
}

// sendData sends data as one "data:" event.
func (o *streamOut) sendData(data []byte) error {
	o.frame = append(append(append(o.frame[:0], "data: "...), data...), "\n\n"...)
	return o.send(o.frame)
}

// sendTyped sends data as one event named typ (the Responses API's
// events), as typedEvent frames it.
func (o *streamOut) sendTyped(typ string, data []byte) error {
	o.frame = append(append(append(append(append(o.frame[:0], "event: "...), typ...), "\ndata: "...), data...), "\n\n"...)
	return o.send(o.frame)
}

// send writes raw events (kept for the cache) under the client write
// deadline.
func (o *streamOut) send(raw []byte) error {
	ex := o.ex
	ex.armWrite()
	if _, err := ex.w.Write(raw); err != nil {
		return ex.clientGone(err)
	}
	if ex.cacheKey != "" && len(ex.streamCopy) < maxCachedAnswer {
		ex.streamCopy = append(ex.streamCopy, raw...)
	}
	return nil
}

// relayEvents forwards an upstream SSE stream event by event, flushing
// each one, with the shape's relay deciding what each event becomes. A
// stream that breaks or stalls ends for the client with the shape's
// error event.
func (ex *exchange) relayEvents(at *attempt, er eventRelay) error {
	g := ex.g
	ex.releaseForStream(at)
	h := ex.w.Header()
	ct := at.resp.Header.Get("Content-Type")
	if !strings.HasPrefix(ct, "text/event-stream") {
		ct = "text/event-stream; charset=utf-8"
	}
	h.Set("Content-Type", ct)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	rc := ex.controller()
	ex.streamed = true
	ex.armWrite()
	ex.writeHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return ex.clientGone(err)
	}
	ex.disarmWrite()
	out := &streamOut{ex: ex, rc: rc}

	// The idle timer cancels the upstream read when nothing arrives.
	idle := time.Duration(g.StreamIdleTimeout)
	var stalled atomic.Bool
	timer := time.AfterFunc(idle, func() { stalled.Store(true); at.cancel() })
	defer timer.Stop()

	rd := at.events
	if rd == nil {
		rd = &primedReader{rd: sse.NewReader(at.resp.Body, 0)}
	}
	// One event variable for the stream: its address goes to the relay.
	// It is cleared before each wait, which can last as long as the
	// upstream pauses, so the last event does not pin its buffer (the
	// events held before the first token, once replayed).
	var ev sse.Event
	for {
		var err error
		ev = sse.Event{}
		ev, err = rd.Next()
		if err != nil {
			timer.Stop()
			if ex.r.Context().Err() != nil {
				return errClientGone
			}
			if errors.Is(err, io.EOF) {
				// Some OpenAI-compatible servers close without [DONE].
				complete, err := er.closed(out)
				if complete || err != nil {
					return err
				}
			}
			reason := incompleteUpstreamError
			if stalled.Load() {
				reason = incompleteUpstreamIdle
			}
			ex.markIncomplete(reason)
			g.logger.Warn("upstream stream broke", zap.String("request_id", ex.id),
				zap.String("upstream", at.upstream.name), zap.Bool("stalled", stalled.Load()), zap.Error(err))
			return ex.endStream(rc, er.broken(stalled.Load()))
		}
		timer.Reset(idle)
		if !ev.HasData {
			err = out.send(ev.Raw) // comments, keep-alives
		} else {
			var done bool
			if done, err = er.event(out, &ev); done || err != nil {
				return err
			}
		}
		if err != nil {
			return err
		}
		if err := rc.Flush(); err != nil {
			return ex.clientGone(err)
		}
		ex.disarmWrite()
	}
}

// chatEvents relays chat completion chunks: usage read from the usage
// chunk (forced upstream) and that chunk dropped when the client did not
// ask for it, input annotations merged into Azure's first event, output
// filters and post-processors applied to each choice's deltas.
type chatEvents struct {
	ex               *exchange
	clientWantsUsage bool
	sf               *streamFilter
	ps               *post.Stream
}

func newChatEvents(ex *exchange, clientWantsUsage bool) *chatEvents {
	ce := &chatEvents{ex: ex, clientWantsUsage: clientWantsUsage, ps: ex.postStream()}
	if chain := ex.outputChain(); chain != nil {
		ce.sf = newStreamFilter(chain)
	}
	return ce
}

// deliver passes a chunk's data through the post-processors and sends it.
func (ce *chatEvents) deliver(out *streamOut, data []byte) error {
	if ce.ps == nil {
		return out.sendData(data)
	}
	outs, err := ce.ps.Chunk(data)
	if err != nil {
		return err
	}
	for _, o := range outs {
		if err := out.sendData(o); err != nil {
			return err
		}
	}
	return nil
}

func (ce *chatEvents) event(out *streamOut, ev *sse.Event) (bool, error) {
	ex := ce.ex
	if ev.Done() {
		if err := ce.endOfAnswer(out); err != nil {
			return true, err
		}
		if ex.filteredOut {
			return true, nil
		}
		if err := out.send(ev.Raw); err != nil {
			return true, err
		}
		_ = out.rc.Flush()
		if ex.cacheKey != "" {
			ex.cacheStore(ex.cacheKey, true, ex.streamCopy, ex.rt.cacheTTL)
		}
		return true, nil
	}
	data := ev.Data
	c := readChatChunk(data)
	if skip := ex.inspectChunk(data, c, ce.clientWantsUsage); skip {
		return false, nil
	}
	annotate := ex.inputAnn != nil && !ex.annMerged && c.promptResults
	if annotate {
		data, ex.annMerged = ex.mergePromptAnnotations(data), true
		c = readChatChunk(data)
	}
	if ce.sf != nil {
		var blocked int64
		if data, blocked = ce.sf.chunk(ex, data, c.choices); blocked >= 0 {
			return true, ex.endFiltered(out.rc, ce.sf, blocked)
		}
	}
	if ce.sf == nil && ce.ps == nil && !annotate {
		return false, out.send(ev.Raw) // untouched: forward byte for byte
	}
	return false, ce.deliver(out, data)
}

func (ce *chatEvents) closed(out *streamOut) (bool, error) {
	if !ce.ex.finished {
		return false, nil
	}
	if err := ce.endOfAnswer(out); err != nil {
		return true, err
	}
	if ce.ex.filteredOut {
		return true, nil
	}
	return true, out.send(doneEvent)
}

func (ce *chatEvents) broken(stalled bool) []byte {
	msg := streamBrokenBody
	if stalled {
		msg = streamIdleBody
	}
	buf := make([]byte, 0, len(msg)+2+len(doneEvent))
	buf = append(buf, msg...)
	buf = append(buf, "\n\n"...)
	return append(buf, doneEvent...)
}

// endOfAnswer releases what the output filters and post-processors still
// hold when the upstream stream ends.
func (ce *chatEvents) endOfAnswer(out *streamOut) error {
	ex := ce.ex
	if ce.sf != nil {
		extra, blocked := ce.sf.finish(ex)
		if blocked >= 0 {
			return ex.endFiltered(out.rc, ce.sf, blocked)
		}
		if extra != nil {
			if err := ce.deliver(out, extra); err != nil {
				return err
			}
		}
	}
	if ce.ps != nil {
		for _, o := range ce.ps.End() {
			if err := out.sendData(o); err != nil {
				return err
			}
		}
	}
	return nil
}

// chatChunk is what the relay reads of a chunk's top level, in one pass
// over it. Its results point into the chunk's data: they are read while
// the chunk is handled, and copied when kept.
type chatChunk struct {
	id, choices, usage gjson.Result
	promptResults      bool // Azure's prompt annotations
}

func readChatChunk(data []byte) chatChunk {
	var c chatChunk
	if len(data) == 0 {
		return c
	}
	gjson.Parse(unsafe.String(unsafe.SliceData(data), len(data))).ForEach(func(k, v gjson.Result) bool {
		switch k.Str { // the first of duplicate members, as gjson.Get reads
		case "id":
			if !c.id.Exists() {
				c.id = v
			}
		case "choices":
			if !c.choices.Exists() {
				c.choices = v
			}
		case "usage":
			if !c.usage.Exists() {
				c.usage = v
			}
		case "prompt_filter_results":
			c.promptResults = true
		}
		return true
	})
	return c
}

// inspectChunk reads what the gateway needs from one chunk: usage, and
// the time of the first content. It reports whether to drop the chunk.
func (ex *exchange) inspectChunk(data []byte, c chatChunk, clientWantsUsage bool) bool {
	ex.traceChunk(data)
	if ex.responseID == "" {
		ex.responseID = strings.Clone(c.id.Str)
	}
	if ex.ttft == 0 && c.choices.Get("0.delta").Exists() {
		ex.ttft = time.Since(ex.start)
		timeToFirstToken.WithLabelValues(ex.model.alias).Observe(ex.ttft.Seconds())
	}
	if !ex.finished {
		ex.finished = c.choices.Get("0.finish_reason").Type == gjson.String
	}
	// Every choice's text is kept until usage arrives: a stream that
	// ends without it is counted from them.
	if ex.collectDelta(c.choices) {
		ex.markIncomplete(incompleteFiltered)
	}
	if !c.usage.IsObject() {
		return false
	}
	ex.recordUsage(c.usage, chatUsage)
	ex.answers = nil
	// The usage chunk has no choices; drop it if only we asked for it.
	return !clientWantsUsage && !c.choices.Get("0").Exists()
}

// endStream closes a broken stream the way the shape's clients can parse
// (for chat: an error event, then [DONE]).
func (ex *exchange) endStream(rc *http.ResponseController, end []byte) error {
	ex.armWrite()
	if _, err := ex.w.Write(end); err != nil {
		return ex.clientGone(err)
	}
	_ = rc.Flush()
	ex.status = 502 // for metrics: the client got 200 headers, then an error
	return nil
}

func sseEvent(data []byte) []byte {
	b := make([]byte, 0, len(data)+8)
	b = append(b, "data: "...)
	b = append(b, data...)
	return append(b, "\n\n"...)
}

// endFiltered ends a stream an output filter blocked: Azure's annotation
// chunk with finish_reason content_filter, then [DONE]. The upstream
// stream is abandoned; nothing after the block reaches the client.
func (ex *exchange) endFiltered(rc *http.ResponseController, sf *streamFilter, idx int64) error {
	buf := sseEvent(sf.blockedChunk(idx))
	buf = append(buf, doneEvent...)
	ex.armWrite()
	if _, err := ex.w.Write(buf); err != nil {
		return ex.clientGone(err)
	}
	_ = rc.Flush()
	ex.filteredOut = true
	ex.markIncomplete(incompleteFiltered)
	return nil
}
