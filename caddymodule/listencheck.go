package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Caddy binds its listeners with SO_REUSEPORT (so a reload can bind the
// new config's sockets before closing the old ones). On Linux that also
// lets a second Caddy process of the same user bind the same ports: both
// start, and the kernel splits connections between the two, old config
// and new, gateway and whatever else. checkListenersFree makes a second
// instance fail when its config loads instead: an address of the
// gateway's server that this process does not hold yet must be free for
// a plain bind, without SO_REUSEPORT.
func checkListenersFree(ctx caddy.Context) error {
	srv, _ := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if srv == nil || validating() {
		return nil
	}
	for _, l := range srv.Listen {
		na, err := caddy.ParseNetworkAddress(l)
		if err != nil || na.IsUnixNetwork() || na.IsFdNetwork() || !isTCP(na.Network) {
			continue // Caddy reports bad addresses itself; others do not share
		}
		for off := uint(0); off <= na.EndPort-na.StartPort; off++ {
			addr := na.JoinHostPort(off)
			if caddy.ListenerUsage(na.Network, addr) > 0 {
				continue // ours: a reload
			}
			if err := bindOnce(ctx, na.Network, addr); err != nil {
				return fmt.Errorf("llm_gateway: %s is already in use by another process (is another instance running?); "+
					"Caddy would share it with SO_REUSEPORT and split requests between the two: %v", addr, err)
			}
		}
	}
	return nil
}

func isTCP(network string) bool {
	return network == "tcp" || network == "tcp4" || network == "tcp6"
}

// bindOnce binds addr exclusively and lets it go again; only "address in
// use" is an error (Caddy reports other bind failures itself).
func bindOnce(ctx context.Context, network, addr string) error {
	var lc net.ListenConfig // no SO_REUSEPORT
	ln, err := lc.Listen(ctx, network, addr)
	if err == nil {
		return ln.Close()
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		return err
	}
	return nil
}

// validating reports whether this process is `caddy validate`: it never
// binds, and the instance it checks a config for holds the ports.
func validating() bool {
	return len(os.Args) > 1 && os.Args[1] == "validate"
}
