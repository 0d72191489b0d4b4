package redis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	goredis "github.com/redis/go-redis/v9"

	"github.com/groundgate/groundgate/budgets"
)

// testCluster is a real Redis Cluster (3 primaries, 3 replicas) started
// by scripts/redis-test-server.sh for one test.
type testCluster struct {
	dir       string
	primaries []string
	replicas  []string
}

func (c *testCluster) addrs() []string {
	return append(append([]string(nil), c.primaries...), c.replicas...)
}

// startCluster starts the cluster and stops it in t.Cleanup. It skips the
// test only when redis-server is missing and cannot be installed (the
// script's exit status 3).
func startCluster(t *testing.T) *testCluster {
	t.Helper()
	script := "../../../scripts/redis-test-server.sh"
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("bash", script, "cluster", t.TempDir()+"/cluster")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 3 {
			t.Skipf("redis-server is not installed and could not be installed (apt-get), so no Redis Cluster: %s", stderr.String())
		}
		t.Fatalf("starting a Redis Cluster: %v\n%s", err, stderr.String())
	}
	lines := strings.Fields(stdout.String())
	if len(lines) != 7 {
		t.Fatalf("redis-test-server.sh cluster printed %q", stdout.String())
	}
	c := &testCluster{dir: lines[0], primaries: lines[1:4], replicas: lines[4:7]}
	t.Cleanup(func() {
		_ = exec.Command("bash", script, "cluster-stop", c.dir).Run()
	})
	return c
}

func newClusterStore(t *testing.T, c *testCluster, prefix string, now func() time.Time) *Store {
	t.Helper()
	k := clientKey{mode: modeCluster, addrs: strings.Join(c.addrs(), ","), timeout: 2 * time.Second, dialTimeout: time.Second}
	cl := newClient(k)
	t.Cleanup(func() { _ = cl.Close() })
	return &Store{client: cl, key: k, prefix: prefix, timeout: k.timeout, now: now}
}

// nodeClient talks to one node only.
func nodeClient(t *testing.T, addr string) *goredis.Client {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: addr, DisableIdentity: true})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// budgetPrimary finds the primary that serves the budgets' hash slot and
// one of its replicas.
func budgetPrimary(t *testing.T, c *testCluster) (primary, replica string) {
	t.Helper()
	ctx := context.Background()
	node := nodeClient(t, c.primaries[0])
	slot, err := node.ClusterKeySlot(ctx, "budgets").Result()
	if err != nil {
		t.Fatal(err)
	}
	shards, err := node.ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range shards {
		if int64(s.Start) <= slot && slot <= int64(s.End) {
			primary = s.Nodes[0].Addr
		}
	}
	// The replica that follows it, as the replica itself says (ROLE:
	// slave, host, port, ...); gossip may not have told every node yet.
	for _, r := range c.replicas {
		role, err := nodeClient(t, r).Do(ctx, "ROLE").Slice()
		if err == nil && len(role) >= 3 && role[0] == "slave" && fmt.Sprintf("%v:%v", role[1], role[2]) == primary {
			return primary, r
		}
	}
	t.Fatalf("no replica of %s (slot %d) among %v", primary, slot, c.replicas)
	return "", ""
}

// TestClusterBudgetKeysOneSlot: every key one reservation touches hashes
// to the same slot, whatever the limits' keys (a script over keys of two
// slots fails with CROSSSLOT on a cluster).
func TestClusterBudgetKeysOneSlot(t *testing.T) {
	start := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	want := goredisSlot("budgets")
	for _, key := range []string{"tpm|key|alice", "quota|team|{support}", "x", "policy|global|"} {
		l := budgets.Limit{Key: key, Window: budgets.Minute, Max: 10}
		if got := goredisSlot(bucketKey("gg:", &l, start)); got != want {
			t.Errorf("key %q: slot %d, want %d", bucketKey("gg:", &l, start), got, want)
		}
	}
}

// goredisSlot is Redis Cluster's key slot (CRC16 of the hash tag, or of
// the whole key without one) mod 16384.
func goredisSlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}

