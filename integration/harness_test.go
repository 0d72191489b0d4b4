// Package integration runs Groundgate inside a real, in-process Caddy,
// configured from a Caddyfile, and talks to it over loopback sockets with
// real clients. Caddy holds one config per process, so these tests run
// one after another.
package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/groundgate/groundgate"
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

// baseCaddyfile is the demo's shape with an instant simulator. %[1]d is
// the gateway port, %[2]d the simulator's, %[3]d the admin port; the
// @@EXTRA@@ and @@SIMCFG@@ lines take more gateway and simulator lines.
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

:%[2]d {
	bind 127.0.0.1
	aoai_simulator {
		deployment gpt-4o gpt-4o-2024-08-06
		deployment text-embedding-3-small
		api_key {env.GG_SIM_KEY}
		@@SIMCFG@@
	}
}
`

func caddyfile(extra, sim string) string {
	s := fmt.Sprintf(baseCaddyfile, gatewayPort, simPort, adminPort)
	return strings.NewReplacer("@@EXTRA@@", extra, "@@SIMCFG@@", sim).Replace(s)
}

// load adapts a Caddyfile and loads it into the running Caddy, as
// `caddy reload` does through the admin API.
func load(t testing.TB, cf string) {
	t.Helper()
	if err := tryLoad(cf); err != nil {
		t.Fatal(err)
	}
	waitListening(t, gatewayPort)
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
	code := m.Run()
	_ = caddy.Stop()
	os.Exit(code)
}

var plainClient = &http.Client{Timeout: 30 * time.Second}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
