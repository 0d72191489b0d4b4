package simulator

import (
	"errors"
	"net/http"
	"time"
	"unicode"
	"unicode/utf8"

	"go.uber.org/zap"
)

// Streamed chat completions: data-only server-sent events in Azure's
// order — prompt annotations, role chunk, content chunks, final chunk (or
// a content_filter annotation), optional usage chunk, [DONE] — each
// flushed on its own.

const (
	// asyncBatch is how many content pieces an async-filter annotation
	// chunk covers.
	asyncBatch = 16
	// maxPieceBytes bounds one streamed content piece.
	maxPieceBytes = 48
)

// chunkFilterField prefixes a content chunk's choice in the default
// (buffered) filter mode.
var chunkFilterField = `"content_filter_results":` + chunkFilterResultsSafe + `,`

var (
	headerSSE     = []string{"text/event-stream; charset=utf-8"}
	headerNoCache = []string{"no-cache"}
	headerNo      = []string{"no"}
)

// streamWriter writes one SSE event at a time and flushes it.
type streamWriter struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	buf []byte
}

// send writes and flushes the buffered event; false means the client is
// gone.
func (s *streamWriter) send() bool {
	_, err := s.w.Write(s.buf)
	s.buf = s.buf[:0]
	if err != nil {
		return false
	}
	if err := s.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return false
	}
	return true
}

