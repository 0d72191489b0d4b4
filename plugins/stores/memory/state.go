package memory

import (
	"context"
	"errors"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/groundgate/groundgate/budgets"
)

// nShards is the number of independently locked parts of the counter
// map. A reservation locks only the shards of its own limits.
const nShards = 64

// shrinkFloor is the size under which a shard's map is never rebuilt.
const shrinkFloor = 1024

// state holds the counters of one named memory store. It outlives config
// reloads in the package's usage pool; a sweeper goroutine frees expired
// counters until the last config using it is cleaned up.
type state struct {
	shards [nShards]shard
	seed   maphash.Seed
	now    func() time.Time

	sweepEvery atomic.Int64 // nanoseconds
	stop       chan struct{}
	stopOnce   sync.Once
}

type shard struct {
	mu sync.Mutex
	m  map[entryKey]*entry
	// peak is the largest len(m) since the map was last rebuilt: Go maps
	// never give memory back, so a shard that shrank to a quarter of its
	// peak is copied into a new map.
	peak int
	_    [40]byte // keep shards on separate cache lines
}

type entryKey struct {
	key    string
	window budgets.Window
}

// entry is one limit's counter: the current bucket and the one before.
type entry struct {
	start   int64 // current bucket's start, Unix nanoseconds
	cur     int64
	prev    int64
	expires int64 // Unix nanoseconds after which nothing here counts
}

// newState returns an empty state with the given clock. The sweeper is
// not started; see startSweeper.
func newState(now func() time.Time) *state {
	s := &state{seed: maphash.MakeSeed(), now: now, stop: make(chan struct{})}
	for i := range s.shards {
		s.shards[i].m = make(map[entryKey]*entry)
	}
	s.sweepEvery.Store(int64(defaultSweepInterval))
	return s
}

// startSweeper frees expired counters every sweepEvery until Destruct.
func (s *state) startSweeper() {
	go func() {
		t := time.NewTimer(time.Duration(s.sweepEvery.Load()))
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.sweep(s.now())
				t.Reset(time.Duration(s.sweepEvery.Load()))
			}
		}
	}()
}

// Destruct stops the sweeper. The usage pool calls it when the last
// config using this state is cleaned up; reservations still in flight
// may go on settling against it harmlessly.
func (s *state) Destruct() error {
	s.stopOnce.Do(func() { close(s.stop) })
	return nil
}

func (s *state) shardOf(key string) uint8 {
	return uint8(maphash.String(s.seed, key) & (nShards - 1))
}

// bucket returns the bucket holding t, in Unix nanoseconds, and its
// length; plus the instant after which an entry rolled to it is useless.
func bucket(w budgets.Window, t time.Time) (start, length, expires int64) {
	b, e := w.Bucket(t)
	start, end := b.UnixNano(), e.UnixNano()
	length = end - start
	expires = end
	if w.Sliding() {
		expires += length // it counts as the previous bucket for one more
	}
	return start, length, expires
}

// roll moves e to the bucket starting at start. A bucket at or before the
// current one (a clock that stepped back) leaves e as it is.
func (e *entry) roll(start, length, expires int64, sliding bool) {
	switch {
	case start <= e.start:
		return
	case sliding && start == e.start+length:
		e.prev, e.cur = e.cur, 0
	default:
		e.prev, e.cur = 0, 0
	}
	e.start, e.expires = start, expires
}

// maxInline is the number of charges handled without heap buffers.
const maxInline = 8

