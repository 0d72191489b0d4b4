package budgets

import (
	"time"
)

// Counter is one limit's usage seen at an instant: the units charged to
// the window's current bucket and, for a sliding (minute) window, to the
// bucket before it. Stores read their counters into it so that every
// store decides, reports and computes waits with the same arithmetic.
type Counter struct {
	Window Window
	// Cur is the number of units charged to the current bucket.
	Cur int64
	// Prev is the number of units charged to the previous bucket; only
	// sliding windows count it.
	Prev int64
	// Elapsed is the time since the current bucket started.
	Elapsed time.Duration
	// Length is the current bucket's length (a minute, a day, a month).
	Length time.Duration
}

// NewCounter returns the counter of a limit over window w at instant now,
// given the units charged to the bucket holding now (cur) and to the one
// before it (prev).
func NewCounter(w Window, now time.Time, cur, prev int64) Counter {
	start, end := w.Bucket(now)
	return Counter{Window: w, Cur: cur, Prev: prev, Elapsed: now.Sub(start), Length: end.Sub(start)}
}

// PrevWeight returns the share of the previous bucket that still counts,
// as num/den in milliseconds: the part of the last Length that lies in
// the previous bucket, over Length. It is 0/1 for fixed windows. The
// weighted previous count is ceil(Prev*num/den).
func (c Counter) PrevWeight() (num, den int64) {
	if !c.Window.Sliding() {
		return 0, 1
	}
	den = c.Length.Milliseconds()
	if den <= 0 {
		return 0, 1
	}
	num = min(max((c.Length-c.Elapsed).Milliseconds(), 0), den)
	return num, den
}

// ceilMulDiv returns ceil(a*b/d) for a >= 0, 0 <= b <= d and d > 0,
// without overflow: a*b/d = (a/d)*b + (a%d)*b/d, where (a%d)*b < d*d.
// The Redis script computes it the same way, exactly in doubles.
func ceilMulDiv(a, b, d int64) int64 {
	if a == 0 || b == 0 {
		return 0
	}
	return (a/d)*b + ((a%d)*b+d-1)/d
}

// Used returns the units the limit counts now: Cur, plus Prev weighted by
// PrevWeight for a sliding window, rounded up.
func (c Counter) Used() int64 {
	u := c.Cur
	if c.Prev > 0 {
		num, den := c.PrevWeight()
		u += ceilMulDiv(c.Prev, num, den)
	}
	return u
}

// Admits reports whether n more units fit under limit: the usage is
// below limit and stays at or below it with n added. A spent limit admits
// nothing, not even zero units.
func (c Counter) Admits(limit, n int64) bool {
	u := c.Used()
	return u < limit && u+n <= limit
}

// Remaining returns limit minus the usage, or 0 when the limit is spent.
func (c Counter) Remaining(limit int64) int64 {
	return max(0, limit-c.Used())
}

// Reset returns the time until the usage is back to zero if nothing more
// is charged: the end of the current bucket for a fixed window, and one
// bucket later for a sliding window that counts the current bucket (its
// weight fades over the next minute). Zero when nothing counts.
func (c Counter) Reset() time.Duration {
	left := max(c.Length-c.Elapsed, 0)
	switch {
	case c.Cur > 0 && c.Window.Sliding():
		return left + c.Length
	case c.Cur > 0:
		return left
	case c.Prev > 0 && c.Window.Sliding():
		return left
	}
	return 0
}

// RetryAfter returns the least wait after which n units would fit under
// limit if nothing more were charged: zero if they fit now. When n can
// never fit (n > limit, or limit is 0) it returns the window's length, a
// deliberately long wait. For a sliding window the wait is exact to the
// millisecond.
func (c Counter) RetryAfter(limit, n int64) time.Duration {
	if c.Admits(limit, n) {
		return 0
	}
	// The usage must come down to at most b.
	b := limit - n
	if n == 0 {
		b = limit - 1
	}
	if b < 0 {
		return c.Length
	}
	left := max(c.Length-c.Elapsed, 0)
	if !c.Window.Sliding() {
		// A new bucket starts empty and n <= max.
		return left
	}
	const ms = time.Millisecond
	lenMs := c.Length.Milliseconds()
	if c.Cur <= b {
		// Wait in this bucket until the previous bucket's weighted count
		// fits in b-Cur: ceil(Prev*rem/len) <= k  <=>  rem <= k*len/Prev.
		k := b - c.Cur
		target := min(k*lenMs/c.Prev, lenMs) // c.Prev > 0, or it would fit now
		num, _ := c.PrevWeight()
		return time.Duration(num-target) * ms
	}
	// The current bucket alone is too much: wait for the next one, where
	// it becomes the previous bucket and fades until ceil(Cur*rem/len) <= b.
	target := b * lenMs / c.Cur
	return left + time.Duration(lenMs-target)*ms
}

// Status returns the limit's status from this counter.
func (c Counter) Status(l Limit) Status {
	return Status{Limit: l, Remaining: c.Remaining(l.Max), Reset: c.Reset()}
}

// Check decides a reservation from the counters read before it
// (counters[i] for charges[i]): nil when every charge fits, otherwise the
// *Denied to return. Charges to the same limit (same Key and Window) in
// one reservation add up. The Denied carries the statuses before the
// reservation and names the refused limit as documented on [Denied].
func Check(charges []Charge, counters []Counter) *Denied {
	var d *Denied
	for i := range charges {
		ch := &charges[i]
		n := ch.N
		for j := range i {
			if charges[j].Limit.Key == ch.Limit.Key && charges[j].Limit.Window == ch.Limit.Window {
				n += charges[j].N
			}
		}
		c := counters[i]
		if c.Admits(ch.Limit.Max, n) {
			continue
		}
		wait := c.RetryAfter(ch.Limit.Max, n)
		if d == nil {
			d = &Denied{Limit: ch.Limit, RetryAfter: wait}
			continue
		}
		// Prefer a quota (403) over a rate (429), then the longest wait.
		if (ch.Limit.Quota && !d.Limit.Quota) || (ch.Limit.Quota == d.Limit.Quota && wait > d.RetryAfter) {
			d.Limit = ch.Limit
		}
		d.RetryAfter = max(d.RetryAfter, wait)
	}
	if d != nil {
		d.Status = make([]Status, len(charges))
		for i := range charges {
			d.Status[i] = counters[i].Status(charges[i].Limit)
		}
	}
	return d
}
