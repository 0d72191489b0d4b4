// Package storetest is the conformance suite every budgets.Store runs in
// its own tests: the same decisions, statuses, waits and window rules,
// whatever keeps the counters. It also holds the concurrency test that
// proves reservations never overshoot a limit.
package storetest

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/groundgate/groundgate/budgets"
)

// Clock is a settable clock for stores under test.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock showing t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// Add moves the clock by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Factory returns a new, empty store that reads the time from now.
type Factory func(t *testing.T, now func() time.Time) budgets.Store

// T0 is the suite's starting instant: a Saturday, 15 s into a minute.
var T0 = time.Date(2026, 3, 14, 12, 0, 15, 0, time.UTC)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

// Run runs the conformance suite against stores from newStore.
func Run(t *testing.T, newStore Factory) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, budgets.Store, *Clock)
	}{
		{"AllOrNothing", testAllOrNothing},
		{"SameLimitTwice", testSameLimitTwice},
		{"StatusValues", testStatusValues},
		{"ZeroCharge", testZeroCharge},
		{"SlidingMinute", testSlidingMinute},
		{"DayRolloverUTC", testDayRollover},
		{"MonthRolloverUTC", testMonthRollover},
		{"SettleUpDown", testSettleUpDown},
		{"Release", testRelease},
		{"SettleAfterRollover", testSettleAfterRollover},
		{"Invalid", testInvalid},
		{"TooLarge", testTooLarge},
		{"DeniedPrefersQuota", testDeniedPrefersQuota},
		{"Empty", testEmpty},
		{"WindowsAreSeparate", testWindowsSeparate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := NewClock(T0)
			tc.fn(t, newStore(t, clock.Now), clock)
		})
	}
}

func rate(key string, w budgets.Window, max int64) budgets.Limit {
	return budgets.Limit{Key: key, Window: w, Max: max}
}

func quota(key string, w budgets.Window, max int64) budgets.Limit {
	return budgets.Limit{Key: key, Window: w, Max: max, Quota: true}
}

func ch(l budgets.Limit, n int64) budgets.Charge { return budgets.Charge{Limit: l, N: n} }

// mustReserve reserves and fails the test unless admitted.
func mustReserve(t *testing.T, s budgets.Store, charges ...budgets.Charge) (*budgets.Reservation, []budgets.Status) {
	t.Helper()
	r, st, err := s.Reserve(context.Background(), charges)
	if err != nil {
		t.Fatalf("Reserve(%v): %v", charges, err)
	}
	if r == nil {
		t.Fatalf("Reserve(%v): nil reservation without error", charges)
	}
	if len(st) != len(charges) {
		t.Fatalf("Reserve(%v): %d statuses for %d charges", charges, len(st), len(charges))
	}
	return r, st
}

// mustDeny reserves and fails the test unless refused with *Denied.
func mustDeny(t *testing.T, s budgets.Store, charges ...budgets.Charge) *budgets.Denied {
	t.Helper()
	r, st, err := s.Reserve(context.Background(), charges)
	var d *budgets.Denied
	if !errors.As(err, &d) {
		t.Fatalf("Reserve(%v) = %v, %v; want *Denied", charges, r, err)
	}
	if r != nil {
		t.Fatalf("Reserve(%v): denied with a reservation", charges)
	}
	if len(st) != len(charges) || len(d.Status) != len(charges) {
		t.Fatalf("Reserve(%v): denied with %d/%d statuses for %d charges", charges, len(st), len(d.Status), len(charges))
	}
	return d
}

// remaining returns a limit's remaining units, read with a zero charge
// (which is admitted unless the limit is spent).
func remaining(t *testing.T, s budgets.Store, l budgets.Limit) int64 {
	t.Helper()
	_, st, err := s.Reserve(context.Background(), []budgets.Charge{ch(l, 0)})
	var d *budgets.Denied
	if err != nil && !errors.As(err, &d) {
		t.Fatalf("Reserve(%s, 0): %v", l.Key, err)
	}
	if len(st) != 1 {
		t.Fatalf("Reserve(%s, 0): %d statuses", l.Key, len(st))
	}
	return st[0].Remaining
}

