// Package cfg holds Caddyfile helpers the post-processor modules share.
package cfg

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/dustin/go-humanize"
)

// String parses the single argument of a subdirective.
func String(d *caddyfile.Dispenser) (string, error) {
	var v string
	if !d.AllArgs(&v) {
		return "", d.ArgErr()
	}
	return v, nil
}

// Bool parses a boolean subdirective: no argument means on; otherwise
// one of on/off, true/false, yes/no.
func Bool(d *caddyfile.Dispenser) (bool, error) {
	name := d.Val()
	args := d.RemainingArgs()
	switch len(args) {
	case 0:
		return true, nil
	case 1:
	default:
		return false, d.ArgErr()
	}
	switch args[0] {
	case "on", "true", "yes":
		return true, nil
	case "off", "false", "no":
		return false, nil
	}
	return false, d.Errf("%s: want on or off, got %q", name, args[0])
}

// Int parses the single integer argument of a subdirective, >= min.
func Int(d *caddyfile.Dispenser, min int) (int, error) {
	name := d.Val()
	var v string
	if !d.AllArgs(&v) {
		return 0, d.ArgErr()
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min {
		return 0, d.Errf("%s: want an integer >= %d, got %q", name, min, v)
	}
	return n, nil
}

// Duration parses the single duration argument of a subdirective
// (Caddy's syntax: "500ms", "10s", "1d").
func Duration(d *caddyfile.Dispenser) (caddy.Duration, error) {
	name := d.Val()
	var v string
	if !d.AllArgs(&v) {
		return 0, d.ArgErr()
	}
	dur, err := caddy.ParseDuration(v)
	if err != nil || dur < 0 {
		return 0, d.Errf("%s: want a duration such as 10s, got %q", name, v)
	}
	return caddy.Duration(dur), nil
}

// Size parses the single size argument of a subdirective ("100MiB",
// "10MB", "4096").
func Size(d *caddyfile.Dispenser) (int64, error) {
	name := d.Val()
	var v string
	if !d.AllArgs(&v) {
		return 0, d.ArgErr()
	}
	n, err := humanize.ParseBytes(v)
	if err != nil || n > 1<<62 {
		return 0, d.Errf("%s: want a size such as 100MiB, got %q", name, v)
	}
	return int64(n), nil
}
