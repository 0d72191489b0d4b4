package main

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"text/template"
)

//go:embed config
var configFS embed.FS

// demoPolicy is the demo's default policy, relative to the repository's
// root. The gateway serves the file itself, not a copy, so the harness
// measures what the demo runs.
const demoPolicy = "policies/examples/default.yaml"

// simulatorConfig fills in config/simulator.Caddyfile.
type simulatorConfig struct {
	Simulator, SlowSimulator int
}

// proxyConfig fills in config/proxy.Caddyfile.
type proxyConfig struct {
	Port, SlowPort           int
	Simulator, SlowSimulator int
	AccessLog                string
}

// gatewayConfig fills in config/gateway.Caddyfile.
type gatewayConfig struct {
	Port                     int
	Admin                    int // the admin port (pprof), 0 for none
	Simulator, SlowSimulator int
	KeySum                   string // SHA-256 of the client key, hex
	Audit, AccessLog         string // files
	Policy                   string // the policy file, absolute
}

const clientKey = "load-key"

func clientKeySum() string {
	sum := sha256.Sum256([]byte(clientKey))
	return hex.EncodeToString(sum[:])
}

// policyPath resolves the policy file the gateway serves, checking it is
// there: the harness runs from the repository's root.
func policyPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(abs); err != nil {
		return "", fmt.Errorf("policy: %v (run from the repository's root, or set -policy)", err)
	}
	return abs, nil
}

// renderConfig fills in the embedded Caddyfile name with data.
func renderConfig(name string, data any) ([]byte, error) {
	src, err := configFS.ReadFile("config/" + name)
	if err != nil {
		return nil, err
	}
	t, err := template.New(name).Option("missingkey=error").Parse(string(src))
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