func wantRemaining(t *testing.T, s budgets.Store, l budgets.Limit, want int64) {
	t.Helper()
	if got := remaining(t, s, l); got != want {
		t.Errorf("remaining of %s = %d, want %d", l.Key, got, want)
	}
}

func wantStatus(t *testing.T, got budgets.Status, l budgets.Limit, rem int64, reset time.Duration) {
	t.Helper()
	if got.Limit != l || got.Remaining != rem || got.Reset != reset {
		t.Errorf("status = {%s remaining %d reset %v}, want {%s remaining %d reset %v}",
			got.Limit.Key, got.Remaining, got.Reset, l.Key, rem, reset)
	}
}

func testAllOrNothing(t *testing.T, s budgets.Store, _ *Clock) {
	a, b := rate("a", budgets.Minute, 100), rate("b", budgets.Minute, 50)
	_, st := mustReserve(t, s, ch(a, 40), ch(b, 40))
	wantStatus(t, st[0], a, 60, 105*time.Second)
	wantStatus(t, st[1], b, 10, 105*time.Second)

	d := mustDeny(t, s, ch(a, 40), ch(b, 20))
	if d.Limit != b {
		t.Errorf("denied limit = %+v, want b", d.Limit)
	}
	wantStatus(t, d.Status[0], a, 60, 105*time.Second)
	wantStatus(t, d.Status[1], b, 10, 105*time.Second)
	// Nothing was charged to a: exactly 60 still fit.
	_, st = mustReserve(t, s, ch(a, 60))
	wantStatus(t, st[0], a, 0, 105*time.Second)
	mustDeny(t, s, ch(a, 1))
	wantRemaining(t, s, b, 10)
}

func testSameLimitTwice(t *testing.T, s budgets.Store, _ *Clock) {
	a := rate("a", budgets.Minute, 100)
	mustDeny(t, s, ch(a, 60), ch(a, 60))
	wantRemaining(t, s, a, 100)
	_, st := mustReserve(t, s, ch(a, 50), ch(a, 50))
	wantStatus(t, st[0], a, 0, 105*time.Second)
	wantStatus(t, st[1], a, 0, 105*time.Second)
}

func testStatusValues(t *testing.T, s budgets.Store, _ *Clock) {
	m := rate("tpm", budgets.Minute, 100)
	d := quota("daily", budgets.Day, 1000)
	mo := quota("monthly", budgets.Month, 5000)
	_, st := mustReserve(t, s, ch(m, 30), ch(d, 10), ch(mo, 1))
	// 15 s into the minute: the bucket ends in 45 s and its weight fades
	// over the next minute.
	wantStatus(t, st[0], m, 70, 105*time.Second)
	wantStatus(t, st[1], d, 990, 11*time.Hour+59*time.Minute+45*time.Second)
	wantStatus(t, st[2], mo, 4999, at("2026-04-01T00:00:00Z").Sub(T0))
}

func testZeroCharge(t *testing.T, s budgets.Store, _ *Clock) {
	a := rate("a", budgets.Minute, 100)
	_, st := mustReserve(t, s, ch(a, 0))
	wantStatus(t, st[0], a, 100, 0)
	mustReserve(t, s, ch(a, 100))
	d := mustDeny(t, s, ch(a, 0))
	wantStatus(t, d.Status[0], a, 0, 105*time.Second)
}