// TestClusterTwoInstancesFailover: two gateway instances (two stores, two
// cluster clients) reserve and settle against one limit under
// concurrency while the primary holding the budgets fails over to its
// replica (CLUSTER FAILOVER). The policy fails closed: a reservation the
// store could not answer admits nothing. Admitted tokens stay within the
// limit plus one estimate, and the counter afterwards holds every
// settlement that was acknowledged: none is lost in the failover.
func TestClusterTwoInstancesFailover(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	now := func() time.Time { return time.Date(2026, 3, 14, 12, 0, 30, 0, time.UTC) }
	a := newClusterStore(t, c, "fo:", now)
	b := newClusterStore(t, c, "fo:", now)
	primary, replica := budgetPrimary(t, c)

	const (
		limit    = 200_000
		estimate = 1_000
		workers  = 8
	)
	lim := budgets.Limit{Key: "tpd|team|support", Window: budgets.Day, Max: limit, Quota: true}
	var (
		admittedActual  atomic.Int64 // tokens of admitted requests (what they used)
		settledExpected atomic.Int64 // what the counter must hold: actual if settled, estimate if not
		reserveErrors   atomic.Int64 // store errors on reserve (refused: fail closed)
		settleErrors    atomic.Int64
		afterFailover   atomic.Int64 // operations that succeeded after the failover
		ops             atomic.Int64
		failedOver      atomic.Bool
		denied          atomic.Int64
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		s := a
		if w%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for {
				select {
				case <-stop:
					return
				default:
				}
				r, _, err := s.Reserve(ctx, []budgets.Charge{{Limit: lim, N: estimate}})
				ops.Add(1)
				var d *budgets.Denied
				switch {
				case errors.As(err, &d):
					denied.Add(1)
					if denied.Load() > 50 && failedOver.Load() && afterFailover.Load() > 50 {
						return
					}
					time.Sleep(time.Millisecond)
					continue
				case err != nil:
					if !errors.Is(err, budgets.ErrUnavailable) {
						t.Errorf("reserve: %v", err)
						return
					}
					reserveErrors.Add(1)
					continue
				}
				actual := int64(1 + rng.IntN(estimate))
				admittedActual.Add(actual)
				if err := s.Settle(ctx, r, []int64{actual}); err != nil {
					if !errors.Is(err, budgets.ErrUnavailable) {
						t.Errorf("settle: %v", err)
						return
					}
					settleErrors.Add(1)
					settledExpected.Add(estimate) // the reservation stays charged
				} else {
					settledExpected.Add(actual)
				}
				if failedOver.Load() {
					afterFailover.Add(1)
				}
			}
		}()
	}

	// Mid-run: the replica takes over the budgets' shard.
	for ops.Load() < 100 {
		time.Sleep(time.Millisecond)
	}
	rc := nodeClient(t, replica)
	if err := rc.ClusterFailover(ctx).Err(); err != nil {
		t.Fatalf("CLUSTER FAILOVER on %s: %v", replica, err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		role, err := rc.Do(ctx, "ROLE").Slice()
		if err == nil && len(role) > 0 && role[0] == "master" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s did not become primary: %v %v", replica, role, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	failedOver.Store(true)
	opsAtFailover := ops.Load()

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		close(stop)
		<-done
		t.Fatalf("the run did not reach the limit: %d ops, %d after the failover", ops.Load(), afterFailover.Load())
	}
	if afterFailover.Load() == 0 {
		t.Fatalf("no operation succeeded after the failover (%d ops before it)", opsAtFailover)
	}
	role, _ := nodeClient(t, primary).Do(ctx, "ROLE").Slice()
	if len(role) == 0 || role[0] != "slave" {
		t.Errorf("old primary %s: role %v, want slave", primary, role)
	}

	// The counter, read through the cluster from the new primary.
	key := bucketKey("fo:", &lim, time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC))
	got, err := a.client.Get(ctx, key).Int64()
	if err != nil {
		t.Fatalf("GET %s: %v", key, err)
	}
	want := settledExpected.Load()
	// A reservation whose reply was lost may have been charged (refused
	// yet counted: over, never under).
	if got < want || got > want+reserveErrors.Load()*estimate {
		t.Errorf("counter %d, want %d (+ at most %d reservations that errored): settlements lost in the failover",
			got, want, reserveErrors.Load())
	}
	if adm := admittedActual.Load(); adm > limit+estimate {
		t.Errorf("admitted %d tokens, limit %d + one estimate %d", adm, limit, estimate)
	}
	if denied.Load() == 0 {
		t.Error("the limit was never reached")
	}
	t.Logf("%d operations (%d before the failover, %d succeeded after it), %d denied, store errors: %d reserve, %d settle; admitted %d of %d tokens; counter %d",
		ops.Load(), opsAtFailover, afterFailover.Load(), denied.Load(), reserveErrors.Load(), settleErrors.Load(),
		admittedActual.Load(), limit, got)
}

