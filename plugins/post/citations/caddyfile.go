package citations

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/groundgate/groundgate/plugins/post/internal/cfg"
)

// UnmarshalCaddyfile sets up the module from Caddyfile tokens. The
// dispenser is positioned on the module name (as the gateway's
// `post citations { … }` hands it over). Syntax:
//
//	citations {
//	    format        "[{number}]({url})"   # default "[doc{n}]"
//	    format_no_url "[{number}]"
//	    context       cited|all|off          # default cited
//	    require       [on|off]               # bare "require" is on
//	    on_ungrounded flag|refuse            # default flag
//	    refusal       "<text>"
//	    max_hold      <bytes>
//	}
//
// An unknown subdirective is an error naming it.
func (c *Citations) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // module name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch sub := d.Val(); sub {
		case "format":
			c.Format, err = cfg.String(d)
		case "format_no_url":
			c.FormatNoURL, err = cfg.String(d)
		case "context":
			c.Context, err = cfg.String(d)
			if err == nil && c.Context != ContextCited && c.Context != ContextAll && c.Context != ContextOff {
				err = d.Errf("context: want cited, all or off, got %q", c.Context)
			}
		case "require":
			c.Require, err = cfg.Bool(d)
		case "on_ungrounded":
			c.OnUngrounded, err = cfg.String(d)
			if err == nil && c.OnUngrounded != Flag && c.OnUngrounded != Refuse {
				err = d.Errf("on_ungrounded: want flag or refuse, got %q", c.OnUngrounded)
			}
		case "refusal":
			c.Refusal, err = cfg.String(d)
		case "max_hold":
			c.MaxHold, err = cfg.Int(d, 1)
		default:
			return d.Errf("unrecognized citations subdirective %q", sub)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Interface guard.
var _ caddyfile.Unmarshaler = (*Citations)(nil)
