package sse

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
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

func FuzzReader(f *testing.F) {
	f.Add([]byte("data: {\"id\":\"\",\"choices\":[]}\n\ndata: [DONE]\n\n"))
	f.Add([]byte("event: x\r\ndata: a\r\ndata: b\r\n\r\n"))
	f.Add([]byte(": c\n\n\n\ndata\n\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
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
	r := NewReader(br, 0)
	for b.Loop() {
		br.Reset(stream)
		r.br.Reset(br)
		for {
			if _, err := r.Next(); err != nil {
				break
			}
		}
	}
}