func testSlidingMinute(t *testing.T, s budgets.Store, c *Clock) {
	a := rate("a", budgets.Minute, 100)
	c.Set(at("2026-03-14T12:00:30Z"))
	mustReserve(t, s, ch(a, 100))
	c.Set(at("2026-03-14T12:00:59Z"))
	d := mustDeny(t, s, ch(a, 10))
	// At 12:01:06 the 12:00 bucket weighs 54/60 of 100 = 90, and 10 fit.
	if d.RetryAfter != 7*time.Second {
		t.Errorf("RetryAfter = %v, want 7s", d.RetryAfter)
	}
	if d.Limit.Quota {
		t.Errorf("a rate limit denied as a quota")
	}
	c.Set(at("2026-03-14T12:01:05.999Z"))
	mustDeny(t, s, ch(a, 10))
	c.Set(at("2026-03-14T12:01:06Z"))
	_, st := mustReserve(t, s, ch(a, 10))
	wantStatus(t, st[0], a, 0, 54*time.Second+time.Minute)
	c.Set(at("2026-03-14T12:01:30Z")) // 10 + ceil(100 * 30/60) = 60
	wantRemaining(t, s, a, 40)
	c.Set(at("2026-03-14T12:02:00Z")) // 0 + 10 * 60/60
	wantRemaining(t, s, a, 90)
	c.Set(at("2026-03-14T12:02:59.5Z")) // 0 + ceil(10 * 500/60000)
	wantRemaining(t, s, a, 99)
	c.Set(at("2026-03-14T12:03:00Z"))
	_, st = mustReserve(t, s, ch(a, 0))
	wantStatus(t, st[0], a, 100, 0)
}

func testDayRollover(t *testing.T, s budgets.Store, c *Clock) {
	d := quota("d", budgets.Day, 1000)
	c.Set(at("2026-03-14T23:59:59Z"))
	mustReserve(t, s, ch(d, 1000))
	den := mustDeny(t, s, ch(d, 1))
	if !den.Limit.Quota || den.RetryAfter != time.Second {
		t.Errorf("denied %+v after %v, want the quota after 1s", den.Limit, den.RetryAfter)
	}
	// 00:00 in UTC, whatever zone the clock reports in.
	c.Set(at("2026-03-15T09:00:00+09:00"))
	_, st := mustReserve(t, s, ch(d, 1))
	wantStatus(t, st[0], d, 999, 24*time.Hour)
}

func testMonthRollover(t *testing.T, s budgets.Store, c *Clock) {
	m := quota("m", budgets.Month, 10)
	// 05:00 on 1 March at UTC+10 is still February in UTC.
	c.Set(at("2026-03-01T05:00:00+10:00"))
	_, st := mustReserve(t, s, ch(m, 10))
	wantStatus(t, st[0], m, 0, 5*time.Hour)
	den := mustDeny(t, s, ch(m, 1))
	if den.RetryAfter != 5*time.Hour {
		t.Errorf("RetryAfter = %v, want 5h", den.RetryAfter)
	}
	c.Set(at("2026-03-01T00:00:00Z"))
	_, st = mustReserve(t, s, ch(m, 4))
	wantStatus(t, st[0], m, 6, 31*24*time.Hour)
	// Across a year.
	c.Set(at("2026-12-31T23:59:59.999Z"))
	mustReserve(t, s, ch(m, 10))
	mustDeny(t, s, ch(m, 1))
	c.Set(at("2027-01-01T00:00:00Z"))
	wantRemaining(t, s, m, 10)
}

func testSettleUpDown(t *testing.T, s budgets.Store, _ *Clock) {
	ctx := context.Background()
	a := rate("a", budgets.Minute, 1000)
	r, _ := mustReserve(t, s, ch(a, 100))
	if err := s.Settle(ctx, r, []int64{250}); err != nil {
		t.Fatalf("Settle up: %v", err)
	}
	wantRemaining(t, s, a, 750)
	r2, st := mustReserve(t, s, ch(a, 100))
	wantStatus(t, st[0], a, 650, 105*time.Second)
	if err := s.Settle(ctx, r2, []int64{1, 2}); err == nil {
		t.Errorf("Settle with 2 amounts for 1 charge: no error")
	}
	if err := s.Settle(ctx, r2, []int64{40}); err != nil {
		t.Fatalf("Settle down: %v", err)
	}
	wantRemaining(t, s, a, 710)
	if err := s.Settle(ctx, r2, []int64{40}); !errors.Is(err, budgets.ErrFinished) {
		t.Errorf("second Settle = %v, want ErrFinished", err)
	}
	if err := s.Release(ctx, r2); !errors.Is(err, budgets.ErrFinished) {
		t.Errorf("Release after Settle = %v, want ErrFinished", err)
	}
	wantRemaining(t, s, a, 710)
	// Negative actual amounts count as zero.
	r3, _ := mustReserve(t, s, ch(a, 10))
	if err := s.Settle(ctx, r3, []int64{-5}); err != nil {
		t.Fatal(err)
	}
	wantRemaining(t, s, a, 710)
}

