// Package cfg holds Caddyfile helpers the filter modules share.
package cfg

import (
	"strconv"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/groundgate/groundgate/filters"
)

// StageAction parses `<stage> <action>` when the current token is a stage
// name (input, context, output) and reports whether it was one.
func StageAction(d *caddyfile.Dispenser, a *filters.StageActions) (bool, error) {
	st, err := filters.ParseStage(d.Val())
	if err != nil {
		return false, nil
	}
	var v string
	if !d.AllArgs(&v) {
		return true, d.ArgErr()
	}
	act, err := filters.ParseAction(v)
	if err != nil {
		return true, d.Errf("%s: %v", st, err)
	}
	a.Set(st, act)
	return true, nil
}

// Bool parses the single argument of a boolean subdirective: on/off,
// true/false, yes/no.
func Bool(d *caddyfile.Dispenser) (bool, error) {
	name := d.Val()
	var v string
	if !d.AllArgs(&v) {
		return false, d.ArgErr()
	}
	switch v {
	case "on", "true", "yes":
		return true, nil
	case "off", "false", "no":
		return false, nil
	}
	return false, d.Errf("%s: want on or off, got %q", name, v)
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
