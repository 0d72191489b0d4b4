package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	goredis "github.com/redis/go-redis/v9"

	"github.com/groundgate/groundgate/budgets"
	"github.com/groundgate/groundgate/budgets/storetest"
	"github.com/groundgate/groundgate/plugins/stores/memory"
)

// newTestStore returns a store with a client of its own (one "gateway
// instance") on addr, with the given key prefix, clock and timeout.
func newTestStore(t testing.TB, addr, prefix string, now func() time.Time, timeout time.Duration) *Store {
	t.Helper()
	k := clientKey{addrs: addr, timeout: timeout, dialTimeout: time.Second}
	c := newClient(k)
	t.Cleanup(func() { _ = c.Close() })
	return &Store{Address: addr, client: c, key: k, prefix: prefix, timeout: timeout, now: now}
}

// get reads a key's integer value straight from Redis (0 when missing).
func get(t testing.TB, s *Store, key string) int64 {
	t.Helper()
	v, err := s.client.Get(context.Background(), key).Int64()
	if errors.Is(err, goredis.Nil) {
		return 0
	}
	if err != nil {
		t.Fatalf("GET %s: %v", key, err)
	}
	return v
}

func TestConformance(t *testing.T) {
	srv := startRedis(t)
	var n atomic.Int64
	storetest.Run(t, func(t *testing.T, now func() time.Time) budgets.Store {
		return newTestStore(t, srv.addr(), fmt.Sprintf("conf%d:", n.Add(1)), now, time.Second)
	})
}

// TestConcurrencyTwoInstances is the headline test: two gateway
// instances (two stores, two go-redis clients, two connection pools)
// share one tokens-per-minute budget in one Redis, with 64 goroutines.
func TestConcurrencyTwoInstances(t *testing.T) {
	srv := startRedis(t)
	clock := storetest.NewClock(storetest.T0)
	a := newTestStore(t, srv.addr(), "cc:", clock.Now, 2*time.Second)
	b := newTestStore(t, srv.addr(), "cc:", clock.Now, 2*time.Second)
	if a.client == b.client {
		t.Fatal("the two instances share a client")
	}
	lim := budgets.Limit{Key: "tpm:concurrency", Window: budgets.Minute, Max: 100000}
	start, _ := lim.Window.Bucket(clock.Now())
	key := bucketKey("cc:", &lim, start)
	res := storetest.Concurrency(t, []budgets.Store{a, b}, 64, lim.Max, func() int64 { return get(t, a, key) })
	if res.Overshoot != 0 {
		t.Errorf("overshoot %d", res.Overshoot)
	}
}