func testRelease(t *testing.T, s budgets.Store, _ *Clock) {
	ctx := context.Background()
	a, d := rate("a", budgets.Minute, 1000), quota("d", budgets.Day, 500)
	mustReserve(t, s, ch(a, 100))
	r, _ := mustReserve(t, s, ch(a, 300), ch(d, 300))
	wantRemaining(t, s, a, 600)
	if err := s.Release(ctx, r); err != nil {
		t.Fatal(err)
	}
	wantRemaining(t, s, a, 900)
	wantRemaining(t, s, d, 500)
	if err := s.Release(ctx, r); !errors.Is(err, budgets.ErrFinished) {
		t.Errorf("second Release = %v, want ErrFinished", err)
	}
	wantRemaining(t, s, a, 900)
}

func testSettleAfterRollover(t *testing.T, s budgets.Store, c *Clock) {
	ctx := context.Background()
	// Minute: the correction lands in the 12:00 bucket, which now counts
	// as the previous one: 0 + ceil(290 * 59/60) = 286.
	a := rate("a", budgets.Minute, 1000)
	c.Set(at("2026-03-14T12:00:59Z"))
	r, _ := mustReserve(t, s, ch(a, 50))
	c.Set(at("2026-03-14T12:01:01Z"))
	if err := s.Settle(ctx, r, []int64{290}); err != nil {
		t.Fatal(err)
	}
	wantRemaining(t, s, a, 1000-286)
	// Day: the correction belongs to the day that ended; the new day is
	// untouched.
	d := quota("d", budgets.Day, 1000)
	c.Set(at("2026-03-14T23:59:59.5Z"))
	rd, _ := mustReserve(t, s, ch(d, 100))
	c.Set(at("2026-03-15T00:00:01Z"))
	if err := s.Settle(ctx, rd, []int64{500}); err != nil {
		t.Fatal(err)
	}
	wantRemaining(t, s, d, 1000)
	// A release after the rollover gives nothing to the new day.
	c.Set(at("2026-03-15T23:59:59Z"))
	rd2, _ := mustReserve(t, s, ch(d, 700))
	c.Set(at("2026-03-16T00:00:00Z"))
	mustReserve(t, s, ch(d, 600))
	if err := s.Release(ctx, rd2); err != nil {
		t.Fatal(err)
	}
	wantRemaining(t, s, d, 400)
}

func testInvalid(t *testing.T, s budgets.Store, _ *Clock) {
	a := rate("a", budgets.Minute, 100)
	for name, charges := range map[string][]budgets.Charge{
		"negative":  {ch(a, 10), ch(rate("b", budgets.Minute, 100), -1)},
		"window":    {ch(a, 10), ch(rate("b", "hour", 100), 1)},
		"no key":    {ch(a, 10), ch(rate("", budgets.Minute, 100), 1)},
		"max":       {ch(a, 10), ch(rate("b", budgets.Minute, -1), 1)},
		"too large": {ch(a, 10), ch(rate("b", budgets.Minute, 100), budgets.MaxUnits+1)},
	} {
		r, _, err := s.Reserve(context.Background(), charges)
		var d *budgets.Denied
		if err == nil || errors.As(err, &d) || errors.Is(err, budgets.ErrUnavailable) || r != nil {
			t.Errorf("%s: Reserve = %v, %v; want a plain error", name, r, err)
		}
	}
	wantRemaining(t, s, a, 100)
}

func testTooLarge(t *testing.T, s budgets.Store, _ *Clock) {
	a, d := rate("a", budgets.Minute, 100), quota("d", budgets.Day, 100)
	if den := mustDeny(t, s, ch(a, 101)); den.RetryAfter != time.Minute {
		t.Errorf("RetryAfter = %v, want a minute", den.RetryAfter)
	}
	if den := mustDeny(t, s, ch(d, 101)); den.RetryAfter != 24*time.Hour {
		t.Errorf("RetryAfter = %v, want a day", den.RetryAfter)
	}
	z := rate("z", budgets.Minute, 0)
	mustDeny(t, s, ch(z, 0))
	wantRemaining(t, s, a, 100)
}

