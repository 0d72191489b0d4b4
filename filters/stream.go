package filters

import (
	"slices"
	"unsafe"
)

// Verdict is a StreamScanner's state after a call.
type Verdict uint8

const (
	// Pass: go on streaming.
	Pass Verdict = iota
	// Blocked: a block finding fired (or the scanner failed closed). Emit
	// nothing more: end the stream (finish_reason "content_filter").
	Blocked
)

func (v Verdict) String() string {
	if v == Blocked {
		return "blocked"
	}
	return "pass"
}

// Categories of the findings a StreamScanner makes itself when it fails
// closed (Filter "stream").
const (
	CategoryHoldLimit   = "hold_limit"   // more than MaxHold bytes held back
	CategoryStreamError = "stream_error" // a filter broke the StreamFilter contract
)

// StreamScanner filters a text that arrives in pieces (a streamed answer)
// through a bounded hold-back window. Text is emitted only once every
// filter has scanned it with enough right context that no finding can
// still start in it; redactions are applied as in Chain.Run, so the
// concatenation of everything emitted equals Run's Text. When a block
// fires nothing more is emitted. A StreamScanner is not safe for
// concurrent use; make one per stream.
type StreamScanner struct {
	c      *Chain
	stage  Stage
	sf     []streamState
	whole  []Filter // active filters that cannot stream: hold all until Close
	buf    []byte   // text from base to end
	base   int
	end    int
	emit   int // text before this is decided (emitted or redacted)
	span   int // end of the redaction span being suppressed, if > emit
	redact []Finding
	found  []Finding
	by     Finding
	state  Verdict
	closed bool
	out    []byte
}

type streamState struct {
	f    StreamFilter
	next int // absolute position the next ScanStream starts from
}

// NewStreamScanner returns a scanner running the chain's filters active at
// stage s (normally StageOutput) over a stream.
func (c *Chain) NewStreamScanner(s Stage) *StreamScanner {
	ss := &StreamScanner{c: c, stage: s}
	for _, f := range c.filters {
		if !f.Active(s) {
			continue
		}
		if sf, ok := f.(StreamFilter); ok {
			ss.sf = append(ss.sf, streamState{f: sf})
		} else {
			ss.whole = append(ss.whole, f)
		}
	}
	return ss
}

// Push adds the next piece of the text and returns what may be emitted
// now (possibly ""), and the verdict.
func (s *StreamScanner) Push(delta string) (string, Verdict) {
	out, v := s.PushAppend(s.out[:0], delta)
	s.out = out[:0]
	if len(out) == 0 {
		return "", v
	}
	return string(out), v
}

// Close ends the text and returns the rest to emit and the verdict.
func (s *StreamScanner) Close() (string, Verdict) {
	out, v := s.CloseAppend(s.out[:0])
	s.out = out[:0]
	if len(out) == 0 {
		return "", v
	}
	return string(out), v
}

// PushAppend is Push appending the text to emit to dst.
func (s *StreamScanner) PushAppend(dst []byte, delta string) ([]byte, Verdict) {
	if s.state == Blocked || s.closed {
		return dst, s.state
	}
	s.buf = append(s.buf, delta...)
	s.end += len(delta)
	return s.advance(dst, false)
}

// CloseAppend is Close appending the text to emit to dst.
func (s *StreamScanner) CloseAppend(dst []byte) ([]byte, Verdict) {
	if s.state == Blocked || s.closed {
		return dst, s.state
	}
	s.closed = true
	return s.advance(dst, true)
}

// Findings returns every finding so far, offsets relative to the whole
// text, in the order they became certain (do not modify).
func (s *StreamScanner) Findings() []Finding { return s.found }

// BlockedBy returns the finding that blocked the stream.
func (s *StreamScanner) BlockedBy() (Finding, bool) { return s.by, s.state == Blocked }

// Held returns how many bytes of text are held back (not yet emitted).
func (s *StreamScanner) Held() int { return s.end - s.emit }

