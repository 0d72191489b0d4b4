package tokens

import (
	"strconv"
	"strings"
	"testing"
)

// benchText is 1 KB of ordinary English prose with some punctuation and
// numbers.
var benchText = func() string {
	s := strings.Repeat("The quarterly report shows revenue grew 12.5% to $4.2M, while costs fell; "+
		"customers in Europe (especially Germany) drove most of the growth. ", 10)
	return s[:1024]
}()

func BenchmarkCount(b *testing.B) {
	for _, name := range []string{"o200k_base", "cl100k_base"} {
		e := mustEncoding(b, name)
		uncached := *e
		uncached.cache = nil
		b.Run(name+"/uncached", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(benchText)))
			for b.Loop() {
				uncached.Count(benchText)
			}
		})
		b.Run(name+"/cached", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(benchText)))
			for b.Loop() {
				e.Count(benchText)
			}
		})
		b.Run(name+"/tiktoken-go", func(b *testing.B) {
			tk, err := tiktokenGo()
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(benchText)))
			for b.Loop() {
				_ = len(tk[name].EncodeOrdinary(benchText))
			}
		})
	}
}

// BenchmarkCountChat: a typical 5-message request with a 2 KB system prompt
// and two tools. "cached" is the steady state of a gateway whose clients
// repeat their system prompt and tools.
func BenchmarkCountChat(b *testing.B) {
	body := benchChatBody()
	e := mustEncoding(b, "o200k_base")
	uncached := *e
	uncached.cache = nil
	b.Run("uncached", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, err := uncached.CountChat(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, err := e.CountChat(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCountAssembled counts prompts assembled from recurring
// paragraphs (a meta prompt, articles) and a question that is new each
// time: only the new paragraph is tokenized.
func BenchmarkCountAssembled(b *testing.B) {
	e := mustEncoding(b, "o200k_base")
	fixed := strings.Repeat(benchText+"\n\n", 4)
	b.ReportAllocs()
	b.SetBytes(int64(len(fixed) + 80))
	i := 0
	for b.Loop() {
		i++
		e.Count(fixed + "Question " + strconv.Itoa(i) + ": my soundbar stopped producing sound after the update, what now?")
	}
}
