package redis

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testServer is a real redis-server on loopback, started for one test:
// a free port, a temporary directory, no persistence.
type testServer struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	args []string
	cmd  *exec.Cmd
	done chan error // receives the process's exit
}

// startRedis starts a redis-server for t and stops it in t.Cleanup. extra
// are more command-line options (e.g. "--requirepass", "x"). Without
// redis-server on PATH the test fails (run scripts/redis-test-server.sh
// to install it), unless GROUNDGATE_SKIP_REDIS=1 skips it.
func startRedis(t testing.TB, extra ...string) *testServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("GROUNDGATE_SKIP_REDIS") == "1" {
			t.Skip("GROUNDGATE_SKIP_REDIS=1 and redis-server is not on PATH: Redis store tests skipped")
		}
		t.Fatal("redis-server is not on PATH: run scripts/redis-test-server.sh to install it " +
			"(or set GROUNDGATE_SKIP_REDIS=1 to skip the Redis store tests)")
	}
	s := &testServer{t: t, bin: bin, dir: t.TempDir(), args: extra}
	var lastErr error
	for range 5 {
		s.port = freePort(t)
		if lastErr = s.start(); lastErr == nil {
			t.Cleanup(s.stop)
			return s
		}
	}
	t.Fatalf("starting redis-server: %v", lastErr)
	return nil
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *testServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// start runs redis-server on s.port and waits until it answers PING.
func (s *testServer) start() error {
	args := append([]string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--daemonize", "no",
		"--logfile", filepath.Join(s.dir, "redis.log"),
	}, s.args...)
	s.cmd = exec.Command(s.bin, args...)
	if err := s.cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	s.done = exited
	go func() { exited <- s.cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			s.cmd = nil
			return fmt.Errorf("redis-server exited (%v): %s", err, lastLines(string(log), 5))
		default:
		}
		if ping(s.addr()) {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = s.cmd.Process.Kill()
	<-exited
	s.cmd = nil
	return fmt.Errorf("redis-server on port %d did not answer PING within 10s", s.port)
}

// stop kills the server (as a crash would) and waits for it to exit.
func (s *testServer) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT) // in case it was paused
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// restart starts the server again on the same port, empty.
func (s *testServer) restart() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("restarting redis-server: %v", err)
	}
}

// pause and resume freeze the server (SIGSTOP/SIGCONT): connections stay
// open but nothing answers, like a hung or partitioned server.
func (s *testServer) pause()  { _ = s.cmd.Process.Signal(syscall.SIGSTOP) }
func (s *testServer) resume() { _ = s.cmd.Process.Signal(syscall.SIGCONT) }

// ping sends a raw RESP PING and reports whether +PONG (or -NOAUTH, for a
// server with a password) came back.
func ping(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && (strings.HasPrefix(line, "+PONG") || strings.HasPrefix(line, "-NOAUTH"))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
