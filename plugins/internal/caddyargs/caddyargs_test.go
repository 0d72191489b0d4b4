package caddyargs

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// at returns a dispenser on the subdirective of line.
func at(line string) *caddyfile.Dispenser {
	d := caddyfile.NewTestDispenser(line)
	d.Next()
	return d
}

func TestArgs(t *testing.T) {
	var s string
	if err := String(at("url https://x"), &s); err != nil || s != "https://x" {
		t.Errorf("String: %q %v", s, err)
	}
	for _, bad := range []string{"url", "url a b"} {
		if err := String(at(bad), &s); err == nil {
			t.Errorf("String(%q) accepted", bad)
		}
	}
	var n int
	if err := Int(at("top 5"), &n); err != nil || n != 5 {
		t.Errorf("Int: %d %v", n, err)
	}
	if err := Int(at("top -1"), &n); err == nil || !strings.Contains(err.Error(), `top: expected a whole number, got "-1"`) {
		t.Errorf("Int(-1): %v", err)
	}
	var d caddy.Duration
	if err := Duration(at("timeout 5s"), &d); err != nil || time.Duration(d) != 5*time.Second {
		t.Errorf("Duration: %v %v", d, err)
	}
	if err := Duration(at("timeout 0s"), &d); err == nil {
		t.Error("Duration accepted 0")
	}
	if err := DurationOrZero(at("refresh 0s"), &d); err != nil || d != 0 {
		t.Errorf("DurationOrZero(0): %v %v", d, err)
	}
	if err := DurationOrZero(at("refresh -1s"), &d); err == nil || !strings.Contains(err.Error(), "refresh") {
		t.Errorf("DurationOrZero(-1s): %v", err)
	}
	if got := strings.Join(List([]string{"a,b", " c ", ",d,"}), "|"); got != "a|b|c|d" {
		t.Errorf("List: %q", got)
	}
}
