package filters

import (
	"strconv"
	"sync/atomic"
	"testing"
)

// counting counts its scans.
type counting struct {
	lit
	scans atomic.Int64
}

func (c *counting) Scan(t string, s Stage) []Finding {
	c.scans.Add(1)
	return c.lit.Scan(t, s)
}

// remoteCounting is counting as a Remote filter.
type remoteCounting struct{ *counting }

func (remoteCounting) Remote() bool { return true }

func TestRunContextRemembers(t *testing.T) {
	f := &counting{lit: lit{kind: "pii", cat: "ssn", word: "SECRET", act: StageActions{Context: Redact}}}
	c := MustChain([]Filter{f}, Options{})
	const text = "an article with a SECRET inside"
	want := c.Run(text, StageContext)
	f.scans.Store(0)
	for range 3 {
		got := c.RunContext(text)
		if got.Text != want.Text || !got.Redacted || len(got.Findings) != 1 {
			t.Fatalf("RunContext = %+v, want %+v", got, want)
		}
	}
	if n := f.scans.Load(); n != 1 {
		t.Errorf("scanned %d times, want once", n)
	}

	// Bounded: past memoMaxEntries distinct texts, old ones are scanned again.
	for i := range memoMaxEntries {
		c.RunContext("text " + strconv.Itoa(i))
	}
	f.scans.Store(0)
	c.RunContext(text)
	if n := f.scans.Load(); n != 1 {
		t.Errorf("after %d other texts: scanned %d times, want 1", memoMaxEntries, n)
	}
	if l := len(c.ctxMemo.m); l > memoMaxEntries {
		t.Errorf("memo holds %d entries", l)
	}
}

func TestRunContextRemoteNotRemembered(t *testing.T) {
	f := &counting{lit: lit{kind: "safety", cat: "hate", word: "x", act: StageActions{Context: Block}}}
	c := MustChain([]Filter{remoteCounting{f}}, Options{})
	c.RunContext("a text")
	c.RunContext("a text")
	if n := f.scans.Load(); n != 2 {
		t.Errorf("remote filter scanned %d times, want 2", n)
	}
}
