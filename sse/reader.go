// Package sse reads Server-Sent Events (text/event-stream) as they arrive,
// one event at a time, without buffering the whole stream. It keeps each
// event's raw bytes so a proxy can forward events it does not change
// byte for byte.
package sse

import (
	"bytes"
	"errors"
	"io"
)

// DefaultMaxEventSize bounds one event; a larger event is an error rather
// than unbounded memory growth.
const DefaultMaxEventSize = 1 << 20

// ErrEventTooLarge is returned when one event exceeds the reader's limit.
var ErrEventTooLarge = errors.New("sse: event exceeds the maximum size")

// Event is one dispatched event. Its slices are only valid until the next
// call to Next.
type Event struct {
	// Raw is the event's lines as received, each ending in "\n" (a "\r\n"
	// is normalised), followed by the blank line that ends the event.
	Raw []byte
	// Data is the concatenation of the event's data fields, joined by "\n".
	Data []byte
	// Name is the event field ("" when absent, meaning "message").
	Name []byte
	// HasData reports whether the event had at least one data field.
	HasData bool
}

// Done reports whether this is the OpenAI end-of-stream sentinel.
func (e *Event) Done() bool { return e.HasData && bytes.Equal(e.Data, doneSentinel) }

var doneSentinel = []byte("[DONE]")

// Buffer sizes. A reader holds one buffer the size of the largest event
// it has had to hold (model streams send events of a few hundred bytes),
// so thousands of open streams cost little; a rare large event's buffer
// is dropped once it has been read.
const (
	initialBuffer = 1 << 10
	keptBuffer    = 8 << 10
)

// Reader parses events from an io.Reader. It reads into a buffer of its
// own and returns events as slices of it: an event whose lines end in
// "\n" and that has at most one data line is not copied.
type Reader struct {
	rd  io.Reader
	max int
	buf []byte // buf[r:w] is read and not yet returned
	r   int
	w   int
	err error // the input's error, returned once buf holds no event

	// The event being found: start is where its first line begins (-1:
	// none yet), pos where the next line to scan begins, size its length
	// as returned (line ends normalised), cr whether a line ends in "\r".
	start, pos, size int
	cr               bool

	raw, data []byte // an event that cannot be a slice of buf
}

// NewReader returns a Reader with the given event size limit (<= 0 means
// DefaultMaxEventSize).
func NewReader(r io.Reader, maxEventSize int) *Reader {
	if maxEventSize <= 0 {
		maxEventSize = DefaultMaxEventSize
	}
	return &Reader{rd: r, max: maxEventSize, start: -1}
}

// Next returns the next event. Comment-only events (": keep-alive") are
// returned too, with HasData false, so a proxy can forward them. At the end
// of the stream it returns io.EOF; a final event without its blank line is
// dispatched first (servers that close right after "data: [DONE]\n" exist).
// A stream cut mid-line returns io.ErrUnexpectedEOF.
func (r *Reader) Next() (Event, error) {
	if r.err == ErrEventTooLarge {
		return Event{}, r.err
	}
	if r.r == r.w && len(r.buf) > keptBuffer {
		r.buf, r.r, r.w, r.pos = nil, 0, 0, 0
	}
	for empty := 0; ; {
		if ev, ok, err := r.scan(); ok || err != nil {
			return ev, err
		}
		if r.err != nil {
			return r.end()
		}
		n, err := r.fill()
		if err != nil {
			return Event{}, err
		}
		// As bufio does: a reader that keeps returning nothing is broken.
		if empty++; n > 0 {
			empty = 0
		} else if empty >= 100 && r.err == nil {
			r.err = io.ErrNoProgress
		}
	}
}

