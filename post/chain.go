package post

import (
	"slices"
	"strings"
	"unsafe"

	"github.com/tidwall/gjson"

	"github.com/groundgate/groundgate/wire"
)

// Chain runs post-processors over an answer, in order: each one's output
// is the next one's input (so a disclaimer appended before the citations
// processor would itself be scanned for markers). Processors are shared
// across requests; a Chain holds no per-request state and is safe for
// concurrent use.
type Chain struct {
	procs []Processor
}

// NewChain returns a chain of the given processors (nil ones are skipped).
func NewChain(procs ...Processor) *Chain {
	c := &Chain{}
	for _, p := range procs {
		if p != nil {
			c.procs = append(c.procs, p)
		}
	}
	return c
}

// Len returns the number of processors.
func (c *Chain) Len() int {
	if c == nil {
		return 0
	}
	return len(c.procs)
}

// NewRewriter returns a Rewriter that runs every processor of the chain
// over one answer, or nil when none has anything to do. Use it directly
// when the handler extracts the text itself (for instance after the output
// filters' StreamScanner); Body and Stream use it for each choice.
func (c *Chain) NewRewriter(req *Request, res *Result) Rewriter {
	if c == nil {
		return nil
	}
	var rws []Rewriter
	for _, p := range c.procs {
		if rw := p.NewRewriter(req, res); rw != nil {
			rws = append(rws, rw)
		}
	}
	var rw Rewriter
	switch len(rws) {
	case 0:
		return nil
	case 1:
		rw = rws[0]
	default:
		rw = &chainRewriter{rws: rws}
	}
	if req != nil && req.Structured {
		return &structuredRewriter{rw: rw, res: res}
	}
	return rw
}

// structuredRewriter keeps a JSON answer as the model wrote it: the
// processors still see the text (citations are found, records resolved)
// but only their context members reach the client, never a rewritten
// value, an appended disclaimer or a refusal text that would break the
// schema. An answer a processor would have refused is flagged ungrounded
// instead.
type structuredRewriter struct {
	rw  Rewriter
	res *Result
}

func (s *structuredRewriter) Delta(text string) (string, []byte) {
	_, ctx := s.rw.Delta(text)
	return text, ctx
}

func (s *structuredRewriter) Finish() (string, []byte) {
	_, ctx := s.rw.Finish()
	if s.res != nil && s.res.Refused {
		s.res.Refused, s.res.Ungrounded = false, true
	}
	return "", ctx
}

type chainRewriter struct {
	rws []Rewriter
	buf []byte // the emitted text when it had to be joined
}

func (c *chainRewriter) Delta(text string) (string, []byte) {
	var ctx []byte
	for _, rw := range c.rws {
		var cx []byte
		text, cx = rw.Delta(text)
		ctx = MergeContext(ctx, cx)
	}
	return text, ctx
}

// Finish finishes the processors in order; what one emits at Finish is
// fed to the next one's Delta before that one finishes.
func (c *chainRewriter) Finish() (string, []byte) {
	var ctx []byte
	carry := ""
	for _, rw := range c.rws {
		var cx []byte
		if carry != "" {
			carry, cx = rw.Delta(carry)
			ctx = MergeContext(ctx, cx)
			// carry is only valid until rw's next call: keep a copy.
			c.buf = append(c.buf[:0], carry...)
		} else {
			c.buf = c.buf[:0]
		}
		tail, cx := rw.Finish()
		ctx = MergeContext(ctx, cx)
		c.buf = append(c.buf, tail...)
		carry = string(c.buf)
	}
	return carry, ctx
}