// Reserve implements budgets.Store: it locks the shards of every limit
// concerned (in index order, so concurrent reservations cannot deadlock),
// decides with budgets.Check, and charges all or nothing.
func (s *state) Reserve(_ context.Context, charges []budgets.Charge) (*budgets.Reservation, []budgets.Status, error) {
	if err := budgets.ValidateCharges(charges); err != nil {
		return nil, nil, err
	}
	now := s.now()
	if len(charges) == 0 {
		return &budgets.Reservation{At: now}, nil, nil
	}
	var (
		lockBuf    [maxInline]uint8
		shardBuf   [maxInline]uint8
		entryBuf   [maxInline]*entry
		counterBuf [maxInline]budgets.Counter
		spanBuf    [maxInline][3]int64
	)
	locks, shards, entries, counters, spans := lockBuf[:0], shardBuf[:0], entryBuf[:0], counterBuf[:0], spanBuf[:0]
	for i := range charges {
		l := &charges[i].Limit
		si := s.shardOf(l.Key)
		shards = append(shards, si)
		if !slices.Contains(locks, si) {
			locks = append(locks, si)
		}
		start, length, expires := bucket(l.Window, now)
		spans = append(spans, [3]int64{start, length, expires})
	}
	slices.Sort(locks)
	for _, si := range locks {
		s.shards[si].mu.Lock()
	}
	unlock := func() {
		for _, si := range locks {
			s.shards[si].mu.Unlock()
		}
	}

	nowNs := now.UnixNano()
	for i := range charges {
		l := &charges[i].Limit
		sp := spans[i]
		e := s.shards[shards[i]].m[entryKey{l.Key, l.Window}]
		var cur, prev int64
		if e != nil {
			e.roll(sp[0], sp[1], sp[2], l.Window.Sliding())
			if e.start == sp[0] {
				cur, prev = e.cur, e.prev
			} else { // clock stepped back: count what is there
				cur, prev = e.cur, 0
			}
		}
		entries = append(entries, e)
		counters = append(counters, budgets.Counter{
			Window: l.Window, Cur: cur, Prev: prev,
			Elapsed: time.Duration(nowNs - sp[0]), Length: time.Duration(sp[1]),
		})
	}
	if d := budgets.Check(charges, counters); d != nil {
		unlock()
		return nil, d.Status, d
	}
	for i := range charges {
		n := charges[i].N
		e := entries[i]
		if e == nil {
			// A charge to the same limit earlier in this reservation may
			// have created it.
			k := entryKey{charges[i].Limit.Key, charges[i].Limit.Window}
			sh := &s.shards[shards[i]]
			if e = sh.m[k]; e == nil {
				if n == 0 {
					continue // nothing to remember
				}
				sp := spans[i]
				e = &entry{start: sp[0], expires: sp[2]}
				sh.m[k] = e
				sh.peak = max(sh.peak, len(sh.m))
			}
			entries[i] = e
		}
		e.cur += n
	}
	statuses := make([]budgets.Status, len(charges))
	for i := range charges {
		c := counters[i]
		if e := entries[i]; e != nil {
			c.Cur = e.cur // final value: includes every charge to this limit
		}
		statuses[i] = c.Status(charges[i].Limit)
	}
	unlock()
	return &budgets.Reservation{Charges: slices.Clone(charges), At: now}, statuses, nil
}

// Settle implements budgets.Store: each correction goes to the bucket the
// reservation was made in, if that bucket still counts.
func (s *state) Settle(_ context.Context, r *budgets.Reservation, actual []int64) error {
	if r == nil {
		return errors.New("memory store: settle of a nil reservation")
	}
	deltas, err := r.Deltas(actual)
	if err != nil {
		return err
	}
	if !r.Finish() {
		return budgets.ErrFinished
	}
	s.correct(r, deltas)
	return nil
}

// Release implements budgets.Store: it takes back every reserved unit.
func (s *state) Release(_ context.Context, r *budgets.Reservation) error {
	if r == nil {
		return errors.New("memory store: release of a nil reservation")
	}
	if !r.Finish() {
		return budgets.ErrFinished
	}
	var buf [maxInline]int64
	deltas := buf[:0]
	for i := range r.Charges {
		deltas = append(deltas, -r.Charges[i].N)
	}
	s.correct(r, deltas)
	return nil
}

// correct adds deltas[i] to the bucket of r.At of r.Charges[i]. It drops
// a correction whose bucket no longer counts. Corrections are independent
// of each other, so each takes only its own shard's lock.
func (s *state) correct(r *budgets.Reservation, deltas []int64) {
	for i := range r.Charges {
		d := deltas[i]
		if d == 0 {
			continue
		}
		l := &r.Charges[i].Limit
		start, length, _ := bucket(l.Window, r.At)
		sh := &s.shards[s.shardOf(l.Key)]
		sh.mu.Lock()
		if e := sh.m[entryKey{l.Key, l.Window}]; e != nil {
			switch {
			case start == e.start:
				e.cur = max(0, e.cur+d)
			case l.Window.Sliding() && start == e.start-length:
				e.prev = max(0, e.prev+d)
			}
		}
		sh.mu.Unlock()
	}
}

// sweep frees every counter that no longer counts at now, shard by shard,
// and rebuilds maps that shrank to a quarter of their peak. It returns
// the number of counters freed.
func (s *state) sweep(now time.Time) int {
	t := now.UnixNano()
	freed := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for k, e := range sh.m {
			if e.expires <= t {
				delete(sh.m, k)
				freed++
			}
		}
		if sh.peak > shrinkFloor && len(sh.m) < sh.peak/4 {
			m := make(map[entryKey]*entry, len(sh.m))
			for k, e := range sh.m {
				m[k] = e
			}
			sh.m, sh.peak = m, len(m)
		}
		sh.mu.Unlock()
	}
	return freed
}

// len returns the number of counters held.
func (s *state) len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

var _ budgets.Store = (*state)(nil)
