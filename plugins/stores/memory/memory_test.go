package memory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/groundgate/groundgate/budgets"
	"github.com/groundgate/groundgate/budgets/storetest"
)

func newTestState(t *testing.T, now func() time.Time) *state {
	t.Helper()
	s := newState(now)
	t.Cleanup(func() { _ = s.Destruct() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time) budgets.Store {
		return newTestState(t, now)
	})
}

// counter reads a limit's current-bucket count straight from the shards.
func (s *state) counter(l budgets.Limit) int64 {
	sh := &s.shards[s.shardOf(l.Key)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e := sh.m[entryKey{l.Key, l.Window}]; e != nil {
		return e.cur
	}
	return 0
}

func TestConcurrency64(t *testing.T) {
	clock := storetest.NewClock(storetest.T0)
	s := newTestState(t, clock.Now)
	lim := budgets.Limit{Key: "tpm:concurrency", Window: budgets.Minute, Max: 100000}
	res := storetest.Concurrency(t, []budgets.Store{s}, 64, lim.Max, func() int64 { return s.counter(lim) })
	if res.Overshoot != 0 {
		t.Errorf("overshoot %d", res.Overshoot)
	}
}

// TestSweepBoundsMemory fills the store with many short-lived counters,
// lets their windows pass, and checks that the sweep frees them and gives
// the memory of the grown maps back.
func TestSweepBoundsMemory(t *testing.T) {
	clock := storetest.NewClock(storetest.T0)
	s := newTestState(t, clock.Now)
	ctx := context.Background()
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	const keys = 200000
	day := budgets.Limit{Key: "long", Window: budgets.Day, Max: 10}
	for i := range keys {
		l := budgets.Limit{Key: "k" + strconv.Itoa(i), Window: budgets.Minute, Max: 1000}
		if _, _, err := s.Reserve(ctx, []budgets.Charge{{Limit: l, N: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.Reserve(ctx, []budgets.Charge{{Limit: day, N: 1}}); err != nil {
		t.Fatal(err)
	}
	if n := s.len(); n != keys+1 {
		t.Fatalf("%d counters, want %d", n, keys+1)
	}
	full := heap()
	// A minute counter still counts during the next minute.
	clock.Add(time.Minute)
	if freed := s.sweep(clock.Now()); freed != 0 {
		t.Fatalf("sweep freed %d counters still counting", freed)
	}
	clock.Add(time.Minute)
	if freed := s.sweep(clock.Now()); freed != keys {
		t.Fatalf("sweep freed %d counters, want %d", freed, keys)
	}
	if n := s.len(); n != 1 {
		t.Fatalf("%d counters left, want the day counter only", n)
	}
	after := heap()
	t.Logf("heap: %d KiB empty, %d KiB with %d counters, %d KiB after the sweep", before>>10, full>>10, keys, after>>10)
	if grown := int64(after) - int64(before); grown > 2<<20 {
		t.Errorf("heap still %d KiB above its start after the sweep (full: %d KiB)", grown>>10, (full-before)>>10)
	}
	// The day counter is intact.
	_, st, err := s.Reserve(ctx, []budgets.Charge{{Limit: day, N: 0}})
	if err != nil || st[0].Remaining != 9 {
		t.Fatalf("day counter after the sweep: %v, %v", st, err)
	}
}

// TestLazyExpiry: a counter whose window passed is reused fresh even
// before any sweep.
func TestLazyExpiry(t *testing.T) {
	clock := storetest.NewClock(storetest.T0)
	s := newTestState(t, clock.Now)
	ctx := context.Background()
	l := budgets.Limit{Key: "a", Window: budgets.Minute, Max: 10}
	if _, _, err := s.Reserve(ctx, []budgets.Charge{{Limit: l, N: 10}}); err != nil {
		t.Fatal(err)
	}
	clock.Add(10 * time.Minute)
	_, st, err := s.Reserve(ctx, []budgets.Charge{{Limit: l, N: 10}})
	if err != nil || st[0].Remaining != 0 {
		t.Fatalf("Reserve after expiry: %v, %v", st, err)
	}
}

// TestSweeperRuns checks the background sweeper frees expired counters and
// stops on Destruct.
func TestSweeperRuns(t *testing.T) {
	clock := storetest.NewClock(storetest.T0)
	s := newState(clock.Now)
	s.sweepEvery.Store(int64(5 * time.Millisecond))
	s.startSweeper()
	defer s.Destruct()
	l := budgets.Limit{Key: "a", Window: budgets.Minute, Max: 10}
	if _, _, err := s.Reserve(context.Background(), []budgets.Charge{{Limit: l, N: 1}}); err != nil {
		t.Fatal(err)
	}
	clock.Add(3 * time.Minute)
	deadline := time.Now().Add(5 * time.Second)
	for s.len() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the sweeper did not free the expired counter")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestNoDeadlockAcrossShards reserves the same limits in opposite orders
// from many goroutines: shards must be locked in a fixed order.
func TestNoDeadlockAcrossShards(t *testing.T) {
	s := newTestState(t, time.Now)
	ctx := context.Background()
	var ls []budgets.Limit
	for i := range 16 {
		ls = append(ls, budgets.Limit{Key: fmt.Sprint("l", i), Window: budgets.Minute, Max: 1 << 40})
	}
	done := make(chan struct{})
	for g := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 2000 {
				a, b := ls[(g+i)%len(ls)], ls[(g*7+i*3+1)%len(ls)]
				if g%2 == 1 {
					a, b = b, a
				}
				r, _, err := s.Reserve(ctx, []budgets.Charge{{Limit: a, N: 1}, {Limit: b, N: 1}})
				if err != nil {
					t.Error(err)
					return
				}
				_ = s.Settle(ctx, r, []int64{2, 0})
			}
		}()
	}
	timeout := time.After(60 * time.Second)
	for range 8 {
		select {
		case <-done:
		case <-timeout:
			t.Fatal("deadlock: reservations did not finish")
		}
	}
}

// TestReloadKeepsCounters provisions a second config with the same store
// name before cleaning up the first, as caddy reload does, and checks the
// counters carry over; then that the pool empties.
func TestReloadKeepsCounters(t *testing.T) {
	ctx1, cancel1 := caddy.NewContext(caddy.Context{Context: t.Context()})
	defer cancel1()
	var s1 Store
	if err := json.Unmarshal([]byte(`{"name":"reload-test"}`), &s1); err != nil {
		t.Fatal(err)
	}
	if err := s1.Provision(ctx1); err != nil {
		t.Fatal(err)
	}
	l := budgets.Limit{Key: "team:a", Window: budgets.Day, Max: 100, Quota: true}
	r, _, err := s1.Reserve(t.Context(), []budgets.Charge{{Limit: l, N: 30}})
	if err != nil {
		t.Fatal(err)
	}

	ctx2, cancel2 := caddy.NewContext(caddy.Context{Context: t.Context()})
	defer cancel2()
	s2 := Store{Name: "reload-test"}
	if err := s2.Provision(ctx2); err != nil {
		t.Fatal(err)
	}
	if err := s1.Cleanup(); err != nil {
		t.Fatal(err)
	}
	// An in-flight request of the old config settles after its cleanup.
	if err := s1.Settle(t.Context(), r, []int64{40}); err != nil {
		t.Fatal(err)
	}
	_, st, err := s2.Reserve(t.Context(), []budgets.Charge{{Limit: l, N: 0}})
	if err != nil || st[0].Remaining != 60 {
		t.Fatalf("after reload: %v, %v; want 60 remaining", st, err)
	}
	if refs, ok := pool.References("reload-test"); !ok || refs != 1 {
		t.Fatalf("pool references = %d, %v; want 1", refs, ok)
	}
	if err := s2.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if _, ok := pool.References("reload-test"); ok {
		t.Fatal("the pool still holds the counters after the last cleanup")
	}
	// A new config with the same name starts empty.
	s3 := Store{Name: "reload-test"}
	if err := s3.Provision(ctx2); err != nil {
		t.Fatal(err)
	}
	defer s3.Cleanup()
	_, st, err = s3.Reserve(t.Context(), []budgets.Charge{{Limit: l, N: 0}})
	if err != nil || st[0].Remaining != 100 {
		t.Fatalf("fresh store: %v, %v", st, err)
	}
}

func TestProvisionDefaultsAndValidate(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
	defer cancel()
	var s Store
	if err := s.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Cleanup()
	if s.Name != "default" || time.Duration(s.SweepInterval) != 30*time.Second {
		t.Errorf("defaults: %+v", s)
	}
	if time.Duration(s.st.sweepEvery.Load()) != 30*time.Second {
		t.Errorf("sweeper interval not applied")
	}
	bad := Store{Name: "bad", SweepInterval: caddy.Duration(time.Millisecond)}
	if err := bad.Provision(ctx); err == nil {
		bad.Cleanup()
		t.Error("a 1ms sweep interval was accepted")
	}
	if _, ok := pool.References("bad"); ok {
		t.Error("a failed provision left counters in the pool")
	}
	// The module is registered under its ID.
	mi, err := caddy.GetModule("llm_gateway.stores.memory")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := mi.New().(budgets.Store); !ok {
		t.Error("the registered module is not a budgets.Store")
	}
}

func TestDeniedIsTyped(t *testing.T) {
	s := newTestState(t, time.Now)
	l := budgets.Limit{Key: "a", Window: budgets.Minute, Max: 1}
	_, _, err := s.Reserve(context.Background(), []budgets.Charge{{Limit: l, N: 2}})
	var d *budgets.Denied
	if !errors.As(err, &d) || errors.Is(err, budgets.ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
}
