package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// roleEnv set to "caddy" makes this binary run as Caddy (see main): the
// harness starts each server as a child process of its own, so each one's
// RSS is its own.
const roleEnv = "GROUNDGATE_LOADGEN_ROLE"

// ports are the loopback ports of one run.
type ports struct {
	Simulator, SlowSimulator int
	Proxy, SlowProxy         int
	Gateway                  int
	Admin                    int // the gateway's admin port (pprof), 0 for none
	Before                   int // the older gateway's (-before), 0 for none
	Peer                     int // the peer gateway's (-peer), 0 for none
}

// server is one child process.
type server struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{} // closed when the process has exited
}

// cluster is the processes of a run: the simulator, plain Caddy
// reverse_proxy to it, Groundgate with the demo's policy and, when asked
// for, an older Groundgate with the same configuration and another
// gateway as a pass-through peer.
type cluster struct {
	dir     string
	p       ports
	sim     *server
	proxy   *server
	gateway *server
	before  *server // nil without -before
	peer    *server // nil without -peer
	// peerName heads the peer's column
	peerName string
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startCluster writes the configs to a temporary directory and starts the
// three servers, waiting until each listens.
func startCluster(self string, o options) (*cluster, error) {
	policy, err := policyPath(o.policy)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "groundgate-loadgen-")
	if err != nil {
		return nil, err
	}
	c := &cluster{dir: dir}
	if err := c.startAll(self, o, policy); err != nil {
		c.stop()
		c.cleanup(o.keep)
		return nil, err
	}
	return c, nil
}

// startAll starts the servers in turn; the caller stops those started
// when one fails.
func (c *cluster) startAll(self string, o options, policy string) error {
	var err error
	for _, p := range []*int{&c.p.Simulator, &c.p.SlowSimulator, &c.p.Proxy, &c.p.SlowProxy, &c.p.Gateway} {
		if *p, err = freePort(); err != nil {
			return err
		}
	}
	if o.pprof != "" {
		if c.p.Admin, err = freePort(); err != nil {
			return err
		}
	}
	if c.sim, err = c.start(self, "simulator", "simulator", simulatorConfig{c.p.Simulator, c.p.SlowSimulator}, c.p.Simulator, c.p.SlowSimulator); err != nil {
		return err
	}
	proxy := proxyConfig{Port: c.p.Proxy, SlowPort: c.p.SlowProxy, Simulator: c.p.Simulator, SlowSimulator: c.p.SlowSimulator,
		AccessLog: filepath.Join(c.dir, "proxy-access.log")}
	if c.proxy, err = c.start(self, "proxy", "proxy", proxy, c.p.Proxy, c.p.SlowProxy); err != nil {
		return err
	}
	if c.gateway, err = c.start(self, "gateway", "gateway", c.gatewayConfig("gateway", c.p.Gateway, c.p.Admin, policy), c.p.Gateway); err != nil {
		return err
	}
	if o.before != "" {
		if c.p.Before, err = freePort(); err != nil {
			return err
		}
		if c.before, err = c.start(o.before, "gateway-before", "gateway", c.gatewayConfig("gateway-before", c.p.Before, 0, policy), c.p.Before); err != nil {
			return fmt.Errorf("-before %s: %v", o.before, err)
		}
	}
	if o.peer.kind == "portkey" {
		return c.startPortkey(o.peer.dir)
	}
	return nil
}

// gatewayConfig is the gateway's configuration in this run, its files
// named after name.
func (c *cluster) gatewayConfig(name string, port, admin int, policy string) gatewayConfig {
	return gatewayConfig{
		Port: port, Admin: admin,
		Simulator: c.p.Simulator, SlowSimulator: c.p.SlowSimulator,
		KeySum:    clientKeySum(),
		Audit:     filepath.Join(c.dir, name+"-audit.jsonl"),
		AccessLog: filepath.Join(c.dir, name+"-access.log"),
		Policy:    policy,
	}
}

