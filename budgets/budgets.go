// Package budgets is the host-side API of Groundgate's token and request
// budgets: rates (tokens or requests per minute, answered with 429) and
// quotas (per day or per month, answered with 403), per key, team, policy
// and deployment.
//
// The gateway RESERVES an estimate before it calls the upstream and
// SETTLES with the actual usage afterwards (streams included). Charging
// only after the response, as many gateways do, lets every concurrent
// request pass the check before any of them is counted, so budgets
// overshoot by as many requests as run at once. With a reservation the
// check and the charge are one atomic step in the store, so the admitted
// estimates never exceed a limit; only settle corrections (actual minus
// estimate) can move a counter past it.
//
// Stores implement [Store]: the guest modules under
// llm_gateway.stores.* (memory, redis) do.
//
// # Windows
//
// A "minute" window is sliding, approximated with two fixed buckets
// aligned to the UTC minute (as nginx, Cloudflare and Envoy do): the usage
// at an instant is the current bucket's count plus the previous bucket's
// count weighted by the share of the previous bucket that still lies in
// the last 60 seconds, rounded up. It is exact when usage is spread
// evenly and never lets the current bucket alone exceed the limit.
//
// "day" and "month" windows are calendar windows in UTC: a quota resets
// at 00:00 UTC, and on the first of the month at 00:00 UTC.
//
// # Settling across a window boundary
//
// A reservation remembers the instant it was made ([Reservation.At]);
// Settle and Release correct the bucket that instant fell in, never the
// current one. A correction to a bucket that no longer counts (a day or
// month that has ended, a minute bucket more than one minute old) has no
// effect on any later decision; stores drop it. The bound is the
// correction of the requests in flight across the boundary.
package budgets

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"
)

// Window is the period a [Limit] counts over: "minute", "day" or "month".
type Window string

// The windows a limit can count over.
const (
	// Minute is a sliding 60-second window (two-bucket approximation).
	Minute Window = "minute"
	// Day is a calendar day in UTC.
	Day Window = "day"
	// Month is a calendar month in UTC.
	Month Window = "month"
)

// MaxUnits bounds limits, charges and settled amounts. It keeps counters
// exact in every store (Redis scripts compute with IEEE doubles); settled
// amounts above it are clamped to it.
const MaxUnits = 1 << 50

// Valid reports whether w is one of the known windows.
func (w Window) Valid() bool {
	return w == Minute || w == Day || w == Month
}

// Sliding reports whether the window also counts (part of) the bucket
// before the current one. Only minute windows do.
func (w Window) Sliding() bool { return w == Minute }

// Bucket returns the bucket of w that holds t, as [start, end) in UTC:
// the minute, the calendar day or the calendar month. It returns zero
// times for an unknown window.
func (w Window) Bucket(t time.Time) (start, end time.Time) {
	t = t.UTC()
	switch w {
	case Minute:
		start = t.Truncate(time.Minute)
		return start, start.Add(time.Minute)
	case Day:
		y, m, d := t.Date()
		start = time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 0, 1)
	case Month:
		y, m, _ := t.Date()
		start = time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 1, 0)
	}
	return time.Time{}, time.Time{}
}

// Limit is one budget counter, for example
//
//	Limit{Key: "tpm:team:support", Window: budgets.Minute, Max: 100000}
//
// Two limits are the same counter when Key and Window are equal.
type Limit struct {
	// Key names the counter: what is counted and for whom. Stores use it
	// verbatim in their own key space.
	Key string
	// Window is the period the counter covers.
	Window Window
	// Max is the number of units admitted per window. 0 admits nothing.
	Max int64
	// Quota marks a limit whose exhaustion is a spent quota (403) rather
	// than a rate exceeded (429).
	Quota bool
}

// Validate reports what is wrong with l, if anything.
func (l Limit) Validate() error {
	switch {
	case l.Key == "":
		return errors.New("budgets: limit has no key")
	case !l.Window.Valid():
		return fmt.Errorf("budgets: limit %q: unknown window %q (want minute, day or month)", l.Key, l.Window)
	case l.Max < 0 || l.Max > MaxUnits:
		return fmt.Errorf("budgets: limit %q: max %d out of range [0, %d]", l.Key, l.Max, int64(MaxUnits))
	}
	return nil
}

// Charge asks to add N units to a limit.
type Charge struct {
	Limit Limit
	N     int64
}

