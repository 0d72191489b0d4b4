package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// peerSpec is -peer KIND=DIR: another gateway, installed in DIR, run as
// a pass-through peer column.
type peerSpec struct {
	kind, dir string
}

// String and Set make peerSpec a flag.Value.
func (p *peerSpec) String() string {
	if p.kind == "" {
		return ""
	}
	return p.kind + "=" + p.dir
}

func (p *peerSpec) Set(v string) error {
	kind, dir, ok := strings.Cut(v, "=")
	if !ok || dir == "" {
		return fmt.Errorf("want KIND=DIR, e.g. portkey=DIR, not %q", v)
	}
	if kind != "portkey" {
		return fmt.Errorf("unknown peer %q (known: portkey)", kind)
	}
	p.kind, p.dir = kind, dir
	return nil
}

// portkeyEntry is the Portkey gateway's Node.js server inside the
// directory scripts/peer-portkey.sh installs.
const portkeyEntry = "node_modules/@portkey-ai/gateway/build/start-server.js"

// bindLoopback is loaded into Node before Portkey, which has no option
// for the address it listens on and would take every interface: its
// server listens on the loopback address only.
const bindLoopback = `import net from "node:net";
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === "number") {
    if (typeof args[1] === "function") args.splice(1, 0, "127.0.0.1");
    else if (!args[1]) args[1] = "127.0.0.1";
  }
  return listen.apply(this, args);
};
`

// startPortkey starts the Portkey AI gateway installed in dir on a free
// port, as a child process; it reaches the simulator through the
// headers of each request (see portkeyTarget).
func (c *cluster) startPortkey(dir string) error {
	entry := filepath.Join(dir, portkeyEntry)
	if _, err := os.Stat(entry); err != nil {
		return fmt.Errorf("-peer portkey: %v (install it with scripts/peer-portkey.sh install)", err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return fmt.Errorf("-peer portkey: %v", err)
	}
	if c.p.Peer, err = freePort(); err != nil {
		return err
	}
	preload := filepath.Join(c.dir, "peer-bind-loopback.mjs")
	if err := os.WriteFile(preload, []byte(bindLoopback), 0o644); err != nil {
		return err
	}
	cmd := exec.Command(node, "--import", preload, entry, "--port="+strconv.Itoa(c.p.Peer), "--headless")
	cmd.Env = append(os.Environ(), "NODE_ENV=production")
	if c.peer, err = c.spawn("peer-portkey", cmd, c.p.Peer); err != nil {
		return fmt.Errorf("-peer portkey: %v", err)
	}
	c.peerName = "portkey " + npmVersion(filepath.Join(dir, "node_modules/@portkey-ai/gateway/package.json")) + " (pass-through)"
	return nil
}

// npmVersion is the version a package.json states, "?" when unreadable.
func npmVersion(path string) string {
	var p struct {
		Version string `json:"version"`
	}
	if b, err := os.ReadFile(path); err != nil || json.Unmarshal(b, &p) != nil || p.Version == "" {
		return "?"
	}
	return p.Version
}

// portkeyTarget calls the simulator's Azure route through Portkey: the
// azure-openai provider with the simulator as its custom host; the
// request headers choose the upstream, as Portkey does without a config.
func portkeyTarget(c *cluster) target {
	headers := func(simPort int) http.Header {
		return http.Header{
			"Content-Type":                  {"application/json"},
			"Authorization":                 {"Bearer simulator-key"},
			"X-Portkey-Provider":            {"azure-openai"},
			"X-Portkey-Custom-Host":         {"http://127.0.0.1:" + strconv.Itoa(simPort) + "/openai"},
			"X-Portkey-Azure-Resource-Name": {"simulator"},
			"X-Portkey-Azure-Deployment-Id": {"gpt-4o"},
			"X-Portkey-Azure-Api-Version":   {"2024-10-21"},
		}
	}
	url := "http://127.0.0.1:" + strconv.Itoa(c.p.Peer) + "/v1/chat/completions"
	return target{name: c.peerName, kind: kindPeer, srv: c.peer, url: url, slowURL: url,
		header: headers(c.p.Simulator), slowHeader: headers(c.p.SlowSimulator)}
}
