package integration

import (
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
)

// soReusePort is Linux's SO_REUSEPORT (the syscall package lacks it).
const soReusePort = 0xf

// Another process holding the gateway's port, with SO_REUSEPORT as a
// second Caddy would, makes the config fail instead of sharing the port;
// reloading our own config on the same port still works.
func TestPortHeldByAnotherProcessFailsLoad(t *testing.T) {
	load(t, caddyfile("", ""))
	load(t, caddyfile("max_attempts 2", "")) // a reload keeps its own listener

	port := freePort()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, soReusePort, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	other, err := lc.Listen(t.Context(), "tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	cf := strings.Replace(caddyfile("", ""), fmt.Sprintf(":%d {", gatewayPort), fmt.Sprintf(":%d {", port), 1)
	err = tryLoad(cf)
	if err == nil || !strings.Contains(err.Error(), "already in use by another process") {
		t.Fatalf("err = %v", err)
	}
	// The running config kept serving.
	if st, b := send(t, "GET", "/v1/models", "", "api-key", demoKey); st != 200 {
		t.Fatalf("%d %s", st, b)
	}
}
