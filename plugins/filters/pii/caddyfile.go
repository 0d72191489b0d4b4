package pii

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/groundgate/groundgate/filters"
	"github.com/groundgate/groundgate/plugins/filters/internal/cfg"
)

// UnmarshalCaddyfile sets up the filter from Caddyfile tokens. The
// dispenser is positioned on the module name. Syntax:
//
//	pii {
//	    input     annotate|redact|block|off   # default actions
//	    context   annotate|redact|block|off
//	    output    annotate|redact|block|off
//	    entities  <type>...                   # enabled built-in types (default all)
//	    entity    <type> {                    # actions for one type instead
//	        input|context|output <action>
//	    }
//	    custom    <name> <regexp> [{          # repeatable; backquote the regexp
//	        input|context|output <action>
//	    }]
//	    max_match <bytes>
//	}
//
// An unknown subdirective is an error naming it.
func (p *PII) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // module name
	if d.NextArg() {
		return d.ArgErr()
	}
	nested := func(what string) (*filters.StageActions, error) {
		var a *filters.StageActions
		for nest := d.Nesting(); d.NextBlock(nest); {
			if a == nil {
				a = new(filters.StageActions)
			}
			ok, err := cfg.StageAction(d, a)
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, d.Errf("unrecognized pii %s subdirective %q", what, d.Val())
			}
		}
		return a, nil
	}
	for d.NextBlock(0) {
		if ok, err := cfg.StageAction(d, &p.Actions); ok {
			if err != nil {
				return err
			}
			continue
		}
		switch sub := d.Val(); sub {
		case "entities":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			p.Entities = append(p.Entities, args...)
		case "entity":
			var name string
			if !d.AllArgs(&name) {
				return d.ArgErr()
			}
			a, err := nested("entity")
			if err != nil {
				return err
			}
			if a == nil {
				return d.Errf("entity %s: no actions", name)
			}
			if p.Overrides == nil {
				p.Overrides = map[string]filters.StageActions{}
			}
			p.Overrides[name] = *a
		case "custom":
			var c Custom
			if !d.Args(&c.Name, &c.Pattern) || d.NextArg() {
				return d.ArgErr()
			}
			a, err := nested("custom")
			if err != nil {
				return err
			}
			c.Actions = a
			p.Custom = append(p.Custom, c)
		case "max_match":
			n, err := cfg.Int(d, 1)
			if err != nil {
				return err
			}
			p.MaxMatch = n
		default:
			return d.Errf("unrecognized pii subdirective %q", sub)
		}
	}
	return nil
}

// Interface guard.
var _ caddyfile.Unmarshaler = (*PII)(nil)
