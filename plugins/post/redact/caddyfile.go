package redact

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// UnmarshalCaddyfile sets up the module from Caddyfile tokens. The
// dispenser is positioned on the module name. Syntax:
//
//	redact {
//	    entities    <type>...     # default all
//	    replacement <text>        # default [REDACTED:{category}]
//	}
//
// An unknown subdirective is an error naming it.
func (r *Redact) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // module name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch sub := d.Val(); sub {
		case "entities":
			r.Entities = append(r.Entities, d.RemainingArgs()...)
			if len(r.Entities) == 0 {
				return d.Errf("redact: entities: expected one or more entity types")
			}
		case "replacement":
			if !d.AllArgs(&r.Replacement) {
				return d.Errf("redact: replacement: expected one value")
			}
		default:
			return d.Errf("redact: unrecognized subdirective %q", sub)
		}
	}
	return nil
}

var _ caddyfile.Unmarshaler = (*Redact)(nil)