// TestDifferentialMemory runs the same random operations against the
// memory store and the Redis store with one clock: the Lua scripts and
// the in-process code must decide, report and wait identically.
func TestDifferentialMemory(t *testing.T) {
	srv := startRedis(t)
	clock := storetest.NewClock(storetest.T0)
	rs := newTestStore(t, srv.addr(), "diff:", clock.Now, time.Second)
	ms := memory.New(clock.Now)
	limits := []budgets.Limit{
		{Key: "m1", Window: budgets.Minute, Max: 1000},
		{Key: "m2", Window: budgets.Minute, Max: 300},
		{Key: "d", Window: budgets.Day, Max: 5000, Quota: true},
		{Key: "mo", Window: budgets.Month, Max: 20000, Quota: true},
	}
	type pair struct{ m, r *budgets.Reservation }
	var open []pair
	rng := rand.New(rand.NewPCG(7, 7))
	ctx := context.Background()
	admitted, denied := 0, 0
	for op := range 1500 {
		switch k := rng.IntN(10); {
		case k < 6: // reserve 1 to 3 charges, the same limit possibly twice
			var charges []budgets.Charge
			for range 1 + rng.IntN(3) {
				charges = append(charges, budgets.Charge{Limit: limits[rng.IntN(len(limits))], N: rng.Int64N(400)})
			}
			mr, mst, merr := ms.Reserve(ctx, charges)
			rr, rst, rerr := rs.Reserve(ctx, charges)
			var md, rd *budgets.Denied
			errors.As(merr, &md)
			errors.As(rerr, &rd)
			switch {
			case merr == nil && rerr == nil:
				admitted++
				open = append(open, pair{mr, rr})
			case md != nil && rd != nil:
				denied++
				if md.Limit != rd.Limit || md.RetryAfter != rd.RetryAfter {
					t.Fatalf("op %d at %v %v: memory denied %s after %v, redis %s after %v",
						op, clock.Now(), charges, md.Limit.Key, md.RetryAfter, rd.Limit.Key, rd.RetryAfter)
				}
			default:
				t.Fatalf("op %d at %v %v: memory %v, redis %v", op, clock.Now(), charges, merr, rerr)
			}
			if fmt.Sprint(mst) != fmt.Sprint(rst) {
				t.Fatalf("op %d at %v %v: statuses differ:\nmemory %v\nredis  %v", op, clock.Now(), charges, mst, rst)
			}
		case k < 8 && len(open) > 0: // settle
			i := rng.IntN(len(open))
			p := open[i]
			open = append(open[:i], open[i+1:]...)
			actual := make([]int64, len(p.m.Charges))
			for j := range actual {
				actual[j] = rng.Int64N(500)
			}
			if err := ms.Settle(ctx, p.m, actual); err != nil {
				t.Fatal(err)
			}
			if err := rs.Settle(ctx, p.r, actual); err != nil {
				t.Fatal(err)
			}
		case k < 9 && len(open) > 0: // release
			i := rng.IntN(len(open))
			p := open[i]
			open = append(open[:i], open[i+1:]...)
			if err := ms.Release(ctx, p.m); err != nil {
				t.Fatal(err)
			}
			if err := rs.Release(ctx, p.r); err != nil {
				t.Fatal(err)
			}
		default: // time passes
			switch rng.IntN(20) {
			case 0:
				clock.Add(time.Duration(rng.Int64N(int64(48 * time.Hour))))
			case 1:
				clock.Add(time.Duration(rng.Int64N(int64(20 * 24 * time.Hour))))
			default:
				clock.Add(time.Duration(rng.Int64N(int64(40 * time.Second))))
			}
		}
	}
	if admitted < 100 || denied < 100 {
		t.Errorf("weak run: %d admitted, %d denied", admitted, denied)
	}
	t.Logf("1500 operations: %d reservations admitted, %d denied, identical in both stores", admitted, denied)
}

