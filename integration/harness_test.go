// Package integration runs Groundgate inside a real, in-process Caddy,
// configured from a Caddyfile, and talks to it over loopback sockets with
// real clients. Caddy holds one config per process, so these tests run
// one after another.
package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	caddyfileconf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/groundgate/groundgate"
	"github.com/groundgate/groundgate/plugins/simulator"
)

// ports are chosen once per test binary.
var (
	gatewayPort = freePort()
	simPort     = freePort()
	adminPort   = freePort()
)

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func gatewayURL(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", gatewayPort, path) }

const demoKey = "demo-key"

// baseCaddyfile is the demo's gateway. %[1]d is the gateway port, %[2]d
// the simulator's, %[3]d the admin port; the @@EXTRA@@ line takes more
// gateway lines. The simulator runs outside Caddy (see startSimulator),
// as Azure does: reloading the gateway does not restart its upstream.
const baseCaddyfile = `{
	admin localhost:%[3]d
	grace_period 5s
}

:%[1]d {
	bind 127.0.0.1
	llm_gateway {
		key demo {
			sha256 c48a01f49fd0f2cc404bc3cbbc80e91457a3d41bb429a695243de4c61794155c
			team support
			scope {
				business_units "Business Support" "Consumer Support"
			}
		}
		model gpt-4o main
		model text-embedding-3-small embeddings
		pool main {
			azure primary {
				endpoint http://127.0.0.1:%[2]d
				deployment gpt-4o
				api_key {env.GG_SIM_KEY}
			}
		}
		pool embeddings {
			azure {
				endpoint http://127.0.0.1:%[2]d
				deployment text-embedding-3-small
				api_key {env.GG_SIM_KEY}
			}
		}
		@@EXTRA@@
	}
}

`

func caddyfile(extra, sim string) string {
	setSimulator(sim)
	s := fmt.Sprintf(baseCaddyfile, gatewayPort, simPort, adminPort)
	return strings.NewReplacer("@@EXTRA@@", extra).Replace(s)
}

// The simulator is an aoai_simulator handler provisioned like Caddy
// would, served by its own HTTP server on simPort. setSimulator swaps its
// configuration (Caddyfile subdirectives) between tests.
var (
	simMu      sync.Mutex
	simCurrent http.Handler
	simConfig  = "\x00"
)

func setSimulator(cfg string) {
	simMu.Lock()
	defer simMu.Unlock()
	if cfg == simConfig {
		return
	}
	block := "aoai_simulator {\n deployment gpt-4o gpt-4o-2024-08-06\n deployment text-embedding-3-small\n api_key {env.GG_SIM_KEY}\n " + cfg + "\n}"
	sim := new(simulator.Simulator)
	if err := sim.UnmarshalCaddyfile(caddyfileconf.NewTestDispenser(block)); err != nil {
		panic(err)
	}
	ctx, _ := caddy.NewContext(caddy.Context{Context: context.Background()})
	if err := sim.Provision(ctx); err != nil {
		panic(err)
	}
	simCurrent = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _ = sim.ServeHTTP(w, r, nil) })
	simConfig = cfg
}

func startSimulator() {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", simPort))
	if err != nil {
		panic(err)
	}
	go func() {
		_ = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			simMu.Lock()
			h := simCurrent
			simMu.Unlock()
			h.ServeHTTP(w, r)
		}))
	}()
}

// load adapts a Caddyfile and loads it into the running Caddy, as
// `caddy reload` does through the admin API.
func load(t testing.TB, cf string) {
	t.Helper()
	if err := tryLoad(cf); err != nil {
		t.Fatal(err)
	}
	waitListening(t, gatewayPort)
	// The reload closed the old server's idle keep-alive connections; a
	// test's first POST must not race with that (TestReloadUnderLoad
	// covers the race itself).
	plainClient.CloseIdleConnections()
	if tr, ok := http.DefaultTransport.(*http.Transport); ok {
		tr.CloseIdleConnections()
	}
}

func tryLoad(cf string) error {
	cfg, warns, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), nil)
	if err != nil {
		return fmt.Errorf("adapt: %w", err)
	}
	for _, w := range warns {
		if !strings.Contains(w.Message, "not formatted") {
			return fmt.Errorf("adapt warning: %s", w.String())
		}
	}
	return caddy.Load(cfg, true)
}

func waitListening(t testing.TB, port int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("nothing listening on %d", port)
}

func TestMain(m *testing.M) {
	os.Setenv("GG_SIM_KEY", "sim-upstream-key")
	setSimulator("")
	startSimulator()
	code := m.Run()
	_ = caddy.Stop()
	os.Exit(code)
}

var plainClient = &http.Client{Timeout: 30 * time.Second}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
