package sse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"unsafe"
)

func readAll(t testing.TB, r *Reader) ([]string, error) {
	t.Helper()
	var got []string
	for {
		ev, err := r.Next()
		if err != nil {
			if err == io.EOF {
				return got, nil
			}
			return got, err
		}
		got = append(got, string(ev.Data))
	}
}

func TestReaderAzureStream(t *testing.T) {
	stream := "data: {\"id\":\"\",\"choices\":[]}\n\n" +
		"data: {\"id\":\"a\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\r\n\r\n" +
		": keep-alive\n\n" +
		"\n\n" +
		"event: update\ndata: line1\ndata: line2\n\n" +
		"data: [DONE]\n\n"
	r := NewReader(strings.NewReader(stream), 0)

	ev, err := r.Next()
	if err != nil || string(ev.Data) != `{"id":"","choices":[]}` || !ev.HasData {
		t.Fatalf("first event = %q, %v", ev.Data, err)
	}
	if string(ev.Raw) != "data: {\"id\":\"\",\"choices\":[]}\n\n" {
		t.Fatalf("raw = %q", ev.Raw)
	}
	ev, _ = r.Next()
	if string(ev.Raw) != "data: {\"id\":\"a\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n" {
		t.Fatalf("CRLF not normalised: %q", ev.Raw)
	}
	ev, _ = r.Next()
	if ev.HasData || string(ev.Raw) != ": keep-alive\n\n" {
		t.Fatalf("comment event = %+v", ev)
	}
	ev, _ = r.Next()
	if string(ev.Name) != "update" || string(ev.Data) != "line1\nline2" {
		t.Fatalf("multi-line event = name %q data %q", ev.Name, ev.Data)
	}
	ev, _ = r.Next()
	if !ev.Done() {
		t.Fatalf("want [DONE], got %q", ev.Data)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("want EOF, got %v", err)
	}
}

func TestReaderFinalEventWithoutBlankLine(t *testing.T) {
	got, err := readAll(t, NewReader(strings.NewReader("data: a\n\ndata: [DONE]\n"), 0))
	if err != nil || len(got) != 2 || got[1] != "[DONE]" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestReaderCutMidLine(t *testing.T) {
	got, err := readAll(t, NewReader(strings.NewReader("data: a\n\ndata: {\"cho"), 0))
	if !errors.Is(err, io.ErrUnexpectedEOF) || len(got) != 1 {
		t.Fatalf("got %q, %v; want one event then ErrUnexpectedEOF", got, err)
	}
}

func TestReaderEventTooLarge(t *testing.T) {
	big := "data: " + strings.Repeat("x", 10000) + "\n\n"
	_, err := readAll(t, NewReader(strings.NewReader(big), 1024))
	if !errors.Is(err, ErrEventTooLarge) {
		t.Fatalf("want ErrEventTooLarge, got %v", err)
	}
	// Many small lines in one event are bounded too.
	many := strings.Repeat("data: xxxxxxxxxx\n", 200) + "\n"
	_, err = readAll(t, NewReader(strings.NewReader(many), 1024))
	if !errors.Is(err, ErrEventTooLarge) {
		t.Fatalf("want ErrEventTooLarge for many lines, got %v", err)
	}
}

func TestReaderLongLineAcrossBuffer(t *testing.T) {
	payload := strings.Repeat("y", 9000)
	got, err := readAll(t, NewReader(strings.NewReader("data: "+payload+"\n\n"), 0))
	if err != nil || len(got) != 1 || got[0] != payload {
		t.Fatalf("long line: %d events, err %v", len(got), err)
	}
}

func TestFieldParsing(t *testing.T) {
	for _, tc := range []struct{ line, field, value string }{
		{"data: x", "data", "x"},
		{"data:x", "data", "x"},
		{"data:  x", "data", " x"},
		{"data", "data", ""},
		{": comment", "", "comment"},
	} {
		f, v := splitField([]byte(tc.line))
		if string(f) != tc.field || string(v) != tc.value {
			t.Errorf("splitField(%q) = %q, %q", tc.line, f, v)
		}
	}
}

// oneByteReader delivers the stream a byte at a time, the worst case of
// TCP segmentation.
type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

func TestReaderSegmentationIndependent(t *testing.T) {
	stream := "data: {\"a\":1}\n\ndata: b\r\ndata: c\r\n\r\n: ping\n\ndata: [DONE]\n\n"
	want, err := readAll(t, NewReader(strings.NewReader(stream), 0))
	if err != nil {
		t.Fatal(err)
	}
	got, err := readAll(t, NewReader(oneByteReader{strings.NewReader(stream)}, 0))
	if err != nil || strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("byte-wise read differs: %q vs %q (%v)", got, want, err)
	}
}

// collect reads every event of r, copied, and the error that ended it.
func collect(r *Reader, limit int) ([]Event, error) {
	var out []Event
	for i := 0; i <= limit; i++ {
		ev, err := r.Next()
		if err != nil {
			return out, err
		}
		out = append(out, Event{Raw: bytes.Clone(ev.Raw), Data: bytes.Clone(ev.Data), Name: bytes.Clone(ev.Name), HasData: ev.HasData})
	}
	return out, errors.New("reader did not terminate")
}

