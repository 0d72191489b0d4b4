package filters_test

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/groundgate/groundgate/filters"
	"github.com/groundgate/groundgate/filters/filterstest"
	"github.com/groundgate/groundgate/plugins/filters/blocklist"
	"github.com/groundgate/groundgate/plugins/filters/pii"
	"github.com/groundgate/groundgate/plugins/filters/regex"
)

// outputChain is a realistic output-stage chain: PII redaction, a
// competitor blocklist, an internal-code regex and a blocked secret.
func outputChain(t testing.TB) *filters.Chain {
	t.Helper()
	p, err := pii.New(pii.PII{Actions: filters.StageActions{Output: filters.Redact}})
	if err != nil {
		t.Fatal(err)
	}
	bl, err := blocklist.New("competitors", []string{"acme corp", "globex", "initech"}, filters.StageActions{Output: filters.Redact}, true)
	if err != nil {
		t.Fatal(err)
	}
	rx, err := regex.New(filters.StageActions{Output: filters.Redact},
		regex.Pattern{Name: "internal_ticket", Pattern: `\bINT-\d{6}\b`},
		regex.Pattern{Name: "secret", Pattern: `sk-[A-Za-z0-9]{24}`, Actions: &filters.StageActions{Output: filters.Block}})
	if err != nil {
		t.Fatal(err)
	}
	return filters.MustChain([]filters.Filter{p, bl, rx}, filters.Options{})
}

const answer = "Thanks for reaching out, Jane. I'm sorry the X200 headphones arrived with a cracked case. " +
	"I've opened replacement case INT-004512 for order ORD-20240303-7781. A prepaid return label will be sent to " +
	"jane.doe@example.com, and our courier may call you on +44 20 7946 0958 to arrange pickup. Unlike Acme Corp, we " +
	"cover accidental damage in the first 30 days. If you would rather have a refund, it goes back to the card ending " +
	"1111 within 5–7 business days (we never store the full number 4111 1111 1111 1111 in notes). Firmware 2.3.14 is " +
	"current; if the left earbud still won't charge after the replacement, reset it by holding both buttons for 10 " +
	"seconds. Is there anything else I can help with?"

func TestChainStreamEqualsWhole(t *testing.T) {
	c := outputChain(t)
	rnd := rand.New(rand.NewPCG(21, 22))
	r := filterstest.Check(t, c, filters.StageOutput, answer, rnd, 300)
	for _, want := range []string{"[REDACTED:internal_ticket]", "[REDACTED:email]", "[REDACTED:phone]", "[REDACTED:competitors]", "[REDACTED:credit_card]"} {
		if !strings.Contains(r.Text, want) {
			t.Errorf("missing %s in %q", want, r.Text)
		}
	}
	blocked := answer[:300] + " and the key sk-ABCDEFGHIJKLMNOPQRSTUVWX is yours. " + answer[300:]
	if r := filterstest.Check(t, c, filters.StageOutput, blocked, rnd, 300); !r.Blocked {
		t.Error("secret not blocked")
	}
}

// chunks splits text like a model's stream: pieces of 1 to 8 bytes
// (about a token), at rune boundaries.
func chunks(text string, rnd *rand.Rand) []string {
	var out []string
	for text != "" {
		k := min(1+rnd.IntN(8), len(text))
		for k < len(text) && text[k]&0xC0 == 0x80 {
			k++
		}
		out = append(out, text[:k])
		text = text[k:]
	}
	return out
}

// TestWindowDelay measures what the hold-back window costs: how many
// characters are held after each chunk, and the time per Push.
func TestWindowDelay(t *testing.T) {
	full := outputChain(t)
	for _, tc := range []struct {
		name string
		c    *filters.Chain
	}{
		{"pii+blocklist", filters.MustChain(full.Filters()[:2], filters.Options{})},
		{"pii+blocklist+regex", full},
	} {
		t.Run(tc.name, func(t *testing.T) { windowDelay(t, tc.c) })
	}
}

func windowDelay(t *testing.T, c *filters.Chain) {
	rnd := rand.New(rand.NewPCG(5, 5))
	var held []int
	var elapsed time.Duration
	n := 0
	for run := 0; run < 50; run++ {
		sc := c.NewStreamScanner(filters.StageOutput)
		for _, ch := range chunks(answer, rnd) {
			start := time.Now()
			_, v := sc.Push(ch)
			elapsed += time.Since(start)
			n++
			if v != filters.Pass {
				t.Fatal("blocked")
			}
			held = append(held, sc.Held())
		}
		sc.Close()
	}
	slices.Sort(held)
	sum := 0
	for _, h := range held {
		sum += h
	}
	t.Logf("hold-back over %d chunks of 1-8 bytes: mean %.1f bytes, p50 %d, p95 %d, max %d; %.2f µs per Push (wall, incl. timer)",
		len(held), float64(sum)/float64(len(held)), held[len(held)/2], held[len(held)*95/100], held[len(held)-1],
		float64(elapsed.Microseconds())/float64(n))
	if held[len(held)-1] > 400 {
		t.Errorf("max hold-back %d bytes exceeds the PII window", held[len(held)-1])
	}
}

func BenchmarkStreamPush(b *testing.B) {
	c := outputChain(b)
	cs := chunks(answer, rand.New(rand.NewPCG(1, 1)))
	b.ReportAllocs()
	b.ResetTimer()
	pushes := 0
	var buf []byte
	for b.Loop() {
		sc := c.NewStreamScanner(filters.StageOutput)
		for _, ch := range cs {
			buf, _ = sc.PushAppend(buf[:0], ch)
		}
		sc.CloseAppend(buf[:0])
		pushes += len(cs)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(pushes), "ns/chunk")
	b.ReportMetric(float64(len(cs)), "chunks/op")
}

func BenchmarkRunOutputChain(b *testing.B) {
	c := outputChain(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(answer)))
	for b.Loop() {
		c.Run(answer, filters.StageOutput)
	}
}

// FuzzStreamScanner: for any text, streaming it in random pieces through
// the realistic chain gives the whole-text result.
func FuzzStreamScanner(f *testing.F) {
	f.Add(answer[:200], uint64(1))
	f.Add("mail a@b.co or +1 (415) 555-0100, INT-123456, acme corp", uint64(2))
	f.Add("sk-ABCDEFGHIJKLMNOPQRSTUVWX", uint64(3))
	c := outputChain(f)
	f.Fuzz(func(t *testing.T, text string, seed uint64) {
		rnd := rand.New(rand.NewPCG(seed, seed))
		whole := c.Run(text, filters.StageOutput)
		for n := 0; n < 3; n++ {
			var cs []string
			rest := text
			for rest != "" {
				k := min(1+rnd.IntN(10), len(rest))
				cs = append(cs, rest[:k])
				rest = rest[k:]
			}
			got, v, _ := filterstest.Stream(c, filters.StageOutput, cs)
			if whole.Blocked {
				if v != filters.Blocked {
					t.Fatalf("%q: whole blocked, stream not", cs)
				}
				continue
			}
			if v != filters.Pass || got != whole.Text {
				t.Fatalf("%q: stream %q (%v), whole %q", cs, got, v, whole.Text)
			}
		}
	})
}
