// Package sse reads Server-Sent Events (text/event-stream) as they arrive,
// one event at a time, without buffering the whole stream. It keeps each
// event's raw bytes so a proxy can forward events it does not change
// byte for byte.
package sse

import (
	"bufio"
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

// Reader parses events from an io.Reader.
type Reader struct {
	br      *bufio.Reader
	max     int
	raw     []byte
	data    []byte
	name    []byte
	pending bool // raw holds lines of an event not yet dispatched
}

// NewReader returns a Reader with the given event size limit (<= 0 means
// DefaultMaxEventSize).
func NewReader(r io.Reader, maxEventSize int) *Reader {
	if maxEventSize <= 0 {
		maxEventSize = DefaultMaxEventSize
	}
	return &Reader{br: bufio.NewReaderSize(r, 4096), max: maxEventSize}
}

// Next returns the next event. Comment-only events (": keep-alive") are
// returned too, with HasData false, so a proxy can forward them. At the end
// of the stream it returns io.EOF; a final event without its blank line is
// dispatched first (servers that close right after "data: [DONE]\n" exist).
// A stream cut mid-line returns io.ErrUnexpectedEOF.
func (r *Reader) Next() (Event, error) {
	r.raw = r.raw[:0]
	r.data = r.data[:0]
	r.name = r.name[:0]
	r.pending = false
	hasData := false
	for {
		line, err := r.readLine()
		if err != nil {
			if err == io.EOF && r.pending {
				r.raw = append(r.raw, '\n')
				return r.event(hasData), nil
			}
			return Event{}, err
		}
		if len(line) == 0 {
			if !r.pending {
				continue // stray blank lines between events
			}
			r.raw = append(r.raw, '\n')
			return r.event(hasData), nil
		}
		r.pending = true
		if len(r.raw)+len(line)+1 > r.max {
			return Event{}, ErrEventTooLarge
		}
		r.raw = append(r.raw, line...)
		r.raw = append(r.raw, '\n')
		field, value := splitField(line)
		switch string(field) {
		case "data":
			if hasData {
				r.data = append(r.data, '\n')
			}
			r.data = append(r.data, value...)
			hasData = true
		case "event":
			r.name = append(r.name[:0], value...)
		}
	}
}

func (r *Reader) event(hasData bool) Event {
	return Event{Raw: r.raw, Data: r.data, Name: r.name, HasData: hasData}
}

// readLine returns one line without its terminator. Lines end in "\n" or
// "\r\n" (trailing "\r"s are dropped); a bare "\r" inside a line, which the
// SSE spec allows as a terminator and no LLM API sends, is kept as content. The returned slice is valid until the next call.
func (r *Reader) readLine() ([]byte, error) {
	var line []byte
	for {
		b, err := r.br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			if len(line)+len(b) > r.max {
				return nil, ErrEventTooLarge
			}
			line = append(line, b...)
			continue
		}
		if err != nil {
			if len(b) > 0 || len(line) > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if line != nil {
			line = append(line, b...)
		} else {
			line = b
		}
		line = bytes.TrimRight(line[:len(line)-1], "\r")
		return line, nil
	}
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
