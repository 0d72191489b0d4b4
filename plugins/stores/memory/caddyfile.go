package memory

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// UnmarshalCaddyfile sets up the store from Caddyfile tokens. The
// dispenser is positioned on the module name, as the host's
// `store memory ...` hands it over. Syntax:
//
//	memory [<name>] {
//	    name           <name>
//	    sweep_interval <duration>
//	}
//
// An unknown subdirective is an error naming it.
func (s *Store) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume the module name
	if d.NextArg() {
		s.Name = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	for d.NextBlock(0) {
		switch sub := d.Val(); sub {
		case "name":
			if !d.AllArgs(&s.Name) {
				return d.ArgErr()
			}
		case "sweep_interval":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil {
				return d.Errf("sweep_interval: invalid duration %q: %v", v, err)
			}
			if dur <= 0 {
				return d.Errf("sweep_interval: must be positive, got %q", v)
			}
			s.SweepInterval = caddy.Duration(dur)
		default:
			return d.Errf("unrecognized memory store subdirective %q", sub)
		}
	}
	return nil
}

// Interface guard.
var _ caddyfile.Unmarshaler = (*Store)(nil)