// Len returns how many bytes of text were pushed.
func (s *StreamScanner) Len() int { return s.end }

func (s *StreamScanner) block(f Finding) {
	s.state = Blocked
	s.by = f
	s.buf, s.redact = nil, nil
}

func (s *StreamScanner) advance(dst []byte, final bool) ([]byte, Verdict) {
	var text string
	if len(s.buf) > 0 {
		text = unsafe.String(unsafe.SliceData(s.buf), len(s.buf))
	}
	h := s.end // nothing can change before h
	for i := range s.sf {
		st := &s.sf[i]
		from := st.next - s.base
		fs, hz := st.f.ScanStream(text, from, final, s.stage)
		if hz < from || hz > len(text) || (final && hz != len(text)) {
			s.block(Finding{Filter: "stream", Category: CategoryStreamError, Start: st.next, End: s.end, Score: 1, Action: Block})
			return dst, Blocked
		}
		for _, f := range fs {
			if f.Start < from || f.Start >= hz || f.End < f.Start || f.End > len(text) || f.Action == Off {
				continue // outside the contract: it will be found again, or was already
			}
			f.Start += s.base
			f.End += s.base
			s.commit(f)
		}
		st.next = s.base + hz
		h = min(h, st.next)
	}
	if len(s.whole) > 0 {
		if final {
			for _, w := range s.whole { // base is 0: text is the whole text
				for _, f := range w.Scan(text, s.stage) {
					if f.Action != Off && f.Start >= 0 && f.Start <= f.End && f.End <= len(text) {
						s.commit(f)
					}
				}
			}
		} else {
			h = s.emit
		}
	}
	if s.state == Blocked {
		return dst, Blocked
	}
	dst = s.emitUpTo(dst, text, h)
	if !final && s.end-s.emit > s.c.maxHold {
		s.block(Finding{Filter: "stream", Category: CategoryHoldLimit, Start: s.emit, End: s.end, Score: 1, Action: Block})
		return dst, Blocked
	}
	s.compact()
	return dst, Pass
}

func (s *StreamScanner) commit(f Finding) {
	s.found = append(s.found, f)
	switch f.Action {
	case Block:
		if s.state != Blocked {
			s.block(f)
		}
	case Redact:
		if f.End > f.Start && s.state != Blocked {
			i, _ := slices.BinarySearchFunc(s.redact, f, redactLess)
			s.redact = slices.Insert(s.redact, i, f)
		}
	}
}

// emitUpTo decides the text up to h: raw text is appended to dst,
// redaction spans become one label each, as applyRedactions does.
func (s *StreamScanner) emitUpTo(dst []byte, text string, h int) []byte {
	for s.emit < h {
		if s.span > s.emit { // inside a span: it grows while findings start in it
			n := 0
			for n < len(s.redact) && s.redact[n].Start < s.span {
				s.span = max(s.span, s.redact[n].End)
				n++
			}
			s.redact = s.redact[:copy(s.redact, s.redact[n:])]
			s.emit = min(s.span, h)
			continue
		}
		if len(s.redact) > 0 && s.redact[0].Start < h {
			r := s.redact[0]
			dst = append(dst, text[s.emit-s.base:r.Start-s.base]...)
			dst = s.c.appendLabel(dst, r)
			s.emit, s.span = r.Start, r.End
			continue
		}
		dst = append(dst, text[s.emit-s.base:h-s.base]...)
		s.emit = h
	}
	return dst
}

// compact drops text no longer needed: before what is undecided and the
// left context filters need.
func (s *StreamScanner) compact() {
	if len(s.whole) > 0 {
		return
	}
	keep := s.emit
	for i := range s.sf {
		keep = min(keep, s.sf[i].next-MinLeftContext)
	}
	drop := keep - s.base
	if drop <= 0 || (drop < 4096 && drop < len(s.buf)/2) {
		return
	}
	n := copy(s.buf, s.buf[drop:])
	s.buf = s.buf[:n]
	s.base = keep
}