// reference parses in line by line as the SSE specification reads: what
// Reader must return, however it buffers.
func reference(in []byte, max int) ([]Event, error) {
	var out []Event
	var raw, data, name []byte
	pending, hasData := false, false
	emit := func() {
		out = append(out, Event{Raw: append(raw, '\n'), Data: data, Name: name, HasData: hasData})
		raw, data, name, pending, hasData = nil, nil, nil, false, false
	}
	lines := bytes.Split(in, []byte("\n"))
	rest := lines[len(lines)-1]
	for _, l := range lines[:len(lines)-1] {
		line := bytes.TrimRight(l, "\r")
		if len(line) == 0 {
			if pending {
				emit()
			}
			continue
		}
		if len(raw)+len(line)+1 > max {
			return out, ErrEventTooLarge
		}
		pending = true
		raw = append(append(raw, line...), '\n')
		field, value := splitField(line)
		switch string(field) {
		case "data":
			if hasData {
				data = append(data, '\n')
			}
			data, hasData = append(data, value...), true
		case "event":
			name = append([]byte{}, value...)
		}
	}
	switch {
	case len(rest) > 0 && len(raw)+len(rest) > max:
		return out, ErrEventTooLarge
	case len(rest) > 0:
		return out, io.ErrUnexpectedEOF
	case pending:
		emit()
	}
	return out, io.EOF
}

func sameEvents(a, b []Event) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i].Raw, b[i].Raw) || !bytes.Equal(a[i].Data, b[i].Data) || !bytes.Equal(a[i].Name, b[i].Name) || a[i].HasData != b[i].HasData {
			return false
		}
	}
	return true
}

func FuzzReader(f *testing.F) {
	f.Add([]byte("data: {\"id\":\"\",\"choices\":[]}\n\ndata: [DONE]\n\n"))
	f.Add([]byte("event: x\r\ndata: a\r\ndata: b\r\n\r\n"))
	f.Add([]byte(": c\n\n\n\ndata\n\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		// The same events and end as the reference, read at once or a
		// byte at a time.
		want, wantErr := reference(in, 4096)
		for _, src := range []io.Reader{bytes.NewReader(in), oneByteReader{bytes.NewReader(in)}} {
			got, err := collect(NewReader(src, 4096), len(in)+1)
			if !sameEvents(got, want) || !errors.Is(err, wantErr) {
				t.Fatalf("read %s, %v; want %s, %v", show(got), err, show(want), wantErr)
			}
		}
		r := NewReader(bytes.NewReader(in), 4096)
		var raw []byte
		for i := 0; i < len(in)+1; i++ {
			ev, err := r.Next()
			if err != nil {
				return
			}
			if len(ev.Raw) > 4096+1 {
				t.Fatalf("event of %d bytes passed the 4096 limit", len(ev.Raw))
			}
			if !bytes.HasSuffix(ev.Raw, []byte("\n\n")) {
				t.Fatalf("raw event %q does not end in a blank line", ev.Raw)
			}
			raw = append(raw, ev.Raw...)
			// Re-reading a forwarded event yields the same data.
			again, err := NewReader(bytes.NewReader(ev.Raw), 0).Next()
			if err != nil || !bytes.Equal(again.Data, ev.Data) || again.HasData != ev.HasData {
				t.Fatalf("re-parse of %q: %q/%v vs %q", ev.Raw, again.Data, err, ev.Data)
			}
		}
		t.Fatalf("reader did not terminate on %d bytes", len(in))
	})
}

func BenchmarkReader(b *testing.B) {
	var sb strings.Builder
	for i := 0; i < 100; i++ {
		sb.WriteString(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"word "},"finish_reason":null,"content_filter_results":{}}]}` + "\n\n")
	}
	sb.WriteString("data: [DONE]\n\n")
	stream := sb.String()
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	br := strings.NewReader(stream)
	for b.Loop() {
		br.Reset(stream)
		r := NewReader(br, 0)
		for {
			if _, err := r.Next(); err != nil {
				break
			}
		}
	}
}

func show(evs []Event) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "[raw %q data %q name %q %v]", ev.Raw, ev.Data, ev.Name, ev.HasData)
	}
	return b.String()
}

// A stream of model-sized events costs one small buffer and no copies; a
// rare large event's buffer is dropped once it has been read.
func TestReaderBufferStaysSmall(t *testing.T) {
	chunk := `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"word "},"finish_reason":null,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}}}]}` + "\n\n"
	big := "data: " + strings.Repeat("x", 20000) + "\n\n"
	r := NewReader(oneByteReader{strings.NewReader(chunk + chunk + big + chunk + chunk)}, 0)
	inBuf := func(b []byte) bool { return within(r.buf, b) }
	for i, wantBig := range []bool{false, false, true, false, false} {
		ev, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if wantBig != (len(ev.Data) == 20000) {
			t.Fatalf("event %d: %d bytes of data", i, len(ev.Data))
		}
		if !inBuf(ev.Raw) || !inBuf(ev.Data) {
			t.Fatalf("event %d was copied", i)
		}
		if !wantBig && len(r.buf) > initialBuffer {
			t.Fatalf("event %d: buffer of %d bytes kept", i, len(r.buf))
		}
	}
}

// within reports whether b is a slice of buf's array.
func within(buf, b []byte) bool {
	if len(b) == 0 || len(buf) == 0 {
		return false
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return p >= start && p+uintptr(len(b)) <= start+uintptr(cap(buf))
}