func testDeniedPrefersQuota(t *testing.T, s budgets.Store, _ *Clock) {
	a, d := rate("a", budgets.Minute, 100), quota("d", budgets.Day, 100)
	mustReserve(t, s, ch(a, 100), ch(d, 95))
	den := mustDeny(t, s, ch(a, 10), ch(d, 10))
	if den.Limit != d {
		t.Errorf("denied limit = %+v, want the quota", den.Limit)
	}
	if want := 11*time.Hour + 59*time.Minute + 45*time.Second; den.RetryAfter != want {
		t.Errorf("RetryAfter = %v, want %v", den.RetryAfter, want)
	}
	if den.Error() == "" {
		t.Error("empty Denied.Error()")
	}
	// Only the rate is exceeded: 429 with the rate's wait.
	den = mustDeny(t, s, ch(a, 10), ch(d, 1))
	if den.Limit != a || den.RetryAfter != 51*time.Second {
		t.Errorf("denied %+v after %v, want a after 51s", den.Limit, den.RetryAfter)
	}
}

func testEmpty(t *testing.T, s budgets.Store, _ *Clock) {
	ctx := context.Background()
	r, st, err := s.Reserve(ctx, nil)
	if err != nil || r == nil || len(st) != 0 {
		t.Fatalf("Reserve(nil) = %v, %v, %v", r, st, err)
	}
	if err := s.Settle(ctx, r, nil); err != nil {
		t.Fatalf("Settle(empty) = %v", err)
	}
	if err := s.Settle(ctx, nil, nil); err == nil {
		t.Errorf("Settle(nil reservation): no error")
	}
	if err := s.Release(ctx, nil); err == nil {
		t.Errorf("Release(nil reservation): no error")
	}
}

func testWindowsSeparate(t *testing.T, s budgets.Store, _ *Clock) {
	m, d := rate("k", budgets.Minute, 100), quota("k", budgets.Day, 100)
	mustReserve(t, s, ch(m, 100))
	wantRemaining(t, s, d, 100)
	mustReserve(t, s, ch(d, 30))
	wantRemaining(t, s, m, 0)
	wantRemaining(t, s, d, 70)
}

// ConcurrencyResult holds the figures of Concurrency.
type ConcurrencyResult struct {
	Limit       int64 // Max of the tokens-per-minute limit
	Admitted    int64 // phase 1: sum of admitted estimates, never settled
	Requests    int64 // phase 1: reservations attempted
	Overshoot   int64 // phase 1: Admitted - Limit when positive (must be 0)
	Settled     int64 // phase 2: sum of the actual amounts settled
	Final       int64 // phase 2: the counter at the end
	UpCorrected int64 // phase 2: sum of the positive settle corrections
	Phase2      int64 // phase 2: reservations admitted and settled
}

