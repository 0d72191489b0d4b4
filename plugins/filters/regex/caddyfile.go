package regex

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/groundgate/groundgate/filters"
	"github.com/groundgate/groundgate/plugins/filters/internal/cfg"
)

// UnmarshalCaddyfile sets up the filter from Caddyfile tokens. The
// dispenser is positioned on the module name. Syntax:
//
//	regex {
//	    input     annotate|redact|block|off   # default actions
//	    context   annotate|redact|block|off
//	    output    annotate|redact|block|off
//	    max_match <bytes>
//	    pattern   <name> <regexp> [{          # repeatable; backquote the regexp
//	        input|context|output <action>     # this pattern's actions instead
//	    }]
//	}
//
// An unknown subdirective is an error naming it.
func (r *Regex) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // module name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		if ok, err := cfg.StageAction(d, &r.Actions); ok {
			if err != nil {
				return err
			}
			continue
		}
		switch sub := d.Val(); sub {
		case "max_match":
			n, err := cfg.Int(d, 1)
			if err != nil {
				return err
			}
			r.MaxMatch = n
		case "pattern":
			var p Pattern
			if !d.NextArg() {
				return d.ArgErr()
			}
			p.Name = d.Val()
			if !d.NextArg() {
				return d.ArgErr()
			}
			p.Pattern = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
			for nest := d.Nesting(); d.NextBlock(nest); {
				if p.Actions == nil {
					p.Actions = new(filters.StageActions)
				}
				ok, err := cfg.StageAction(d, p.Actions)
				if err != nil {
					return err
				}
				if !ok {
					return d.Errf("unrecognized regex pattern subdirective %q", d.Val())
				}
			}
			r.Patterns = append(r.Patterns, p)
		default:
			return d.Errf("unrecognized regex subdirective %q", sub)
		}
	}
	return nil
}

// Interface guard.
var _ caddyfile.Unmarshaler = (*Regex)(nil)
