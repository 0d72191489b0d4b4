package caddymodule

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/groundgate/groundgate/plugins/stores/redis"
)

// startRedis runs a real redis-server on a free loopback port for one
// test. scripts/test.sh installs it; without it the test fails (set
// GROUNDGATE_SKIP_REDIS=1 to skip on purpose).
func startRedis(t *testing.T) (addr string, stop func()) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("GROUNDGATE_SKIP_REDIS") == "1" {
			t.Skip("redis-server not installed and GROUNDGATE_SKIP_REDIS=1")
		}
		t.Fatal("redis-server is not installed: run scripts/redis-test-server.sh (or apt-get install redis-server)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr = fmt.Sprintf("127.0.0.1:%d", port)
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	var once sync.Once
	stop = func() { once.Do(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }) }
	t.Cleanup(stop)
	return addr, stop
}

// Two gateway instances, each with its own Redis client, share one
// budget: 64 concurrent clients spread over both never get more tokens
// admitted than the limit plus one request's estimate.
func TestTwoInstancesShareRedisBudget(t *testing.T) {
	addr, _ := startRedis(t)
	main, mini := newFake(t, okHandler), newFake(t, okHandler)
	dir := writePolicies(t, map[string]string{"p.yaml": budgetPolicy(`  limits:
    - per: team
      tokens_per_minute: 1500
`)})
	instance := func(pool int) *Gateway {
		return policyGateway(t, dir, func(g *Gateway) {
			g.StoreRaw = []byte(fmt.Sprintf(`{"type":"redis","address":%q,"prefix":"gg-test:","pool_size":%d}`, addr, pool))
		}, main, mini)
	}
	gs := []*Gateway{instance(16), instance(17)}
	var admitted, refused atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 8; i++ {
				r := do(t, gs[(w+i)%2], "POST", "/v1/chat/completions", chatBody)
				switch r.status {
				case 200:
					admitted.Add(13)
				case 429:
					refused.Add(1)
				case 503:
					// A store call past the gateway's deadline on a loaded
					// machine: the policy fails closed, nothing is admitted.
					if !strings.Contains(r.body, "budget_store_unavailable") {
						t.Errorf("status 503: %s", r.body)
					}
					refused.Add(1)
				default:
					t.Errorf("status %d: %s", r.status, r.body)
				}
			}
		}(w)
	}
	wg.Wait()
	const estimate = 9 + 20
	t.Logf("two instances admitted %d tokens of 1500 (%d refused)", admitted.Load(), refused.Load())
	if admitted.Load() > 1500+estimate {
		t.Fatalf("admitted %d tokens against a shared limit of 1500", admitted.Load())
	}
	if refused.Load() == 0 || admitted.Load() < 1500-2*estimate {
		t.Fatalf("admitted %d, refused %d: the limit was not used up", admitted.Load(), refused.Load())
	}
}

// Redis going away mid-run: requests fail closed (503) or open (200) as
// the policy says, promptly, and work again when Redis is back.
func TestRedisGoesAway(t *testing.T) {
	addr, stop := startRedis(t)
	main, mini := newFake(t, okHandler), newFake(t, okHandler)
	for _, mode := range []string{"closed", "open"} {
		dir := writePolicies(t, map[string]string{"p.yaml": budgetPolicy(`  on_store_error: ` + mode + `
  limits:
    - per: key
      tokens_per_minute: 100000
`)})
		g := policyGateway(t, dir, func(g *Gateway) {
			g.StoreRaw = []byte(fmt.Sprintf(`{"type":"redis","address":%q,"timeout":"100ms","dial_timeout":"100ms","pool_size":%d}`, addr, map[string]int{"closed": 5, "open": 6}[mode]))
		}, main, mini)
		if r := do(t, g, "POST", "/v1/chat/completions", chatBody); r.status != 200 {
			t.Fatalf("%s, redis up: %d %s", mode, r.status, r.body)
		}
		defer func(mode string, g *Gateway) {
			// checked after Redis is stopped below
			start := time.Now()
			r := do(t, g, "POST", "/v1/chat/completions", chatBody)
			if time.Since(start) > 2*time.Second {
				t.Errorf("%s: the request waited %v for a dead Redis", mode, time.Since(start))
			}
			if mode == "closed" && r.status != 503 || mode == "open" && r.status != 200 {
				t.Errorf("%s, redis down: %d %s", mode, r.status, r.body)
			}
		}(mode, g)
	}
	stop()
}

// With the Redis store, instances share the response cache.
func TestRedisSharedResponseCache(t *testing.T) {
	addr, _ := startRedis(t)
	main, mini := newFake(t, okHandler), newFake(t, okHandler)
	dir := writePolicies(t, map[string]string{"p.yaml": cachedPolicy})
	instance := func(pool int) *Gateway {
		return policyGateway(t, dir, func(g *Gateway) {
			g.StoreRaw = []byte(fmt.Sprintf(`{"type":"redis","address":%q,"pool_size":%d}`, addr, pool))
		}, main, mini)
	}
	a, b := instance(21), instance(22)
	if r := do(t, a, "POST", "/v1/chat/completions", chatBody); r.header.Get("X-Groundgate-Cache") != "miss" {
		t.Fatalf("first: %v", r.header)
	}
	if r := do(t, b, "POST", "/v1/chat/completions", chatBody); r.header.Get("X-Groundgate-Cache") != "hit" || main.calls.Load() != 1 {
		t.Fatalf("second instance: %v, upstream calls %d", r.header, main.calls.Load())
	}
}
