package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// portkeyDir is where scripts/peer-portkey.sh installs Portkey, "" when
// it has not.
func portkeyDir() string {
	root := os.Getenv("GROUNDGATE_PEER_DIR")
	if root == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return ""
		}
		root = filepath.Join(cache, "groundgate", "peer")
	}
	dir := filepath.Join(root, "portkey")
	if _, err := os.Stat(filepath.Join(dir, portkeyEntry)); err != nil {
		return ""
	}
	return dir
}

// TestPortkeyPeer starts the installed Portkey gateway against the
// simulator and sends it what the harness sends: a chat completion, a
// stream, and a slow stream to the second simulator; Portkey listens on
// the loopback address only.
func TestPortkeyPeer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two servers")
	}
	dir := portkeyDir()
	if dir == "" {
		t.Skip("Portkey is not installed: scripts/peer-portkey.sh install")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{dir: t.TempDir()}
	defer c.stop()
	for _, p := range []*int{&c.p.Simulator, &c.p.SlowSimulator} {
		if *p, err = freePort(); err != nil {
			t.Fatal(err)
		}
	}
	if c.sim, err = c.start(self, "simulator", "simulator", simulatorConfig{c.p.Simulator, c.p.SlowSimulator}, c.p.Simulator, c.p.SlowSimulator); err != nil {
		t.Fatal(err)
	}
	if err := c.startPortkey(dir); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.peerName, "portkey 1.") || !strings.HasSuffix(c.peerName, "(pass-through)") {
		t.Errorf("column heading %q", c.peerName)
	}
	pk := portkeyTarget(c)
	client := newClient(4)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q := []string{"Is my TV under warranty?"}
	if r := call(ctx, client, pk.url, pk.header, chatBodies("gpt-4o", false, "", q)[0], false, time.Now()); r.err != nil {
		t.Errorf("chat completion: %v", r.err)
	}
	if r := call(ctx, client, pk.url, pk.header, chatBodies("gpt-4o", true, "", q)[0], true, time.Now()); r.err != nil {
		t.Errorf("stream: %v", r.err)
	}
	slow := chatBodies("gpt-4o-slow", true, "[[sim:tokens=2]] ", q)[0]
	if r := call(ctx, client, pk.slowURL, pk.slowHeaders(), slow, true, time.Now()); r.err != nil || r.latency < 500*time.Millisecond {
		t.Errorf("slow stream: %v after %v (2 tokens at 2 a second)", r.err, r.latency)
	}
	addrs := listenAddrs(c.p.Peer)
	for _, a := range addrs {
		if a != "0100007F" {
			t.Errorf("Portkey listens on %v (hex), want 127.0.0.1 (0100007F) only", addrs)
		}
	}
	if len(addrs) == 0 {
		t.Error("no socket listens on Portkey's port")
	}
}

// listenAddrs are the local addresses (hex, as /proc/net/tcp* has them)
// of the sockets listening on port.
func listenAddrs(port int) []string {
	var out []string
	suffix := fmt.Sprintf(":%04X", port)
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) > 3 && fs[3] == "0A" && strings.HasSuffix(fs[1], suffix) { // 0A: LISTEN
				out = append(out, strings.TrimSuffix(fs[1], suffix))
			}
		}
	}
	return out
}
