package textmatch

import (
	"strings"
	"testing"
)

// Despace runs on every input text: on ordinary prose it must cost a
// fraction of a scan and allocate nothing.
func BenchmarkDespaceProse(b *testing.B) {
	text := strings.Repeat("Hi, I ordered the X200 wireless headphones on March 3rd and they arrived with a cracked case. Could you send a replacement? ", 17)[:2048]
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := Despace(text); ok {
			b.Fatal("prose despaced")
		}
	}
}
