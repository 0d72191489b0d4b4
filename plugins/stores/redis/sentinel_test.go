package redis

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/groundgate/groundgate/budgets"
)

// startSentinel runs a Sentinel (redis-server --sentinel) monitoring the
// primary at primaryAddr as master name, with quick failure detection.
func startSentinel(t *testing.T, name, primaryAddr string) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not on PATH: run scripts/redis-test-server.sh to install it")
	}
	host, port, _ := strings.Cut(primaryAddr, ":")
	dir := t.TempDir()
	for range 5 {
		sp := freePort(t)
		conf := filepath.Join(dir, "sentinel.conf")
		body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor %s %s %s 1\nsentinel down-after-milliseconds %s 1000\nsentinel failover-timeout %s 5000\n",
			sp, dir, name, host, port, name, name)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, conf, "--sentinel", "--logfile", filepath.Join(dir, "sentinel.log"))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		addr := "127.0.0.1:" + strconv.Itoa(sp)
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if ping(addr) {
				t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
				return addr
			}
		}
		_ = cmd.Process.Kill()
		<-done
	}
	t.Fatal("could not start redis-server --sentinel")
	return ""
}

// TestSentinelFailover: a store in sentinel mode follows the primary the
// Sentinel names, before and after a failover (SENTINEL FAILOVER), and
// the counters survive it.
func TestSentinelFailover(t *testing.T) {
	primary := startRedis(t)
	replica := startRedis(t, "--replicaof", "127.0.0.1", strconv.Itoa(primary.port))
	sentinel := startSentinel(t, "gg", primary.addr())
	ctx := context.Background()

	k := clientKey{mode: modeSentinel, masterName: "gg", addrs: sentinel, timeout: time.Second, dialTimeout: time.Second}
	cl := newClient(k)
	defer cl.Close()
	now := func() time.Time { return time.Date(2026, 3, 14, 12, 0, 30, 0, time.UTC) }
	s := &Store{client: cl, key: k, prefix: "sn:", timeout: k.timeout, now: now}
	lim := budgets.Limit{Key: "tpd|team|support", Window: budgets.Day, Max: 1_000_000, Quota: true}
	want := int64(0)
	reserve := func() error {
		r, _, err := s.Reserve(ctx, []budgets.Charge{{Limit: lim, N: 100}})
		if err != nil {
			return err
		}
		if err := s.Settle(ctx, r, []int64{40}); err != nil {
			return err
		}
		want += 40
		return nil
	}
	for range 20 {
		if err := reserve(); err != nil {
			t.Fatal(err)
		}
	}
	// Wait for the replica to hold every write (replication is
	// asynchronous: a failover before that would lose them, as it would
	// in production), then fail over.
	if n, err := nodeClient(t, primary.addr()).Do(ctx, "WAIT", 1, 10000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT for the replica: %d %v", n, err)
	}
	sc := goredis.NewSentinelClient(&goredis.Options{Addr: sentinel})
	defer sc.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := sc.Failover(ctx, "gg").Err()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("SENTINEL FAILOVER: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for {
		addr, err := sc.GetMasterAddrByName(ctx, "gg").Result()
		if err == nil && len(addr) == 2 && addr[1] == strconv.Itoa(replica.port) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Sentinel still names %v", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Until the Sentinel has demoted the old primary, it still takes
	// writes, and those are lost when it resyncs from the new one (Redis's
	// asynchronous replication; see README). Once it is a replica, every
	// write must reach the new primary.
	for {
		role, err := nodeClient(t, primary.addr()).Do(ctx, "ROLE").Slice()
		if err == nil && len(role) > 0 && role[0] == "slave" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("old primary not demoted: %v %v", role, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	key := bucketKey("sn:", &lim, time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC))
	newPrimary := nodeClient(t, replica.addr())
	before, err := newPrimary.Get(ctx, key).Int64()
	if err != nil || before < 20*40 {
		t.Fatalf("counter on the new primary %d (%v), want at least the %d written before the failover", before, err, 20*40)
	}
	// The store follows the new primary: calls may fail while it switches
	// (the policy's on_store_error decides), then all succeed there.
	var errs int
	want = 0
	for ok := 0; ok < 20; {
		if err := reserve(); err != nil {
			if !errors.Is(err, budgets.ErrUnavailable) {
				t.Fatal(err)
			}
			errs++
			if errs > 200 {
				t.Fatalf("the store did not follow the new primary: %v", err)
			}
			time.Sleep(25 * time.Millisecond)
			continue
		}
		ok++
	}
	got, err := newPrimary.Get(ctx, key).Int64()
	if err != nil {
		t.Fatal(err)
	}
	// A failed reserve or settle may have charged (never uncharged) its
	// estimate of 100.
	if got-before < want || got-before > want+int64(errs)*100 {
		t.Errorf("the new primary's counter grew by %d, want %d (+ up to %d for failed calls)", got-before, want, errs*100)
	}
	t.Logf("new primary: %d before the switch-over writes (20 settlements of 40 before the failover), %d after 20 more; %d calls failed while switching",
		before, got, errs)
}