// TestClusterCache: cache entries spread over the cluster's slots and
// read back through the other instance's client.
func TestClusterCache(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	a := newClusterStore(t, c, "cc:", time.Now)
	b := newClusterStore(t, c, "cc:", time.Now)
	for i := range 20 {
		key := fmt.Sprintf("answer-%d", i)
		if err := a.CacheSet(ctx, key, []byte(key), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	slots := map[int]bool{}
	for i := range 20 {
		key := fmt.Sprintf("answer-%d", i)
		v, ok, err := b.CacheGet(ctx, key)
		if err != nil || !ok || string(v) != key {
			t.Fatalf("CacheGet %s = %q %v %v", key, v, ok, err)
		}
		slots[goredisSlot("cc:cache:"+key)] = true
	}
	if len(slots) < 10 {
		t.Errorf("cache keys in %d slots: they should spread", len(slots))
	}
}

// TestProvisionModes: addresses, mode and master_name are checked
// together, naming what is wrong.
func TestProvisionModes(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
	defer cancel()
	for _, tc := range []struct {
		s    Store
		want string
	}{
		{Store{Addresses: []string{"a:1", "b:2"}}, "2 addresses need mode cluster or sentinel"},
		{Store{Mode: "sentinel", Address: "a:26379"}, "mode sentinel needs master_name"},
		{Store{Mode: "cluster", MasterName: "m"}, "master_name is for mode sentinel, not cluster"},
		{Store{Mode: "cluster", DB: 2}, "Redis Cluster has only db 0"},
		{Store{Mode: "ring"}, `mode must be standalone, cluster or sentinel, not "ring"`},
		{Store{Prefix: "{gg}:"}, "must not contain braces"},
		{Store{Mode: "cluster", Addresses: []string{"nohost"}}, `address "nohost"`},
	} {
		err := tc.s.Provision(ctx)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.s, err, tc.want)
		}
	}
	s := &Store{MasterName: "gg-primary", Addresses: []string{"127.0.0.1:1"}, Timeout: caddy.Duration(10 * time.Millisecond)}
	if err := s.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Cleanup()
	if s.key.mode != modeSentinel {
		t.Errorf("master_name without mode: %q, want sentinel", s.key.mode)
	}
	if _, _, err := s.Reserve(context.Background(), []budgets.Charge{{Limit: budgets.Limit{Key: "k", Window: budgets.Day, Max: 5}, N: 1}}); !errors.Is(err, budgets.ErrUnavailable) {
		t.Errorf("no Sentinel reachable: %v, want ErrUnavailable", err)
	}
	// No cluster node reachable: the config loads, calls fail fast.
	c := &Store{Mode: "cluster", Addresses: []string{"127.0.0.1:1", "127.0.0.1:2"}, Timeout: caddy.Duration(50 * time.Millisecond)}
	if err := c.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer c.Cleanup()
	start := time.Now()
	if _, _, err := c.Reserve(context.Background(), []budgets.Charge{{Limit: budgets.Limit{Key: "k", Window: budgets.Day, Max: 5}, N: 1}}); !errors.Is(err, budgets.ErrUnavailable) {
		t.Errorf("no cluster node reachable: %v, want ErrUnavailable", err)
	}
	if _, _, err := c.CacheGet(context.Background(), "x"); !errors.Is(err, budgets.ErrUnavailable) {
		t.Errorf("cache with no cluster node reachable: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("failing took %v", d)
	}
}

// TestClusterProvision: the module's own settings reach the cluster.
func TestClusterProvision(t *testing.T) {
	c := startCluster(t)
	s := &Store{Mode: "cluster", Address: c.primaries[0], Addresses: c.primaries[1:], Prefix: "prov:"}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
	defer cancel()
	if err := s.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Cleanup()
	if _, ok := s.client.(*goredis.ClusterClient); !ok {
		t.Fatalf("client %T, want a cluster client", s.client)
	}
	lim := budgets.Limit{Key: "k", Window: budgets.Minute, Max: 10}
	if _, _, err := s.Reserve(context.Background(), []budgets.Charge{{Limit: lim, N: 3}, {Limit: budgets.Limit{Key: "other", Window: budgets.Day, Max: 5}, N: 1}}); err != nil {
		t.Fatalf("a reservation over two limits on a cluster: %v", err)
	}
}

// A prefix may be a placeholder; braces left after resolving it are refused.
func TestPrefixPlaceholder(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
	defer cancel()
	t.Setenv("GG_TEST_PREFIX", "env:")
	s := &Store{Address: "127.0.0.1:1", Prefix: "{env.GG_TEST_PREFIX}", Timeout: caddy.Duration(10 * time.Millisecond)}
	if err := s.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Cleanup()
	if s.prefix != "env:" {
		t.Fatalf("prefix %q", s.prefix)
	}
}
