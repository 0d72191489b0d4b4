package caddymodule

import (
	"strings"

	"github.com/tidwall/gjson"

	"github.com/groundgate/groundgate/sse"
)

// A stream is committed to its deployment only when its first token
// arrives. Until then the gateway holds the client's headers and the
// events that came before (Azure's prompt annotations, the role delta),
// so a stream that breaks, stalls past the attempt timeout or resets
// before its first token is one more failed attempt: the next deployment
// is tried and the client sees nothing of it. After the first token the
// answer is the client's and a break ends it with an error event.

// Bounds on what is held before the first token: past them the stream is
// committed anyway rather than buffered without limit.
const (
	maxEarlyEvents = 32
	maxEarlyBytes  = 64 << 10
)

// earlyEvents reads events from rd up to and including the first that
// commits the stream (startsAnswer), copying them out of the reader's
// buffer into one of their own. An error means the stream broke before
// its first token.
func earlyEvents(rd *sse.Reader, starts func(*sse.Event) bool) ([]sse.Event, error) {
	var (
		buf   []byte
		spans []earlySpan
	)
	for {
		ev, err := rd.Next()
		if err != nil {
			return nil, err
		}
		s := earlySpan{start: len(buf), hasData: ev.HasData}
		buf = append(append(append(buf, ev.Raw...), ev.Data...), ev.Name...)
		s.raw, s.data, s.name = len(ev.Raw), len(ev.Data), len(ev.Name)
		spans = append(spans, s)
		if starts(&ev) || len(spans) >= maxEarlyEvents || len(buf) >= maxEarlyBytes {
			break
		}
	}
	out := make([]sse.Event, len(spans))
	for i, s := range spans {
		at := s.start
		out[i] = sse.Event{Raw: buf[at : at+s.raw : at+s.raw], HasData: s.hasData}
		at += s.raw
		out[i].Data = buf[at : at+s.data : at+s.data]
		at += s.data
		out[i].Name = buf[at : at+s.name : at+s.name]
	}
	return out, nil
}

// earlySpan is where one held event lies in earlyEvents' buffer.
type earlySpan struct {
	start, raw, data, name int
	hasData                bool
}

// startsAnswer reports whether an event carries part of the answer (a
// token, a tool call, a refusal, a finish reason), an error, or the end
// of the stream.
func startsAnswer(ev *sse.Event) bool {
	if !ev.HasData {
		return false
	}
	if ev.Done() {
		return true
	}
	root := gjson.ParseBytes(ev.Data)
	if root.Get("error").Exists() {
		return true
	}
	started := false
	root.Get("choices").ForEach(func(_, c gjson.Result) bool {
		if fr := c.Get("finish_reason"); fr.Exists() && fr.Type != gjson.Null {
			started = true
			return false
		}
		d := c.Get("delta")
		if s := d.Get("content"); s.Type == gjson.String && s.Str != "" {
			started = true
		} else if s := d.Get("refusal"); s.Type == gjson.String && s.Str != "" {
			started = true
		} else if d.Get("tool_calls").Exists() || d.Get("function_call").Exists() {
			started = true
		}
		return !started
	})
	return started
}

// responseStarts is startsAnswer for the Responses API's typed events: a
// delta of text, refusal or arguments, an error, or the response's end.
func responseStarts(ev *sse.Event) bool {
	if !ev.HasData {
		return false
	}
	if ev.Done() {
		return true
	}
	typ := gjson.GetBytes(ev.Data, "type").Str
	return strings.HasSuffix(typ, ".delta") || typ == "error" || terminalEvent(typ)
}

// primedReader replays the events held before the first token, then
// reads on. The held events' buffer goes once they have been replayed.
type primedReader struct {
	early []sse.Event
	rd    *sse.Reader
}

func (p *primedReader) Next() (sse.Event, error) {
	if len(p.early) > 0 {
		ev := p.early[0]
		if p.early = p.early[1:]; len(p.early) == 0 {
			p.early = nil
		}
		return ev, nil
	}
	return p.rd.Next()
}