// scan looks for the end of the event in what is buffered, line by line
// from where the last scan stopped.
func (r *Reader) scan() (Event, bool, error) {
	for {
		i := bytes.IndexByte(r.buf[r.pos:r.w], '\n')
		if i < 0 {
			// A partial line: bounded like a whole one.
			if r.size+r.w-r.pos > r.max {
				r.err = ErrEventTooLarge
				return Event{}, false, ErrEventTooLarge
			}
			return Event{}, false, nil
		}
		line := r.buf[r.pos : r.pos+i]
		n := len(bytes.TrimRight(line, "\r"))
		end := r.pos + i + 1
		if n == 0 { // a blank line
			if r.start < 0 { // stray blank lines between events
				r.pos, r.r = end, end
				continue
			}
			r.cr = r.cr || i > 0
			ev := r.event(r.buf[r.start:end], false)
			r.r, r.pos, r.start, r.size, r.cr = end, end, -1, 0, false
			return ev, true, nil
		}
		if r.start < 0 {
			r.start = r.pos
		}
		r.size += n + 1
		if r.size > r.max {
			r.err = ErrEventTooLarge
			return Event{}, false, ErrEventTooLarge
		}
		r.cr = r.cr || n != i
		r.pos = end
	}
}

// end is what the input's end leaves: an event whose blank line never
// came, a cut line, or the error itself.
func (r *Reader) end() (Event, error) {
	if r.pos < r.w {
		r.r = r.w
		return Event{}, io.ErrUnexpectedEOF
	}
	if r.start >= 0 && r.err == io.EOF {
		ev := r.event(r.buf[r.start:r.w], true)
		r.r, r.start, r.size = r.w, -1, 0
		return ev, nil
	}
	return Event{}, r.err
}

// fill reads more input, first making room: what was returned is dropped,
// and a buffer full of one unfinished event grows.
func (r *Reader) fill() (int, error) {
	if r.r > 0 {
		n := copy(r.buf, r.buf[r.r:r.w])
		if r.start >= 0 {
			r.start -= r.r
		}
		r.pos -= r.r
		r.w = n
		r.r = 0
	}
	if r.w == len(r.buf) {
		size := max(2*len(r.buf), initialBuffer)
		nb := make([]byte, size)
		copy(nb, r.buf[:r.w])
		r.buf = nb
	}
	n, err := r.rd.Read(r.buf[r.w:])
	if n < 0 || n > len(r.buf)-r.w {
		return 0, errors.New("sse: reader returned an invalid count")
	}
	r.w += n
	if err != nil {
		r.err = err
	}
	return n, nil
}

// event builds the event of the lines in b, the last one the blank line
// that ended it (atEOF: the input ended instead; it is added). Lines that
// end in "\r\n", several data lines or an added blank line need copies;
// otherwise Raw, Data and Name are slices of b.
func (r *Reader) event(b []byte, atEOF bool) Event {
	ev := Event{Raw: b}
	copied := r.cr || atEOF
	if copied {
		r.raw = r.raw[:0]
	}
	nData := 0
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			i = len(b) // only at EOF: the input ended without a line end
		}
		line := bytes.TrimRight(b[:i], "\r")
		b = b[min(i+1, len(b)):]
		if len(line) == 0 {
			break
		}
		if copied {
			start := len(r.raw)
			r.raw = append(r.raw, line...)
			r.raw = append(r.raw, '\n')
			line = r.raw[start : start+len(line)]
		}
		field, value := splitField(line)
		switch string(field) {
		case "data":
			nData++
			switch nData {
			case 1:
				ev.Data = value
			case 2:
				r.data = append(append(append(r.data[:0], ev.Data...), '\n'), value...)
				ev.Data = r.data
			default:
				r.data = append(append(r.data, '\n'), value...)
				ev.Data = r.data
			}
			ev.HasData = true
		case "event":
			ev.Name = value
		}
	}
	if copied {
		r.raw = append(r.raw, '\n')
		ev.Raw = r.raw
	}
	return ev
}

// splitField splits "field: value" per the SSE spec: one optional space
// after the colon is removed; a line without a colon is a field with an
// empty value; a line starting with ':' is a comment (empty field name).
func splitField(line []byte) (field, value []byte) {
	i := bytes.IndexByte(line, ':')
	if i < 0 {
		return line, nil
	}
	field, value = line[:i], line[i+1:]
	if len(value) > 0 && value[0] == ' ' {
		value = value[1:]
	}
	return field, value
}
