package caddymodule

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

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

// relayStream forwards an upstream SSE stream event by event, flushing
// each one. It reads usage from the usage chunk (forced upstream) and
// drops that chunk when the client did not ask for it. A stream that
// breaks ends for the client with an error event and [DONE].
func (g *Gateway) relayStream(ex *exchange, at *attempt, clientWantsUsage bool) error {
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

	// The idle timer cancels the upstream read when nothing arrives.
	idle := time.Duration(g.StreamIdleTimeout)
	var stalled atomic.Bool
	timer := time.AfterFunc(idle, func() { stalled.Store(true); at.cancel() })
	defer timer.Stop()

	var sf *streamFilter
	if chain := ex.outputChain(); chain != nil {
		sf = newStreamFilter(chain)
	}
	ps := ex.postStream()
	// send writes raw events (kept for the cache), each under the client
	// write deadline; deliver passes a chunk's data through the
	// post-processors first.
	send := func(raw []byte) error {
		ex.armWrite()
		if _, err := ex.w.Write(raw); err != nil {
			return ex.clientGone(err)
		}
		if ex.cacheKey != "" && len(ex.streamCopy) < maxCachedAnswer {
			ex.streamCopy = append(ex.streamCopy, raw...)
		}
		return nil
	}
	deliver := func(data []byte) error {
		if ps == nil {
			return send(sseEvent(data))
		}
		outs, err := ps.Chunk(data)
		if err != nil {
			return err
		}
		for _, out := range outs {
			if err := send(sseEvent(out)); err != nil {
				return err
			}
		}
		return nil
	}
	rd := at.events
	if rd == nil {
		rd = &primedReader{rd: sse.NewReader(at.resp.Body, 0)}
	}
	for {
		ev, err := rd.Next()
		if err != nil {
			timer.Stop()
			if ex.r.Context().Err() != nil {
				return errClientGone
			}
			if errors.Is(err, io.EOF) && ex.finished {
				// Some OpenAI-compatible servers close without [DONE].
				if err := ex.endOfAnswer(sf, ps, rc, deliver, send); err != nil {
					return err
				}
				return send(doneEvent)
			}
			msg, reason := streamBrokenBody, incompleteUpstreamError
			if stalled.Load() {
				msg, reason = streamIdleBody, incompleteUpstreamIdle
			}
			ex.markIncomplete(reason)
			g.logger.Warn("upstream stream broke", zap.String("request_id", ex.id),
				zap.String("upstream", at.upstream.name), zap.Bool("stalled", stalled.Load()), zap.Error(err))
			return ex.endStream(rc, msg)
		}
		timer.Reset(idle)
		switch {
		case ev.Done():
			if err := ex.endOfAnswer(sf, ps, rc, deliver, send); err != nil {
				return err
			}
			if ex.filteredOut {
				return nil
			}
			if err := send(ev.Raw); err != nil {
				return err
			}
			_ = rc.Flush()
			if ex.cacheKey != "" {
				ex.cacheStore(ex.cacheKey, true, ex.streamCopy, ex.rt.cacheTTL)
			}
			return nil
		case !ev.HasData:
			err = send(ev.Raw) // comments, keep-alives
		default:
			if skip := ex.inspectChunk(ev.Data, clientWantsUsage); skip {
				continue
			}
			data := ev.Data
			annotate := ex.inputAnn != nil && !ex.annMerged && gjson.GetBytes(data, "prompt_filter_results").Exists()
			if annotate {
				data, ex.annMerged = ex.mergePromptAnnotations(data), true
			}
			if sf != nil {
				var blocked int64
				if data, blocked = sf.chunk(ex, data); blocked >= 0 {
					return ex.endFiltered(rc, sf, blocked)
				}
			}
			if sf == nil && ps == nil && !annotate {
				err = send(ev.Raw) // untouched: forward byte for byte
			} else {
				err = deliver(data)
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

// endOfAnswer releases what the output filters and post-processors still
// hold when the upstream stream ends.
func (ex *exchange) endOfAnswer(sf *streamFilter, ps *post.Stream, rc *http.ResponseController, deliver func([]byte) error, send func([]byte) error) error {
	if sf != nil {
		extra, blocked := sf.finish(ex)
		if blocked >= 0 {
			return ex.endFiltered(rc, sf, blocked)
		}
		if extra != nil {
			if err := deliver(extra); err != nil {
				return err
			}
		}
	}
	if ps != nil {
		for _, out := range ps.End() {
			if err := send(sseEvent(out)); err != nil {
				return err
			}
		}
	}
	return nil
}

// inspectChunk reads what the gateway needs from one chunk: usage, and
// the time of the first content. It reports whether to drop the chunk.
func (ex *exchange) inspectChunk(data []byte, clientWantsUsage bool) bool {
	ex.traceChunk(data)
	if ex.responseID == "" {
		ex.responseID = gjson.GetBytes(data, "id").Str
	}
	if ex.ttft == 0 && gjson.GetBytes(data, "choices.0.delta").Exists() {
		ex.ttft = time.Since(ex.start)
		timeToFirstToken.WithLabelValues(ex.model.alias).Observe(ex.ttft.Seconds())
	}
	if !ex.finished {
		fr := gjson.GetBytes(data, "choices.0.finish_reason")
		ex.finished = fr.Type == gjson.String
	}
	// Every choice's text is kept until usage arrives: a stream that
	// ends without it is counted from them.
	choices := gjson.GetBytes(data, "choices")
	if ex.collectDelta(choices) {
		ex.markIncomplete(incompleteFiltered)
	}
	u := gjson.GetBytes(data, "usage")
	if !u.IsObject() {
		return false
	}
	ex.recordUsage(u)
	ex.answers = nil
	// The usage chunk has no choices; drop it if only we asked for it.
	return !clientWantsUsage && !choices.Get("0").Exists()
}

// endStream closes a broken stream the way clients can parse: an error
// event, then [DONE].
func (ex *exchange) endStream(rc *http.ResponseController, msg []byte) error {
	buf := make([]byte, 0, len(msg)+2+len(doneEvent))
	buf = append(buf, msg...)
	buf = append(buf, "\n\n"...)
	buf = append(buf, doneEvent...)
	ex.armWrite()
	if _, err := ex.w.Write(buf); err != nil {
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