// Concurrency is the headline test: goroutines spread round-robin over
// stores (several stores on one backend stand for several gateway
// instances) reserve random estimates of 50 to 500 tokens against one
// tokens-per-minute limit of limit tokens. read returns the limit's counter
// in the current bucket, straight from the backend. The clock must stay
// in one minute bucket for the whole run.
//
// Phase 1 reserves until the limit is full and never settles: the sum of
// admitted estimates must not exceed the limit, must come within the smallest
// estimate of it, and must equal the counter. The reservations are then
// released concurrently and the counter must be back to zero.
//
// Phase 2 reserves and settles at once with actual = estimate -50%..+20%:
// the counter must equal the sum of the settled actual amounts (no update
// lost) and can exceed the limit by no more than the upward corrections.
func Concurrency(t *testing.T, stores []budgets.Store, goroutines int, limit int64, read func() int64) ConcurrencyResult {
	t.Helper()
	const minEst, maxEst = 50, 500
	ctx := context.Background()
	lim := budgets.Limit{Key: "tpm:concurrency", Window: budgets.Minute, Max: limit}
	res := ConcurrencyResult{Limit: limit}

	var (
		admitted, requests atomic.Int64
		mu                 sync.Mutex
		reservations       []*budgets.Reservation
		wg                 sync.WaitGroup
		failures           atomic.Int64
	)
	start := make(chan struct{})
	for g := range goroutines {
		s := stores[g%len(stores)]
		rng := rand.New(rand.NewPCG(uint64(g), 1))
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			var mine []*budgets.Reservation
			for range 100000 {
				est := minEst + rng.Int64N(maxEst-minEst+1)
				requests.Add(1)
				r, st, err := s.Reserve(ctx, []budgets.Charge{{Limit: lim, N: est}})
				var d *budgets.Denied
				switch {
				case err == nil:
					admitted.Add(est)
					mine = append(mine, r)
					continue
				case errors.As(err, &d):
					if len(st) == 1 && st[0].Remaining < minEst {
						mu.Lock()
						reservations = append(reservations, mine...)
						mu.Unlock()
						return
					}
				default:
					failures.Add(1)
					t.Errorf("Reserve: %v", err)
					return
				}
			}
			failures.Add(1)
			t.Errorf("the limit never filled up")
		}()
	}
	close(start)
	wg.Wait()
	if failures.Load() > 0 {
		t.FailNow()
	}
	res.Admitted, res.Requests = admitted.Load(), requests.Load()
	res.Overshoot = max(0, res.Admitted-limit)
	if res.Admitted > limit {
		t.Errorf("phase 1: admitted %d tokens over a limit of %d (overshoot %d)", res.Admitted, limit, res.Overshoot)
	}
	if res.Admitted <= limit-minEst {
		t.Errorf("phase 1: admitted only %d of %d; the limit was not filled", res.Admitted, limit)
	}
	if c := read(); c != res.Admitted {
		t.Errorf("phase 1: counter %d, admitted %d", c, res.Admitted)
	}

	// Release everything, concurrently.
	next := atomic.Int64{}
	for g := range goroutines {
		s := stores[g%len(stores)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(len(reservations)) {
					return
				}
				if err := s.Release(ctx, reservations[i]); err != nil {
					t.Errorf("Release: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	if c := read(); c != 0 {
		t.Fatalf("after releasing every reservation the counter is %d, want 0", c)
	}

	// Phase 2: reserve and settle concurrently.
	var settled, up, n2 atomic.Int64
	for g := range goroutines {
		s := stores[g%len(stores)]
		rng := rand.New(rand.NewPCG(uint64(g), 2))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 60 {
				est := minEst + rng.Int64N(maxEst-minEst+1)
				r, _, err := s.Reserve(ctx, []budgets.Charge{{Limit: lim, N: est}})
				var d *budgets.Denied
				if errors.As(err, &d) {
					continue
				}
				if err != nil {
					t.Errorf("Reserve: %v", err)
					return
				}
				actual := est - est/2 + rng.Int64N(est/2+est/5+1) // est-50% .. est+20%
				if err := s.Settle(ctx, r, []int64{actual}); err != nil {
					t.Errorf("Settle: %v", err)
					return
				}
				settled.Add(actual)
				up.Add(max(0, actual-est))
				n2.Add(1)
			}
		}()
	}
	wg.Wait()
	res.Settled, res.UpCorrected, res.Phase2 = settled.Load(), up.Load(), n2.Load()
	res.Final = read()
	if res.Final != res.Settled {
		t.Errorf("phase 2: counter %d, sum of settled actual amounts %d", res.Final, res.Settled)
	}
	if res.Final > limit+res.UpCorrected {
		t.Errorf("phase 2: counter %d exceeds the limit %d by more than the upward corrections %d", res.Final, limit, res.UpCorrected)
	}
	if res.Phase2 == 0 {
		t.Errorf("phase 2 admitted nothing")
	}
	t.Logf("%d goroutines over %d store(s), limit %d: phase 1 admitted %d in %d requests (overshoot %d); phase 2 settled %d requests, counter %d = settled %d (limit + upward corrections %d)",
		goroutines, len(stores), limit, res.Admitted, res.Requests, res.Overshoot, res.Phase2, res.Final, res.Settled, res.UpCorrected)
	return res
}