// ValidateCharges reports the first invalid charge: an invalid limit or
// N outside [0, MaxUnits]. Stores call it before touching any counter.
func ValidateCharges(charges []Charge) error {
	for i := range charges {
		if err := charges[i].Limit.Validate(); err != nil {
			return err
		}
		if n := charges[i].N; n < 0 || n > MaxUnits {
			return fmt.Errorf("budgets: charge %d to %q: %d units out of range [0, %d]", i, charges[i].Limit.Key, n, int64(MaxUnits))
		}
	}
	return nil
}

// Status reports one limit after a reservation (or, in [Denied], before
// the refused one), for the x-ratelimit-limit-* and
// x-ratelimit-remaining-* / x-ratelimit-reset-* headers.
type Status struct {
	Limit Limit
	// Remaining is Max minus the usage, never negative.
	Remaining int64
	// Reset is the time until the limit is back to its initial state if
	// nothing more is charged (OpenAI's meaning of x-ratelimit-reset-*).
	// Zero when nothing is counted.
	Reset time.Duration
}

// Reservation remembers what a Reserve charged so that Settle or Release
// can correct it, exactly once.
type Reservation struct {
	// Charges are the admitted charges, in the order given to Reserve.
	Charges []Charge
	// At is the instant of the reservation, by the store's clock. Its
	// buckets are the ones that Settle and Release correct.
	At time.Time

	done atomic.Bool
}

// Finish marks the reservation as settled or released and reports
// whether it was still open. Stores call it first in Settle and Release
// and return [ErrFinished] when it reports false, so that a reservation
// is corrected at most once.
func (r *Reservation) Finish() bool { return r.done.CompareAndSwap(false, true) }

// Finished reports whether the reservation was settled or released.
func (r *Reservation) Finished() bool { return r.done.Load() }

// Deltas returns the corrections that replace the reserved amounts by
// actual ones: actual[i] - Charges[i].N, with actual[i] clamped to
// [0, MaxUnits]. It fails when the lengths differ.
func (r *Reservation) Deltas(actual []int64) ([]int64, error) {
	if len(actual) != len(r.Charges) {
		return nil, fmt.Errorf("budgets: settle with %d amounts for %d charges", len(actual), len(r.Charges))
	}
	d := make([]int64, len(actual))
	for i, a := range actual {
		d[i] = min(max(a, 0), MaxUnits) - r.Charges[i].N
	}
	return d, nil
}

// Denied is the error Reserve returns when a charge does not fit its
// limit. Nothing is charged then, for any limit of the reservation.
type Denied struct {
	// Limit is the limit refused: a quota if any refused limit is one
	// (403 beats 429), otherwise the rate with the longest wait.
	Limit Limit
	// RetryAfter is the least wait after which every charge would fit,
	// if nothing else were charged meanwhile. A charge larger than its
	// limit's Max never fits; it counts as a full window (a minute, a
	// day, a month) so that retries are not encouraged.
	RetryAfter time.Duration
	// Status holds every limit of the reservation, as it stands without
	// the refused charges.
	Status []Status
}

// Error describes the refusal without secrets: the limit key and window.
func (d *Denied) Error() string {
	what := "rate limit"
	if d.Limit.Quota {
		what = "quota"
	}
	return "budgets: " + what + " " + strconv.Quote(d.Limit.Key) + " (" + string(d.Limit.Window) +
		", max " + strconv.FormatInt(d.Limit.Max, 10) + ") exceeded; retry after " + d.RetryAfter.String()
}

// ErrUnavailable wraps store failures: Redis down or unreachable,
// timeouts, a full connection pool. The caller decides by policy whether
// to fail open or closed, and counts it.
var ErrUnavailable = errors.New("budgets: store unavailable")

// ErrFinished is returned by Settle and Release for a reservation that
// was already settled or released.
var ErrFinished = errors.New("budgets: reservation already settled or released")

// Store keeps budget counters.
type Store interface {
	// Reserve atomically admits all charges or none. It returns the
	// reservation and the status of every limit after it, or a *Denied
	// (with the statuses) when a charge does not fit, or an error
	// wrapping ErrUnavailable when the store cannot decide.
	Reserve(ctx context.Context, charges []Charge) (*Reservation, []Status, error)
	// Settle replaces the reserved amounts with the actual ones
	// (actual[i] for r.Charges[i]; more or less than reserved). It never
	// fails the response: errors are for logging and metrics only.
	Settle(ctx context.Context, r *Reservation, actual []int64) error
	// Release undoes a reservation whose request never reached the
	// upstream.
	Release(ctx context.Context, r *Reservation) error
}
