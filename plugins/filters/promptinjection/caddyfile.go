package promptinjection

import (
	"strconv"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/groundgate/groundgate/filters"
)

// UnmarshalCaddyfile sets up the filter from Caddyfile tokens. The
// dispenser is positioned on the module name. Syntax:
//
//	prompt_injection {
//	    input   annotate|redact|block|off [<threshold>]
//	    context annotate|redact|block|off [<threshold>]
//	    output  annotate|redact|block|off [<threshold>]
//	}
//
// Thresholds are scores in (0,1]. An unknown subdirective is an error
// naming it.
func (p *PromptInjection) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // module name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		sub := d.Val()
		st, err := filters.ParseStage(sub)
		if err != nil {
			return d.Errf("unrecognized prompt_injection subdirective %q", sub)
		}
		args := d.RemainingArgs()
		if len(args) < 1 || len(args) > 2 {
			return d.ArgErr()
		}
		act, err := filters.ParseAction(args[0])
		if err != nil {
			return d.Errf("%s: %v", sub, err)
		}
		p.Actions.Set(st, act)
		if len(args) == 2 {
			v, err := strconv.ParseFloat(args[1], 64)
			if err != nil || !(v > 0 && v <= 1) {
				return d.Errf("%s: threshold must be a number in (0,1], got %q", sub, args[1])
			}
			p.Thresholds.Set(st, v)
		}
	}
	return nil
}

// Interface guard.
var _ caddyfile.Unmarshaler = (*PromptInjection)(nil)
