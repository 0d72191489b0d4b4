// Package caddyargs reads the arguments of a Caddyfile subdirective the way
// Groundgate's context plugins all do: exactly one value, with errors that
// name the subdirective and the bad value.
package caddyargs

import (
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// String reads the one argument of the current subdirective.
func String(d *caddyfile.Dispenser, dst *string) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// Int reads one whole number (0 or more).
func Int(d *caddyfile.Dispenser, dst *int) error {
	name := d.Val()
	var s string
	if err := String(d, &s); err != nil {
		return err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return d.Errf("%s: expected a whole number, got %q", name, s)
	}
	*dst = n
	return nil
}

// Duration reads one positive duration.
func Duration(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	return duration(d, dst, false)
}

// DurationOrZero reads one duration that may be 0 (off).
func DurationOrZero(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	return duration(d, dst, true)
}

func duration(d *caddyfile.Dispenser, dst *caddy.Duration, zero bool) error {
	name := d.Val()
	var s string
	if err := String(d, &s); err != nil {
		return err
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil || dur < 0 || (dur == 0 && !zero) {
		if zero {
			return d.Errf("%s: expected a duration such as 2s, got %q", name, s)
		}
		return d.Errf("%s: expected a positive duration such as 5s, got %q", name, s)
	}
	*dst = caddy.Duration(dur)
	return nil
}

// List splits arguments given as "a,b,c", "a b c" or a mixture.
func List(args []string) []string {
	var out []string
	for _, a := range args {
		for _, p := range strings.Split(a, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}