// MergeContext merges two JSON objects' members: b's members replace a's
// members of the same name; other members of both are kept, a's first.
// Either may be nil (the other is returned as is). Non-objects are
// ignored.
func MergeContext(a, b []byte) []byte {
	if len(a) == 0 {
		return b
	}
	if len(b) == 0 {
		return a
	}
	ra, rb := gjson.ParseBytes(a), gjson.ParseBytes(b)
	if !rb.IsObject() {
		return a
	}
	if !ra.IsObject() {
		return b
	}
	var bkeys []string
	rb.ForEach(func(k, _ gjson.Result) bool {
		bkeys = append(bkeys, k.String())
		return true
	})
	out := make([]byte, 0, len(a)+len(b)+1)
	out = append(out, '{')
	ra.ForEach(func(k, v gjson.Result) bool {
		ks := k.String()
		for _, bk := range bkeys {
			if bk == ks {
				return true
			}
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, k.Raw...)
		out = append(out, ':')
		out = append(out, v.Raw...)
		return true
	})
	rb.ForEach(func(k, v gjson.Result) bool {
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, k.Raw...)
		out = append(out, ':')
		out = append(out, v.Raw...)
		return true
	})
	return append(out, '}')
}

// Body post-processes a non-streamed chat completion body: for every
// choice whose message.content is a string (a tool-call answer's null
// content is left alone), it runs a fresh Rewriter of the chain over the
// content, writes the result back and merges the context members into
// message.context. It returns body itself when nothing changed, else a
// new slice (body is not modified). The body is never unmarshalled: gjson
// finds the values and the changes are spliced in at their offsets.
func (c *Chain) Body(body []byte, req *Request, res *Result) ([]byte, error) {
	if c.Len() == 0 || len(body) == 0 {
		return body, nil
	}
	choices := gjson.Parse(unsafe.String(&body[0], len(body))).Get("choices")
	if !choices.IsArray() {
		return body, nil
	}
	var splices []splice
	choices.ForEach(func(_, ch gjson.Result) bool {
		msg := ch.Get("message")
		content := msg.Get("content")
		if content.Type != gjson.String {
			return true
		}
		rw := c.NewRewriter(req, res)
		if rw == nil {
			return true
		}
		in := content.Str // may point into body; Rewriters do not keep it
		a, ctx1 := rw.Delta(in)
		out := make([]byte, 0, len(a)+16)
		out = append(out, a...)
		ctx1 = append([]byte(nil), ctx1...)
		b, ctx2 := rw.Finish()
		out = append(out, b...)
		if string(out) != in {
			splices = append(splices, splice{content.Index, content.Index + len(content.Raw), wire.AppendString(nil, string(out))})
		}
		if ctx := MergeContext(ctx1, ctx2); len(ctx) > 0 {
			splices = append(splices, contextSplice(msg, ctx))
		}
		return true
	})
	if len(splices) == 0 {
		return body, nil
	}
	return applySplices(body, splices), nil
}

// splice replaces data[start:end] by repl.
type splice struct {
	start, end int
	repl       []byte
}

// applySplices returns a copy of data with the splices (which do not
// overlap) applied.
func applySplices(data []byte, splices []splice) []byte {
	slices.SortFunc(splices, func(a, b splice) int { return a.start - b.start })
	n := len(data)
	for _, sp := range splices {
		n += len(sp.repl) - (sp.end - sp.start)
	}
	buf := make([]byte, 0, n)
	at := 0
	for _, sp := range splices {
		buf = append(buf, data[at:sp.start]...)
		buf = append(buf, sp.repl...)
		at = sp.end
	}
	return append(buf, data[at:]...)
}

// contextSplice merges ctx into obj.context (a message or a delta), or
// adds it as obj's last member. obj's Index must be its offset in the
// data being spliced.
func contextSplice(obj gjson.Result, ctx []byte) splice {
	if old := obj.Get("context"); old.Exists() {
		if old.IsObject() {
			ctx = MergeContext([]byte(old.Raw), ctx)
		}
		return splice{old.Index, old.Index + len(old.Raw), append([]byte(nil), ctx...)}
	}
	end := obj.Index + len(obj.Raw) - 1 // the closing brace
	r := make([]byte, 0, len(ctx)+12)
	if strings.TrimSpace(obj.Raw[1:len(obj.Raw)-1]) != "" {
		r = append(r, ',')
	}
	r = append(r, `"context":`...)
	r = append(r, ctx...)
	return splice{end, end, r}
}