// TestUnavailable: Redis crashes mid-run, hangs, and comes back.
func TestUnavailable(t *testing.T) {
	srv := startRedis(t)
	const timeout = 200 * time.Millisecond
	s := newTestStore(t, srv.addr(), "u:", time.Now, timeout)
	ctx := context.Background()
	lim := budgets.Limit{Key: "tpm", Window: budgets.Minute, Max: 1 << 40}
	charge := []budgets.Charge{{Limit: lim, N: 10}}
	r, _, err := s.Reserve(ctx, charge)
	if err != nil {
		t.Fatal(err)
	}
	// Keep a few connections in the pool, as a busy gateway would.
	for range 8 {
		if _, _, err := s.Reserve(ctx, charge); err != nil {
			t.Fatal(err)
		}
	}

	wantUnavailable := func(what string, err error, elapsed time.Duration) {
		t.Helper()
		if !errors.Is(err, budgets.ErrUnavailable) {
			t.Fatalf("%s: err = %v, want ErrUnavailable", what, err)
		}
		var d *budgets.Denied
		if errors.As(err, &d) {
			t.Fatalf("%s: unavailable reported as denied", what)
		}
		if elapsed > timeout+300*time.Millisecond {
			t.Errorf("%s took %v, timeout is %v", what, elapsed, timeout)
		}
	}

	srv.stop() // a crash
	for i := range 3 {
		start := time.Now()
		_, _, err := s.Reserve(ctx, charge)
		wantUnavailable(fmt.Sprintf("Reserve %d with Redis down", i), err, time.Since(start))
	}
	start := time.Now()
	wantUnavailable("Settle with Redis down", s.Settle(ctx, r, []int64{20}), time.Since(start))

	srv.restart()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, _, err := s.Reserve(ctx, charge)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Redis is back but Reserve still fails: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A hung server: connections open, no answers.
	srv.pause()
	start = time.Now()
	_, _, err = s.Reserve(ctx, charge)
	wantUnavailable("Reserve with Redis hung", err, time.Since(start))
	srv.resume()
	deadline = time.Now().Add(5 * time.Second)
	for {
		_, st, err := s.Reserve(ctx, charge)
		if err == nil {
			if len(st) != 1 {
				t.Fatalf("statuses %v", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Redis resumed but Reserve still fails: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestUnreachable: nothing listens at the address.
func TestUnreachable(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	s := newTestStore(t, addr, "x:", time.Now, 100*time.Millisecond)
	start := time.Now()
	_, _, err := s.Reserve(context.Background(), []budgets.Charge{{Limit: budgets.Limit{Key: "k", Window: budgets.Day, Max: 1}, N: 1}})
	if !errors.Is(err, budgets.ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
	if el := time.Since(start); el > 500*time.Millisecond {
		t.Errorf("took %v", el)
	}
	// Invalid charges are the caller's error, not unavailability.
	_, _, err = s.Reserve(context.Background(), []budgets.Charge{{Limit: budgets.Limit{Key: "k", Window: "week", Max: 1}, N: 1}})
	if err == nil || errors.Is(err, budgets.ErrUnavailable) {
		t.Fatalf("invalid charge: %v", err)
	}
}

// TestScriptsReloadAfterFlush: a restarted or flushed Redis has no
// scripts cached; EVALSHA's NOSCRIPT falls back to EVAL once.
func TestScriptsReloadAfterFlush(t *testing.T) {
	srv := startRedis(t)
	s := newTestStore(t, srv.addr(), "ns:", time.Now, time.Second)
	ctx := context.Background()
	lim := budgets.Limit{Key: "k", Window: budgets.Minute, Max: 100}
	for range 3 {
		r, _, err := s.Reserve(ctx, []budgets.Charge{{Limit: lim, N: 1}})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.client.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if err := s.Settle(ctx, r, []int64{2}); err != nil {
			t.Fatal(err)
		}
		if err := s.client.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for range 5 {
		if _, _, err := s.Reserve(ctx, []budgets.Charge{{Limit: lim, N: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	info, err := s.client.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	// Every script call is an EVALSHA (11); the 7 that followed a flush
	// failed with NOSCRIPT and were sent again, once, with EVAL.
	stat := func(cmd string) string {
		for _, line := range strings.Split(info, "\n") {
			if strings.HasPrefix(line, "cmdstat_"+cmd+":") {
				return strings.TrimSpace(line)
			}
		}
		return ""
	}
	if es := stat("evalsha"); !strings.Contains(es, "calls=11,") || !strings.Contains(es, "failed_calls=7") {
		t.Errorf("EVALSHA stats: %q", es)
	}
	if e := stat("eval"); !strings.Contains(e, "calls=7,") || !strings.Contains(e, "failed_calls=0") {
		t.Errorf("EVAL stats: %q", e)
	}
	start, _ := lim.Window.Bucket(time.Now())
	if v := get(t, s, bucketKey("ns:", &lim, start)); v != 11 {
		// Minute boundaries may split the run; the total must still hold.
		prev := get(t, s, bucketKey("ns:", &lim, start.Add(-time.Minute)))
		if v+prev != 11 {
			t.Errorf("counter %d (+%d previous minute), want 11", v, prev)
		}
	}
}

// TestKeysAndTTLs checks key names and that every key expires shortly
// after its window stops counting.
func TestKeysAndTTLs(t *testing.T) {
	srv := startRedis(t)
	now := time.Date(2026, 3, 14, 12, 0, 15, 0, time.UTC)
	s := newTestStore(t, srv.addr(), "ttl:", func() time.Time { return now }, time.Second)
	ctx := context.Background()
	m := budgets.Limit{Key: "tpm:team:support", Window: budgets.Minute, Max: 100}
	d := budgets.Limit{Key: "quota:key:1", Window: budgets.Day, Max: 100, Quota: true}
	mo := budgets.Limit{Key: "quota:team:support", Window: budgets.Month, Max: 100, Quota: true}
	z := budgets.Limit{Key: "zero", Window: budgets.Minute, Max: 100}
	if _, _, err := s.Reserve(ctx, []budgets.Charge{chg(m, 1), chg(d, 1), chg(mo, 1), chg(z, 0)}); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]time.Duration{
		"ttl:{budgets}tpm:team:support:minute:1773489600":  45*time.Second + time.Minute + keyGrace,
		"ttl:{budgets}quota:key:1:day:1773446400":          11*time.Hour + 59*time.Minute + 45*time.Second + keyGrace,
		"ttl:{budgets}quota:team:support:month:1772323200": 17*24*time.Hour + 11*time.Hour + 59*time.Minute + 45*time.Second + keyGrace,
	} {
		ttl, err := s.client.PTTL(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl > want || ttl < want-5*time.Second {
			t.Errorf("PTTL %s = %v, want %v", key, ttl, want)
		}
	}
	keys, err := s.client.Keys(ctx, "ttl:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 {
		t.Errorf("keys %v: a zero charge must not create one", keys)
	}
	// A settle keeps the TTL; a settle to an expired bucket recreates nothing.
	r, _, err := s.Reserve(ctx, []budgets.Charge{chg(d, 5)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.client.Del(ctx, "ttl:{budgets}quota:key:1:day:1773446400").Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Settle(ctx, r, []int64{50}); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.client.Exists(ctx, "ttl:{budgets}quota:key:1:day:1773446400").Result(); n != 0 {
		t.Error("a settle recreated an expired bucket")
	}
}

// TestSettleAfterCancel: the request's context is gone (client hung up)
// but the tokens were used: the settle still lands.
func TestSettleAfterCancel(t *testing.T) {
	srv := startRedis(t)
	s := newTestStore(t, srv.addr(), "c:", time.Now, time.Second)
	lim := budgets.Limit{Key: "k", Window: budgets.Day, Max: 1000}
	ctx, cancel := context.WithCancel(context.Background())
	r, _, err := s.Reserve(ctx, []budgets.Charge{chg(lim, 10)})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := s.Settle(ctx, r, []int64{300}); err != nil {
		t.Fatal(err)
	}
	start, _ := lim.Window.Bucket(r.At)
	if v := get(t, s, bucketKey("c:", &lim, start)); v != 300 {
		t.Errorf("counter %d, want 300", v)
	}
}

// TestPrefixes: stores with different prefixes on one server count apart.
func TestPrefixes(t *testing.T) {
	srv := startRedis(t)
	a := newTestStore(t, srv.addr(), "a:", time.Now, time.Second)
	b := newTestStore(t, srv.addr(), "b:", time.Now, time.Second)
	lim := budgets.Limit{Key: "k", Window: budgets.Day, Max: 10}
	ctx := context.Background()
	if _, _, err := a.Reserve(ctx, []budgets.Charge{chg(lim, 10)}); err != nil {
		t.Fatal(err)
	}
	if _, st, err := b.Reserve(ctx, []budgets.Charge{chg(lim, 10)}); err != nil || st[0].Remaining != 0 {
		t.Fatalf("b: %v, %v", st, err)
	}
	if _, _, err := a.Reserve(ctx, []budgets.Charge{chg(lim, 1)}); err == nil {
		t.Fatal("a: over its limit")
	}
}

// TestProvision provisions the module from JSON through a Caddy context,
// with the address and password from environment placeholders, and
// checks that configs with the same connection share one client.
func TestProvision(t *testing.T) {
	const password = "s3cret-for-test"
	srv := startRedis(t, "--requirepass", password)
	t.Setenv("GG_TEST_REDIS_ADDR", srv.addr())
	t.Setenv("GG_TEST_REDIS_PASSWORD", password)
	cfg := `{"address":"{env.GG_TEST_REDIS_ADDR}","password":"{env.GG_TEST_REDIS_PASSWORD}","prefix":"prov:","timeout":"500ms","db":2}`

	ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
	defer cancel()
	provision := func(js string) *Store {
		t.Helper()
		var s Store
		if err := json.Unmarshal([]byte(js), &s); err != nil {
			t.Fatal(err)
		}
		if err := s.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		return &s
	}
	s1 := provision(cfg)
	if s1.key.addrs != srv.addr() || s1.key.password != password || s1.prefix != "prov:" || s1.timeout != 500*time.Millisecond {
		t.Fatalf("placeholders or settings not applied: addr %q prefix %q timeout %v", s1.key.addrs, s1.prefix, s1.timeout)
	}
	lim := budgets.Limit{Key: "k", Window: budgets.Day, Max: 10}
	if _, _, err := s1.Reserve(t.Context(), []budgets.Charge{chg(lim, 4)}); err != nil {
		t.Fatal(err)
	}
	// Database 2 holds the key.
	start, _ := lim.Window.Bucket(time.Now())
	if v := get(t, s1, bucketKey("prov:", &lim, start)); v != 4 {
		t.Errorf("counter %d, want 4", v)
	}

	// A reload with the same connection settings shares the client.
	s2 := provision(strings.Replace(cfg, "prov:", "other:", 1))
	if s2.client != s1.client {
		t.Error("same connection settings, different clients")
	}
	if refs, _ := clients.References(s1.key); refs != 2 {
		t.Errorf("client references = %d, want 2", refs)
	}
	if err := s1.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s2.Reserve(t.Context(), []budgets.Charge{chg(lim, 1)}); err != nil {
		t.Fatalf("after the old config's cleanup: %v", err)
	}
	if err := s2.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if _, ok := clients.References(s1.key); ok {
		t.Error("the client outlived its last config")
	}

	// A wrong password: provisioning succeeds (Redis may come later), each
	// operation fails as unavailable, without the secret in the error.
	t.Setenv("GG_TEST_REDIS_PASSWORD", "wrong-password")
	s3 := provision(cfg)
	defer s3.Cleanup()
	_, _, err := s3.Reserve(t.Context(), []budgets.Charge{chg(lim, 1)})
	if !errors.Is(err, budgets.ErrUnavailable) {
		t.Fatalf("wrong password: %v", err)
	}
	if strings.Contains(err.Error(), "wrong-password") || strings.Contains(err.Error(), password) {
		t.Errorf("the error shows the password: %v", err)
	}

	// Invalid settings.
	for _, js := range []string{`{"db":-1}`, `{"pool_size":-1}`, `{"timeout":"-1s"}`, `{"address":"no-port"}`} {
		var s Store
		if err := json.Unmarshal([]byte(js), &s); err != nil {
			t.Fatal(err)
		}
		if err := s.Provision(ctx); err == nil {
			s.Cleanup()
			t.Errorf("%s accepted", js)
		}
	}
	mi, err := caddy.GetModule("llm_gateway.stores.redis")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := mi.New().(budgets.Store); !ok {
		t.Error("the registered module is not a budgets.Store")
	}
}

func chg(l budgets.Limit, n int64) budgets.Charge { return budgets.Charge{Limit: l, N: n} }

func TestBucketKey(t *testing.T) {
	l := budgets.Limit{Key: "tpm:team:support", Window: budgets.Minute}
	got := bucketKey("gg:", &l, time.Date(2026, 1, 1, 0, 1, 0, 0, time.UTC))
	if got != "gg:{budgets}tpm:team:support:minute:1767225660" {
		t.Errorf("bucketKey = %q", got)
	}
}

// TestLargeCounters: near budgets.MaxUnits the script's double arithmetic
// must still agree with the Go arithmetic to the unit.
func TestLargeCounters(t *testing.T) {
	srv := startRedis(t)
	clock := storetest.NewClock(time.Date(2026, 3, 14, 12, 0, 30, 0, time.UTC))
	rs := newTestStore(t, srv.addr(), "big:", clock.Now, time.Second)
	ms := memory.New(clock.Now)
	ctx := context.Background()
	for i, n := range []int64{budgets.MaxUnits, budgets.MaxUnits - 1, budgets.MaxUnits - 59999, 1<<53/60000 + 7, 123456789012345} {
		lim := budgets.Limit{Key: fmt.Sprint("big", i), Window: budgets.Minute, Max: budgets.MaxUnits}
		for _, s := range []budgets.Store{ms, rs} {
			if _, _, err := s.Reserve(ctx, []budgets.Charge{chg(lim, n)}); err != nil {
				t.Fatal(err)
			}
		}
		for _, later := range []time.Duration{30*time.Second + time.Millisecond, 31 * time.Second, 61*time.Second + 7*time.Millisecond, 77*time.Second + 77*time.Millisecond, 89*time.Second + 999*time.Millisecond} {
			clock.Set(time.Date(2026, 3, 14, 12, 0, 30, 0, time.UTC).Add(later))
			_, mst, merr := ms.Reserve(ctx, []budgets.Charge{chg(lim, 0)})
			_, rst, rerr := rs.Reserve(ctx, []budgets.Charge{chg(lim, 0)})
			if (merr == nil) != (rerr == nil) || len(mst) != 1 || len(rst) != 1 || mst[0] != rst[0] {
				t.Fatalf("%d units, %v later: memory %v %v, redis %v %v", n, later, mst, merr, rst, rerr)
			}
			// Every instant is in the 12:01 bucket: the 12:00 one is the previous.
			c := budgets.NewCounter(budgets.Minute, clock.Now(), 0, n)
			if want := c.Remaining(lim.Max); rst[0].Remaining != want {
				t.Fatalf("%d units, %v later: remaining %d, want %d", n, later, rst[0].Remaining, want)
			}
		}
		clock.Set(time.Date(2026, 3, 14, 12, 0, 30, 0, time.UTC))
	}
}

func TestClientOptions(t *testing.T) {
	c := newClient(clientKey{addrs: "gg.redis.cache.windows.net:6380", tls: true, timeout: 50 * time.Millisecond, dialTimeout: time.Second, poolSize: 7})
	defer c.Close()
	o := c.(*goredis.Client).Options()
	if o.TLSConfig == nil || o.TLSConfig.ServerName != "gg.redis.cache.windows.net" {
		t.Errorf("TLS config %+v", o.TLSConfig)
	}
	// go-redis normalizes MaxRetries -1 (no retries) to 0.
	if o.MaxRetries != 0 || o.ReadTimeout != 50*time.Millisecond || o.PoolTimeout != 50*time.Millisecond || o.PoolSize != 7 || !o.ContextTimeoutEnabled {
		t.Errorf("options: retries %d read %v pool timeout %v size %d ctx %v", o.MaxRetries, o.ReadTimeout, o.PoolTimeout, o.PoolSize, o.ContextTimeoutEnabled)
	}
	plain := newClient(clientKey{addrs: "127.0.0.1:6379", timeout: time.Second})
	defer plain.Close()
	if plain.(*goredis.Client).Options().TLSConfig != nil {
		t.Error("TLS without tls")
	}
}
