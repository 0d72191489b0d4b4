package post

import (
	"strconv"
	"strings"
	"unsafe"

	"github.com/tidwall/gjson"

	"github.com/groundgate/groundgate/wire"
)

// Stream post-processes one streamed chat completion, chunk by chunk (the
// data of each SSE event). Each choice index gets its own Rewriter, made
// at the choice's first string delta.content (tool-call streams, whose
// content is absent or null, are left alone). A Stream is not safe for
// concurrent use; make one per response with Chain.NewStream.
type Stream struct {
	c   *Chain
	req *Request
	res *Result

	choices []streamChoice // by choice index

	// The last chunk with a non-empty id, for the chunks Stream adds.
	id, model, fingerprint, created string // raw JSON values ("" when absent)

	out     [][]byte
	splices []splice
}

type streamChoice struct {
	rw       Rewriter
	finished bool
}

// NewStream returns a Stream running the chain's processors; nil when the
// chain is empty (the handler then forwards chunks as they are).
func (c *Chain) NewStream(req *Request, res *Result) *Stream {
	if c.Len() == 0 {
		return nil
	}
	return &Stream{c: c, req: req, res: res}
}

func (s *Stream) choice(idx int) *streamChoice {
	if idx < 0 || idx > 127 {
		return nil // not a choice index a client could have asked for
	}
	for len(s.choices) <= idx {
		s.choices = append(s.choices, streamChoice{})
	}
	return &s.choices[idx]
}

// Chunk takes the data of one stream event (a chat.completion.chunk; not
// "[DONE]") and returns the data of the events to send in its place, in
// order. Usually that is one: data itself when nothing changed, or the
// chunk with choices[i].delta.content rewritten and the rewriters' context
// members merged into choices[i].delta.context. When a chunk carries a
// choice's finish_reason, what the choice's Rewriter returns at Finish
// (held-back text, a disclaimer, context.citations) goes into that chunk's
// delta if it has content, and otherwise into a chunk of its own sent
// just before it (same id, model and created as the stream's chunks,
// finish_reason null). Chunks without choices (Azure's prompt annotations,
// the usage chunk) pass unchanged. The returned slices are valid until the
// next call.
func (s *Stream) Chunk(data []byte) ([][]byte, error) {
	s.out = s.out[:0]
	if len(data) == 0 {
		s.out = append(s.out, data)
		return s.out, nil
	}
	// One pass over the top level, without copying data: what is kept
	// past this call is cloned.
	var id, model, created, fingerprint, choices gjson.Result
	gjson.Parse(unsafe.String(&data[0], len(data))).ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "id":
			id = v
		case "model":
			model = v
		case "created":
			created = v
		case "system_fingerprint":
			fingerprint = v
		case "choices":
			choices = v
		}
		return true
	})
	if id.Type == gjson.String && id.Str != "" && id.Raw != s.id {
		s.id = strings.Clone(id.Raw)
		s.model = strings.Clone(model.Raw)
		s.created = strings.Clone(created.Raw)
		s.fingerprint = strings.Clone(fingerprint.Raw)
	}
	if !choices.IsArray() {
		s.out = append(s.out, data)
		return s.out, nil
	}
	s.splices = s.splices[:0]
	pos := -1
	choices.ForEach(func(_, ch gjson.Result) bool {
		pos++
		idx := pos
		var index, delta, finish gjson.Result
		ch.ForEach(func(k, v gjson.Result) bool {
			switch k.Str {
			case "index":
				index = v
			case "delta":
				delta = v
			case "finish_reason":
				finish = v
			}
			return true
		})
		if index.Type == gjson.Number {
			idx = int(index.Int())
		}
		cs := s.choice(idx)
		if cs == nil || cs.finished {
			return true
		}
		content := delta.Get("content")
		hasContent := content.Type == gjson.String
		finished := finish.Exists() && finish.Type != gjson.Null
		if hasContent && cs.rw == nil {
			cs.rw = s.c.NewRewriter(s.req, s.res)
			if cs.rw == nil {
				cs.finished = true
				return true
			}
		}
		if cs.rw == nil {
			return true
		}
		if hasContent {
			// content.Str may point into data: Rewriters do not keep
			// their input.
			in := content.Str
			emit, ctx := cs.rw.Delta(in)
			var tail string
			var ctx2 []byte
			if finished {
				cs.finished = true
				ctx = append([]byte(nil), ctx...)
				tail, ctx2 = cs.rw.Finish()
				ctx = MergeContext(ctx, ctx2)
			}
			if emit != in || tail != "" {
				if tail != "" {
					emit += tail
				}
				s.splice(content.Index, content.Index+len(content.Raw), wire.AppendString(nil, emit))
			}
			if len(ctx) > 0 {
				s.spliceContext(delta, ctx)
			}
			return true
		}
		if finished {
			cs.finished = true
			tail, ctx := cs.rw.Finish()
			if tail != "" || len(ctx) > 0 {
				s.out = append(s.out, s.extraChunk(idx, tail, ctx))
			}
		}
		return true
	})
	if len(s.splices) == 0 {
		s.out = append(s.out, data)
	} else {
		s.out = append(s.out, applySplices(data, s.splices))
	}
	return s.out, nil
}

func (s *Stream) splice(start, end int, repl []byte) {
	s.splices = append(s.splices, splice{start, end, repl})
}

func (s *Stream) spliceContext(delta gjson.Result, ctx []byte) {
	s.splices = append(s.splices, contextSplice(delta, ctx))
}

// End is called when the stream ends ("data: [DONE]" or EOF) to finish
// the choices that never received a finish_reason (a cut stream): it
// returns the chunks to send before "[DONE]", if any. After End, Chunk
// leaves every choice alone.
func (s *Stream) End() [][]byte {
	s.out = s.out[:0]
	for i := range s.choices {
		cs := &s.choices[i]
		if cs.rw == nil || cs.finished {
			cs.finished = true
			continue
		}
		cs.finished = true
		tail, ctx := cs.rw.Finish()
		if tail != "" || len(ctx) > 0 {
			s.out = append(s.out, s.extraChunk(i, tail, ctx))
		}
	}
	return s.out
}

// extraChunk builds a chunk carrying text and context for choice idx:
//
//	{"id":…,"object":"chat.completion.chunk","created":…,"model":…,
//	 "system_fingerprint":…,"choices":[{"index":idx,"delta":{"content":…,
//	 "context":…},"finish_reason":null}]}
func (s *Stream) extraChunk(idx int, text string, ctx []byte) []byte {
	b := make([]byte, 0, 160+len(text)+len(ctx))
	b = append(b, `{"id":`...)
	b = appendRawOr(b, s.id, `""`)
	b = append(b, `,"object":"chat.completion.chunk","created":`...)
	b = appendRawOr(b, s.created, `0`)
	b = append(b, `,"model":`...)
	b = appendRawOr(b, s.model, `""`)
	if s.fingerprint != "" {
		b = append(b, `,"system_fingerprint":`...)
		b = append(b, s.fingerprint...)
	}
	b = append(b, `,"choices":[{"index":`...)
	b = strconv.AppendInt(b, int64(idx), 10)
	b = append(b, `,"delta":{"content":`...)
	b = wire.AppendString(b, text)
	if len(ctx) > 0 {
		b = append(b, `,"context":`...)
		b = append(b, ctx...)
	}
	b = append(b, `},"finish_reason":null}]}`...)
	return b
}

func appendRawOr(b []byte, raw, def string) []byte {
	if raw == "" {
		return append(b, def...)
	}
	return append(b, raw...)
}