// start writes the server's config (config/<role>.Caddyfile filled in
// with data) as <name>.Caddyfile, starts bin as Caddy on it and waits
// until it listens on every port. bin is this binary, or an older build
// of it (-before): it runs only as Caddy, so the Caddyfile is all it must
// accept.
func (c *cluster) start(bin, name, role string, data any, ready ...int) (*server, error) {
	cfg, err := renderConfig(role+".Caddyfile", data)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(c.dir, name+".Caddyfile")
	if err := os.WriteFile(path, cfg, 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "run", "--config", path, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(),
		roleEnv+"=caddy",
		"XDG_CONFIG_HOME="+filepath.Join(c.dir, "xdg-config-"+name),
		"XDG_DATA_HOME="+filepath.Join(c.dir, "xdg-data-"+name),
	)
	return c.spawn(name, cmd, ready...)
}

// spawn starts cmd, its output to <name>.log in the run's directory, and
// waits until it listens on every port.
func (c *cluster) spawn(name string, cmd *exec.Cmd, ready ...int) (*server, error) {
	log, err := os.Create(filepath.Join(c.dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	s := &server{name: name, cmd: cmd, log: log, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.done) }()
	for _, port := range ready {
		if err := waitListening(port, 30*time.Second, s); err != nil {
			s.stop()
			return nil, fmt.Errorf("%s did not start: %v; its log ends:\n%s", name, err, logTail(log.Name()))
		}
	}
	return s, nil
}

// logTail is the end of a server's log, for the error when it did not
// start.
func logTail(path string) string {
	b, _ := os.ReadFile(path)
	const most = 2000
	if len(b) > most {
		b = b[len(b)-most:]
	}
	return string(b)
}

func waitListening(port int, limit time.Duration, s *server) error {
	deadline := time.Now().Add(limit)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("exited (%v)", s.cmd.ProcessState)
		default:
		}
		conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			conn.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not listening on %s after %v", addr, limit)
}

func (s *server) stop() {
	if s == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.log.Close()
}

func (c *cluster) stop() {
	c.peer.stop()
	c.before.stop()
	c.gateway.stop()
	c.proxy.stop()
	c.sim.stop()
}

// cleanup removes the run's directory unless keep.
func (c *cluster) cleanup(keep bool) {
	if !keep {
		os.RemoveAll(c.dir)
	}
}

// peakRSS is the process's peak resident set (VmHWM), in bytes.
func (s *server) peakRSS() int64 {
	return procStatusKB(s.cmd.Process.Pid, "VmHWM:") * 1024
}

// rss is the process's resident set now (VmRSS), in bytes.
func (s *server) rss() int64 {
	return procStatusKB(s.cmd.Process.Pid, "VmRSS:") * 1024
}

// resetPeakRSS restarts VmHWM from the current RSS (Linux 4.0+), so each
// phase's peak is its own. It fails silently where unsupported; the peak
// is then the process's lifetime peak.
func (s *server) resetPeakRSS() {
	_ = os.WriteFile("/proc/"+strconv.Itoa(s.cmd.Process.Pid)+"/clear_refs", []byte("5"), 0)
}

func procStatusKB(pid int, field string) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			v, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return v
		}
	}
	return 0
}

// raiseFileLimit lifts the open-files soft limit to the hard limit, for
// this process and the servers it starts: thousands of streams need
// thousands of sockets.
func raiseFileLimit() uint64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0
	}
	r.Cur = r.Max
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r)
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r)
	return r.Cur
}

// profile fetches /debug/pprof/<what> from the gateway's admin endpoint
// into path, in the background.
func (c *cluster) profile(ctx context.Context, what, path string) <-chan error {
	return c.profileAfter(ctx, 0, what, path)
}

func (c *cluster) profileAfter(ctx context.Context, wait time.Duration, what, path string) <-chan error {
	return c.fetchAfter(ctx, wait, "/debug/pprof/"+what, path)
}

// fetchAfter fetches an admin endpoint into path after wait.
func (c *cluster) fetchAfter(ctx context.Context, wait time.Duration, endpoint, path string) <-chan error {
	done := make(chan error, 1)
	go func() {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			done <- ctx.Err()
			return
		}
		done <- fetchTo(ctx, "http://127.0.0.1:"+strconv.Itoa(c.p.Admin)+endpoint, path)
	}()
	return done
}

func fetchTo(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
