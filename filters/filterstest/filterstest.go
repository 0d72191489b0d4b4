// Package filterstest checks filters against the StreamScanner contract:
// streaming a text in any pieces gives what scanning it whole gives.
package filterstest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/groundgate/groundgate/filters"
)

// Stream pushes chunks through a new StreamScanner of c at stage s and
// returns everything emitted, the final verdict and the findings.
func Stream(c *filters.Chain, s filters.Stage, chunks []string) (string, filters.Verdict, []filters.Finding) {
	sc := c.NewStreamScanner(s)
	var b strings.Builder
	v := filters.Pass
	for _, ch := range chunks {
		var e string
		e, v = sc.Push(ch)
		b.WriteString(e)
		if v == filters.Blocked {
			break
		}
	}
	if v != filters.Blocked {
		var e string
		e, v = sc.Close()
		b.WriteString(e)
	}
	return b.String(), v, sc.Findings()
}

// Splits returns the texts's split at every byte i (two chunks), then
// random splits into many pieces.
func Splits(text string, rnd *rand.Rand, random int) [][]string {
	var out [][]string
	for i := 0; i <= len(text); i++ {
		out = append(out, []string{text[:i], text[i:]})
	}
	for n := 0; n < random; n++ {
		var chunks []string
		rest := text
		maxc := 1 + rnd.IntN(12)
		for rest != "" {
			k := 1 + rnd.IntN(maxc)
			k = min(k, len(rest))
			chunks = append(chunks, rest[:k])
			rest = rest[k:]
		}
		out = append(out, chunks)
	}
	return out
}

// Check streams text through c at stage s split at every byte and in
// random pieces, and fails t unless each stream gives Run's result: the
// same emitted text and findings; or, when Run blocks, a block, with
// nothing emitted from the first blocked finding on. It returns Run's
// result. Redaction labels are assumed to be the default.
func Check(t testing.TB, c *filters.Chain, s filters.Stage, text string, rnd *rand.Rand, random int) filters.Result {
	t.Helper()
	whole := c.Run(text, s)
	want := key(whole.Findings)
	var safe string // the longest output a blocked stream may emit
	if whole.Blocked {
		safe = prefixBeforeBlock(text, whole.Findings)
	}
	for _, chunks := range Splits(text, rnd, random) {
		got, v, fs := Stream(c, s, chunks)
		if !whole.Blocked {
			if v != filters.Pass {
				t.Fatalf("split %q: stream blocked, whole text did not", chunks)
			}
			if got != whole.Text {
				t.Fatalf("split %q:\n stream emitted %q\n whole text gave %q", chunks, got, whole.Text)
			}
			if k := key(fs); k != want {
				t.Fatalf("split %q:\n stream findings %s\n whole findings %s", chunks, k, want)
			}
			continue
		}
		if v != filters.Blocked {
			t.Fatalf("split %q: whole text blocked, stream did not (emitted %q)", chunks, got)
		}
		if !strings.HasPrefix(safe, got) {
			t.Fatalf("split %q: blocked stream emitted %q, beyond the safe prefix %q", chunks, got, safe)
		}
	}
	return whole
}

// key renders findings in a canonical order.
func key(fs []filters.Finding) string {
	ss := make([]string, len(fs))
	for i, f := range fs {
		ss[i] = fmt.Sprintf("%s/%s[%d:%d]%s@%.4f", f.Filter, f.Category, f.Start, f.End, f.Action, f.Score)
	}
	slices.Sort(ss)
	return strings.Join(ss, " ")
}

// prefixBeforeBlock returns the redacted output for the text before the
// first block finding (a redaction span containing the block's start
// counts whole: its label may have been emitted).
func prefixBeforeBlock(text string, fs []filters.Finding) string {
	bs := len(text)
	var red []filters.Finding
	for _, f := range fs {
		switch f.Action {
		case filters.Block:
			bs = min(bs, f.Start)
		case filters.Redact:
			if f.End > f.Start {
				red = append(red, f)
			}
		}
	}
	slices.SortFunc(red, func(a, b filters.Finding) int {
		switch {
		case a.Start != b.Start:
			return a.Start - b.Start
		case a.End != b.End:
			return b.End - a.End
		}
		if c := strings.Compare(a.Filter, b.Filter); c != 0 {
			return c
		}
		return strings.Compare(a.Category, b.Category)
	})
	var b strings.Builder
	pos := 0
	for i := 0; i < len(red) && red[i].Start < bs; {
		r := red[i]
		b.WriteString(text[pos:r.Start])
		b.WriteString("[REDACTED:" + r.Category + "]")
		end := r.End
		for i++; i < len(red) && red[i].Start < end; i++ {
			end = max(end, red[i].End)
		}
		pos = end
	}
	if pos < bs {
		b.WriteString(text[pos:bs])
	}
	return b.String()
}