func (h *Simulator) streamChat(w http.ResponseWriter, r *http.Request, req *chatRequest, id string, created int64, dropAt int) error {
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
	dep := req.dep
	filtered := req.filteredAt >= 0

	usageNull := ""
	if req.includeUsage {
		usageNull = `,"usage":null`
	}
	// Tail of every regular chunk, built once per stream.
	suffix := make([]byte, 0, 160)
	suffix = append(suffix, `],"created":`...)
	suffix = appendInt(suffix, created)
	suffix = append(suffix, `,"id":"`...)
	suffix = append(suffix, id...)
	suffix = append(suffix, `","model":`...)
	suffix = appendJSONString(suffix, dep.model)
	suffix = append(suffix, `,"object":"chat.completion.chunk","system_fingerprint":"`...)
	suffix = append(suffix, dep.fingerprint...)
	suffix = append(suffix, '"')
	suffix = append(suffix, usageNull...)
	suffix = append(suffix, "}\n\n"...)
	annotationSuffix := `],"created":0,"id":"","model":"","object":""` + usageNull + "}\n\n"

	// 1. Prompt annotations.
	sw.buf = append(sw.buf, `data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":`...)
	sw.buf = append(sw.buf, promptFilterResultsSafe...)
	sw.buf = append(sw.buf, usageNull...)
	sw.buf = append(sw.buf, "}\n\n"...)
	if !sw.send() || !sleepCtx(ctx, time.Duration(h.TimeToFirstToken)) {
		return nil
	}

	// 2. Role chunk per choice.
	for i := 0; i < req.n; i++ {
		sw.buf = append(sw.buf, `data: {"choices":[{`...)
		if !h.AsyncFilter {
			sw.buf = append(sw.buf, `"content_filter_results":{},`...)
		}
		sw.buf = append(sw.buf, `"delta":{"content":"","refusal":null,"role":"assistant"},"finish_reason":null,"index":`...)
		sw.buf = appendInt(sw.buf, int64(i))
		sw.buf = append(sw.buf, `,"logprobs":null}`...)
		sw.buf = append(sw.buf, suffix...)
		if !sw.send() {
			return nil
		}
	}

	// 3. Content chunks, or a function call's: its name, then its
	// arguments in pieces.
	if c := req.call; c != nil {
		for i := 0; i < req.n; i++ {
			for pos := -1; pos < len(c.arguments); {
				sw.buf = append(sw.buf, `data: {"choices":[{`...)
				if !h.AsyncFilter {
					sw.buf = append(sw.buf, chunkFilterField...)
				}
				sw.buf = append(sw.buf, `"delta":{"tool_calls":[`...)
				if pos < 0 {
					sw.buf = append(sw.buf, `{"index":0,"id":"`...)
					sw.buf = append(sw.buf, c.callID...)
					sw.buf = append(sw.buf, `","type":"function","function":{"name":`...)
					sw.buf = appendJSONString(sw.buf, c.name)
					sw.buf = append(sw.buf, `,"arguments":""}}`...)
					pos = 0
				} else {
					next := nextPiece(c.arguments, pos)
					sw.buf = append(sw.buf, `{"index":0,"function":{"arguments":`...)
					sw.buf = appendJSONString(sw.buf, c.arguments[pos:next])
					sw.buf = append(sw.buf, `}}`...)
					pos = next
				}
				sw.buf = append(sw.buf, `]},"finish_reason":null,"index":`...)
				sw.buf = appendInt(sw.buf, int64(i))
				sw.buf = append(sw.buf, `,"logprobs":null}`...)
				sw.buf = append(sw.buf, suffix...)
				if !sw.send() {
					return nil
				}
			}
		}
	}
	answer := req.answer
	end := len(answer)
	if filtered {
		end = req.filteredAt
	}
	var interval time.Duration
	var timer *time.Timer
	if h.TokensPerSecond > 0 {
		interval = time.Duration(float64(time.Second) / h.TokensPerSecond)
		timer = time.NewTimer(time.Hour)
		timer.Stop()
		defer timer.Stop()
	}
	start := time.Now()
	emitted, runeOff, batchStart := 0, 0, 0
	for pos, k := 0, 0; pos < end; k++ {
		next := nextPiece(answer, pos)
		if next > end {
			break // the piece reaches into blocked output
		}
		if interval > 0 && k > 0 {
			timer.Reset(time.Until(start.Add(time.Duration(k) * interval)))
			select {
			case <-ctx.Done():
				return nil
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			return nil
		}
		piece := answer[pos:next]
		for i := 0; i < req.n; i++ {
			if dropAt >= 0 && emitted >= dropAt {
				h.logDrop(emitted)
				abortStream(&sw)
			}
			sw.buf = append(sw.buf, `data: {"choices":[{`...)
			if !h.AsyncFilter {
				sw.buf = append(sw.buf, chunkFilterField...)
			}
			sw.buf = append(sw.buf, `"delta":{"content":`...)
			sw.buf = appendJSONString(sw.buf, piece)
			sw.buf = append(sw.buf, `},"finish_reason":null,"index":`...)
			sw.buf = appendInt(sw.buf, int64(i))
			if req.logprobs {
				sw.buf = append(sw.buf, `,"logprobs":{"content":[`...)
				sw.buf = appendLogprob(sw.buf, piece)
				sw.buf = append(sw.buf, `],"refusal":null}}`...)
			} else {
				sw.buf = append(sw.buf, `,"logprobs":null}`...)
			}
			sw.buf = append(sw.buf, suffix...)
			if !sw.send() {
				return nil
			}
			emitted++
		}
		runeOff += utf8.RuneCountInString(piece)
		pos = next
		if h.AsyncFilter && (k+1)%asyncBatch == 0 {
			for i := 0; i < req.n; i++ {
				appendAnnotation(&sw, i, "", "", batchStart, batchStart, runeOff, annotationSuffix)
				if !sw.send() {
					return nil
				}
			}
			batchStart = runeOff
		}
	}
	if dropAt >= 0 {
		h.logDrop(emitted)
		abortStream(&sw)
	}

	// 4. End of the choices.
	if filtered {
		total := runeOff + utf8.RuneCountInString(answer[min(end, len(answer)):])
		for i := 0; i < req.n; i++ {
			appendAnnotation(&sw, i, "content_filter", h.FilterCategory, runeOff, runeOff, total, annotationSuffix)
			if !sw.send() {
				return nil
			}
		}
	} else {
		for i := 0; i < req.n; i++ {
			sw.buf = append(sw.buf, `data: {"choices":[{`...)
			if !h.AsyncFilter {
				sw.buf = append(sw.buf, `"content_filter_results":{},`...)
			}
			sw.buf = append(sw.buf, `"delta":{},"finish_reason":"`...)
			sw.buf = append(sw.buf, req.finish...)
			sw.buf = append(sw.buf, `","index":`...)
			sw.buf = appendInt(sw.buf, int64(i))
			sw.buf = append(sw.buf, `,"logprobs":null}`...)
			sw.buf = append(sw.buf, suffix...)
			if !sw.send() {
				return nil
			}
		}
		if h.AsyncFilter {
			for i := 0; i < req.n; i++ {
				appendAnnotation(&sw, i, "", "", batchStart, batchStart, runeOff, annotationSuffix)
				if !sw.send() {
					return nil
				}
			}
		}
	}

	// 5. Usage chunk.
	if req.includeUsage {
		sw.buf = append(sw.buf, `data: {"choices":[],"created":`...)
		sw.buf = appendInt(sw.buf, created)
		sw.buf = append(sw.buf, `,"id":"`...)
		sw.buf = append(sw.buf, id...)
		sw.buf = append(sw.buf, `","model":`...)
		sw.buf = appendJSONString(sw.buf, dep.model)
		sw.buf = append(sw.buf, `,"object":"chat.completion.chunk","system_fingerprint":"`...)
		sw.buf = append(sw.buf, dep.fingerprint...)
		sw.buf = append(sw.buf, `","usage":`...)
		sw.buf = appendUsage(sw.buf, req.promptTokens, req.completionTokens*req.n)
		sw.buf = append(sw.buf, "}\n\n"...)
		if !sw.send() {
			return nil
		}
	}

	// 6. Terminator.
	sw.buf = append(sw.buf, "data: [DONE]\n\n"...)
	sw.send()
	return nil
}

// appendAnnotation appends an annotation-only chunk (empty id) for choice
// i with content_filter_offsets; finish is "" (null) or "content_filter",
// filteredCategory names the category reported as filtered, if any.
func appendAnnotation(sw *streamWriter, i int, finish, filteredCategory string, check, startOff, endOff int, suffix string) {
	sw.buf = append(sw.buf, `data: {"choices":[{"content_filter_offsets":{"check_offset":`...)
	sw.buf = appendInt(sw.buf, int64(check))
	sw.buf = append(sw.buf, `,"end_offset":`...)
	sw.buf = appendInt(sw.buf, int64(endOff))
	sw.buf = append(sw.buf, `,"start_offset":`...)
	sw.buf = appendInt(sw.buf, int64(startOff))
	sw.buf = append(sw.buf, `},"content_filter_results":`...)
	sw.buf = appendChunkFilterResults(sw.buf, filteredCategory)
	sw.buf = append(sw.buf, `,"finish_reason":`...)
	sw.buf = appendNullableString(sw.buf, finish)
	sw.buf = append(sw.buf, `,"index":`...)
	sw.buf = appendInt(sw.buf, int64(i))
	sw.buf = append(sw.buf, '}')
	sw.buf = append(sw.buf, suffix...)
}

func (h *Simulator) logDrop(chunks int) {
	if ce := h.logger.Check(zap.DebugLevel, "simulated stream drop"); ce != nil {
		ce.Write(zap.Int("content_chunks", chunks))
	}
}

// abortStream cuts the connection: what was written so far is flushed,
// then the handler panics with http.ErrAbortHandler, which net/http (and
// Caddy) turn into an abrupt close without the terminating chunk (HTTP/1)
// or a stream reset (HTTP/2).
func abortStream(sw *streamWriter) {
	_ = sw.rc.Flush()
	panic(http.ErrAbortHandler)
}

// nextPiece returns the end of the content piece starting at i: roughly
// one token, split the way BPE pre-tokenisers split text (a word with its
// leading space, up to three digits, a run of punctuation, whitespace).
func nextPiece(s string, i int) int {
	r, size := utf8.DecodeRuneInString(s[i:])
	j := i + size
	if r == ' ' && j < len(s) {
		if r2, size2 := utf8.DecodeRuneInString(s[j:]); !unicode.IsSpace(r2) {
			r, j = r2, j+size2
		}
	}
	class := runeClass(r)
	runes := 1
	for j < len(s) && j-i < maxPieceBytes {
		r2, size2 := utf8.DecodeRuneInString(s[j:])
		if runeClass(r2) != class || (class == classDigit && runes == 3) {
			break
		}
		if class == classSpace && r2 == ' ' && j+size2 < len(s) {
			// leave the last space for the word that follows
			if r3, _ := utf8.DecodeRuneInString(s[j+size2:]); !unicode.IsSpace(r3) {
				break
			}
		}
		j += size2
		runes++
	}
	return j
}

const (
	classLetter = iota
	classDigit
	classSpace
	classOther
)

func runeClass(r rune) int {
	switch {
	case unicode.IsLetter(r) || unicode.IsMark(r):
		return classLetter
	case unicode.IsDigit(r):
		return classDigit
	case unicode.IsSpace(r):
		return classSpace
	}
	return classOther
}

// countPieces reports how many pieces of answer are streamed before end
// (end < 0 means the whole answer).
func countPieces(answer string, end int) int {
	if end < 0 {
		end = len(answer)
	}
	n := 0
	for pos := 0; pos < end; {
		next := nextPiece(answer, pos)
		if next > end {
			break
		}
		pos = next
		n++
	}
	return n
}
