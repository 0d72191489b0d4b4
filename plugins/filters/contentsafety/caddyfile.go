package contentsafety

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/groundgate/groundgate/filters"
)

// UnmarshalCaddyfile sets up the filter from Caddyfile tokens. The
// dispenser is positioned on the module name. Syntax:
//
//	azure_content_safety {
//	    endpoint       <url>
//	    api_key        <key or placeholder, e.g. {env.CONTENT_SAFETY_KEY}>
//	    input          annotate|redact|block|off
//	    context        annotate|redact|block|off
//	    output         annotate|redact|block|off
//	    threshold      <1-6>
//	    prompt_shields on|off
//	    timeout        <duration>
//	    fail           open|closed
//	}
//
// An unknown subdirective is an error naming it.
func (c *ContentSafety) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // module name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		sub := d.Val()
		switch sub {
		case "endpoint", "api_key", "input", "context", "output", "threshold", "prompt_shields", "timeout", "fail":
		default:
			return d.Errf("unrecognized azure_content_safety subdirective %q", sub)
		}
		var arg string
		if !d.AllArgs(&arg) {
			return d.ArgErr()
		}
		switch sub {
		case "endpoint":
			c.Endpoint = arg
		case "api_key":
			c.APIKey = arg
		case "input", "context", "output":
			st, _ := filters.ParseStage(sub)
			act, err := filters.ParseAction(arg)
			if err != nil {
				return d.Errf("%s: %v", sub, err)
			}
			c.Actions.Set(st, act)
		case "threshold":
			v, err := strconv.Atoi(arg)
			if err != nil || v < 1 || v > 6 {
				return d.Errf("threshold must be an integer in 1..6, got %q", arg)
			}
			c.Threshold = v
		case "prompt_shields":
			var on bool
			switch arg {
			case "on", "true":
				on = true
			case "off", "false":
			default:
				return d.Errf("prompt_shields must be on or off, got %q", arg)
			}
			c.PromptShields = &on
		case "timeout":
			dur, err := caddy.ParseDuration(arg)
			if err != nil || dur <= 0 {
				return d.Errf("timeout must be a positive duration, got %q", arg)
			}
			c.Timeout = caddy.Duration(dur)
		case "fail":
			if arg != "open" && arg != "closed" {
				return d.Errf("fail must be open or closed, got %q", arg)
			}
			c.Fail = arg
		}
	}
	return nil
}

// Interface guard.
var _ caddyfile.Unmarshaler = (*ContentSafety)(nil)
