package budgets

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestBucket(t *testing.T) {
	for _, tc := range []struct {
		w          Window
		at         string
		start, end string
	}{
		{Minute, "2026-03-14T12:00:15.5Z", "2026-03-14T12:00:00Z", "2026-03-14T12:01:00Z"},
		{Minute, "2026-03-14T12:00:15+05:30", "2026-03-14T06:30:00Z", "2026-03-14T06:31:00Z"},
		{Day, "2026-03-14T23:59:59.999Z", "2026-03-14T00:00:00Z", "2026-03-15T00:00:00Z"},
		{Day, "2026-03-15T08:00:00+09:00", "2026-03-14T00:00:00Z", "2026-03-15T00:00:00Z"},
		{Month, "2024-02-29T12:00:00Z", "2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z"},
		{Month, "2026-12-31T23:59:59Z", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"},
		{Month, "2027-01-01T02:00:00+03:00", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"},
	} {
		s, e := tc.w.Bucket(mustTime(t, tc.at))
		if !s.Equal(mustTime(t, tc.start)) || !e.Equal(mustTime(t, tc.end)) {
			t.Errorf("%s.Bucket(%s) = [%v, %v), want [%s, %s)", tc.w, tc.at, s, e, tc.start, tc.end)
		}
		if s.Location() != time.UTC {
			t.Errorf("%s.Bucket(%s) not in UTC", tc.w, tc.at)
		}
	}
	if s, e := Window("hour").Bucket(time.Now()); !s.IsZero() || !e.IsZero() {
		t.Errorf("unknown window has a bucket")
	}
}

func TestCounterArithmetic(t *testing.T) {
	at := func(s string) time.Time { return mustTime(t, s) }
	for _, tc := range []struct {
		name       string
		c          Counter
		max, n     int64
		used       int64
		admits     bool
		reset      time.Duration
		retryAfter time.Duration
	}{
		{"empty", NewCounter(Minute, at("2026-01-01T00:00:10Z"), 0, 0), 100, 100, 0, true, 0, 0},
		{"cur only", NewCounter(Minute, at("2026-01-01T00:00:10Z"), 40, 0), 100, 60, 40, true, 110 * time.Second, 0},
		{"cur full", NewCounter(Minute, at("2026-01-01T00:00:10Z"), 100, 0), 100, 1, 100, false, 110 * time.Second,
			// next bucket, then ceil(100*rem/60000) <= 99: rem <= 59400ms
			50*time.Second + 600*time.Millisecond},
		{"prev half", NewCounter(Minute, at("2026-01-01T00:00:30Z"), 0, 100), 100, 50, 50, true, 30 * time.Second, 0},
		{"prev half wait", NewCounter(Minute, at("2026-01-01T00:00:30Z"), 0, 100), 100, 60, 50, false, 30 * time.Second,
			// ceil(100*rem/60000) <= 40: rem <= 24000ms
			6 * time.Second},
		{"prev wait", NewCounter(Minute, at("2026-01-01T00:00:30Z"), 10, 100), 100, 60, 60, false, 90 * time.Second,
			// 10 + ceil(100*rem/60000) <= 40: rem <= 18000ms
			12 * time.Second},
		{"prev rounding up", NewCounter(Minute, at("2026-01-01T00:00:59.999Z"), 0, 1), 1, 1, 1, false, time.Millisecond, time.Millisecond},
		{"spent zero charge", NewCounter(Day, at("2026-01-01T18:00:00Z"), 5, 0), 5, 0, 5, false, 6 * time.Hour, 6 * time.Hour},
		{"day prev ignored", NewCounter(Day, at("2026-01-01T18:00:00Z"), 5, 1000), 10, 5, 5, true, 6 * time.Hour, 0},
		{"too large", NewCounter(Minute, at("2026-01-01T00:00:10Z"), 0, 0), 100, 101, 0, false, 0, time.Minute},
		{"month too large", NewCounter(Month, at("2026-02-10T00:00:00Z"), 0, 0), 0, 0, 0, false, 0, 28 * 24 * time.Hour},
	} {
		if got := tc.c.Used(); got != tc.used {
			t.Errorf("%s: Used = %d, want %d", tc.name, got, tc.used)
		}
		if got := tc.c.Admits(tc.max, tc.n); got != tc.admits {
			t.Errorf("%s: Admits = %v, want %v", tc.name, got, tc.admits)
		}
		if got := tc.c.Reset(); got != tc.reset {
			t.Errorf("%s: Reset = %v, want %v", tc.name, got, tc.reset)
		}
		if got := tc.c.RetryAfter(tc.max, tc.n); got != tc.retryAfter {
			t.Errorf("%s: RetryAfter = %v, want %v", tc.name, got, tc.retryAfter)
		}
		if got, want := tc.c.Remaining(tc.max), max(0, tc.max-tc.used); got != want {
			t.Errorf("%s: Remaining = %d, want %d", tc.name, got, want)
		}
	}
}

func TestCheck(t *testing.T) {
	now := mustTime(t, "2026-01-01T12:00:00Z")
	rate := Limit{Key: "r", Window: Minute, Max: 100}
	q := Limit{Key: "q", Window: Day, Max: 100, Quota: true}
	other := Limit{Key: "r", Window: Day, Max: 100}
	cs := func(curs ...int64) []Counter {
		var out []Counter
		ws := []Window{Minute, Day, Day, Minute}
		for i, c := range curs {
			out = append(out, NewCounter(ws[i], now, c, 0))
		}
		return out
	}
	if d := Check([]Charge{{rate, 50}, {q, 50}, {other, 50}}, cs(50, 50, 50)); d != nil {
		t.Fatalf("fits, but denied: %v", d)
	}
	// Same limit twice adds up; the same key in another window does not.
	if d := Check([]Charge{{rate, 30}, {other, 30}, {other, 30}, {rate, 30}}, cs(50, 30, 30, 50)); d == nil || d.Limit != rate {
		t.Fatalf("duplicate charges: %v", d)
	}
	// The quota wins over the rate, the wait is the longest.
	d := Check([]Charge{{rate, 60}, {q, 60}}, cs(50, 50))
	if d == nil || d.Limit != q || d.RetryAfter != 12*time.Hour {
		t.Fatalf("quota and rate: %+v", d)
	}
	if len(d.Status) != 2 || d.Status[0].Remaining != 50 || d.Status[1].Remaining != 50 {
		t.Fatalf("statuses: %+v", d.Status)
	}
	msg := d.Error()
	if !strings.Contains(msg, `quota "q"`) || !strings.Contains(msg, "12h0m0s") {
		t.Errorf("Error() = %q", msg)
	}
	var target *Denied
	if !errors.As(error(d), &target) {
		t.Error("Denied does not match errors.As")
	}
}

func TestValidate(t *testing.T) {
	good := Limit{Key: "k", Window: Day, Max: 0}
	if err := ValidateCharges([]Charge{{good, 0}, {good, MaxUnits}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Charge{
		{Limit{Key: "", Window: Day, Max: 1}, 1},
		{Limit{Key: "k", Window: "week", Max: 1}, 1},
		{Limit{Key: "k", Window: Day, Max: -1}, 1},
		{Limit{Key: "k", Window: Day, Max: MaxUnits + 1}, 1},
		{good, -1},
		{good, MaxUnits + 1},
	} {
		if err := ValidateCharges([]Charge{{good, 1}, c}); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

func TestReservationDeltasAndFinish(t *testing.T) {
	r := &Reservation{Charges: []Charge{{Limit{Key: "a"}, 100}, {Limit{Key: "b"}, 10}}}
	d, err := r.Deltas([]int64{150, -3})
	if err != nil || d[0] != 50 || d[1] != -10 {
		t.Fatalf("Deltas = %v, %v", d, err)
	}
	if d, _ := r.Deltas([]int64{1 << 62, 0}); d[0] != MaxUnits-100 {
		t.Errorf("huge actual not clamped: %d", d[0])
	}
	if _, err := r.Deltas([]int64{1}); err == nil {
		t.Error("length mismatch accepted")
	}
	if r.Finished() || !r.Finish() || r.Finish() || !r.Finished() {
		t.Error("Finish is not once-only")
	}
}

// advance returns the counter at c's instant plus d, if nothing more is
// charged: buckets roll, a sliding window's current bucket becomes the
// previous one. now is the instant c was built for.
func advance(c Counter, now time.Time, d time.Duration) Counter {
	later := now.Add(d)
	s0, _ := c.Window.Bucket(now)
	s1, _ := c.Window.Bucket(later)
	cur, prev := c.Cur, c.Prev
	switch {
	case s1.Equal(s0):
	case c.Window.Sliding() && s1.Equal(s0.Add(time.Minute)):
		cur, prev = 0, cur
	default:
		cur, prev = 0, 0
	}
	return NewCounter(c.Window, later, cur, prev)
}

// FuzzCounter checks the arithmetic every store shares: remaining stays in
// [0, max]; usage never grows without charges; RetryAfter is the least
// wait (to the millisecond) after which the charge fits.
func FuzzCounter(f *testing.F) {
	f.Add(uint8(0), int64(100), int64(0), int64(29000), int64(100), int64(10))
	f.Add(uint8(0), int64(10), int64(100), int64(30000), int64(100), int64(60))
	f.Add(uint8(0), int64(0), int64(1), int64(59999), int64(1), int64(1))
	f.Add(uint8(1), int64(5), int64(0), int64(64800000), int64(5), int64(0))
	f.Add(uint8(2), int64(9), int64(0), int64(100), int64(10), int64(2))
	f.Add(uint8(0), int64(1<<40), int64(1<<40), int64(1), int64(1<<41), int64(1))
	f.Fuzz(func(t *testing.T, wsel uint8, cur, prev, elapsedMs, limit, n int64) {
		const big = MaxUnits + 1
		cur, prev, limit, n = abs(cur)%big, abs(prev)%big, abs(limit)%big, abs(n)%big
		w := []Window{Minute, Day, Month}[wsel%3]
		base := map[Window]time.Time{
			Minute: time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC),
			Day:    time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC),
			Month:  time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC),
		}[w]
		_, end := w.Bucket(base)
		now := base.Add(time.Duration(abs(elapsedMs)%end.Sub(base).Milliseconds()) * time.Millisecond)
		c := NewCounter(w, now, cur, prev)

		if r := c.Remaining(limit); r < 0 || r > limit {
			t.Fatalf("Remaining = %d outside [0, %d]", r, limit)
		}
		if u := c.Used(); u < cur || (w.Sliding() && u > cur+prev) || (!w.Sliding() && u != cur) {
			t.Fatalf("Used = %d for cur %d prev %d", u, cur, prev)
		}
		for _, d := range []time.Duration{time.Millisecond, time.Second, time.Minute, time.Hour, 40 * 24 * time.Hour} {
			if later := advance(c, now, d); later.Used() > c.Used() {
				t.Fatalf("usage grew from %d to %d over %v without charges", c.Used(), later.Used(), d)
			}
		}
		if rst := c.Reset(); advance(c, now, rst).Used() != 0 {
			t.Fatalf("usage %d still counts after Reset %v", advance(c, now, rst).Used(), rst)
		}
		wait := c.RetryAfter(limit, n)
		if c.Admits(limit, n) {
			if wait != 0 {
				t.Fatalf("fits now but RetryAfter = %v", wait)
			}
			return
		}
		if wait <= 0 {
			t.Fatalf("denied with RetryAfter %v", wait)
		}
		never := n > limit || limit == 0
		if never {
			if wait != c.Length {
				t.Fatalf("never fits, RetryAfter = %v, want the window length %v", wait, c.Length)
			}
			return
		}
		if !advance(c, now, wait).Admits(limit, n) {
			t.Fatalf("still denied after RetryAfter %v", wait)
		}
		if wait >= time.Millisecond && advance(c, now, wait-time.Millisecond).Admits(limit, n) {
			t.Fatalf("RetryAfter %v is not the least wait", wait)
		}
	})
}

func TestCeilMulDiv(t *testing.T) {
	for _, tc := range [][4]int64{
		{0, 5, 10, 0}, {5, 0, 10, 0}, {1, 1, 60000, 1}, {100, 30000, 60000, 50},
		{290, 59000, 60000, 286}, {60000, 60000, 60000, 60000}, {60001, 1, 60000, 2},
		{MaxUnits, 59999, 60000, MaxUnits - MaxUnits/60000 + 0}, // exact, no overflow
	} {
		if got := ceilMulDiv(tc[0], tc[1], tc[2]); got != tc[3] {
			t.Errorf("ceilMulDiv(%d, %d, %d) = %d, want %d", tc[0], tc[1], tc[2], got, tc[3])
		}
	}
}

func abs(v int64) int64 {
	if v < 0 {
		if v == -v { // MinInt64
			return 0
		}
		return -v
	}
	return v
}
