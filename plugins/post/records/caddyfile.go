package records

import (
	"encoding/json"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/groundgate/groundgate/plugins/post/internal/cfg"
)

// UnmarshalCaddyfile sets up the module from Caddyfile tokens. The
// dispenser is positioned on the module name (as the gateway's
// `post records { … }` hands it over). Syntax:
//
//	records {
//	    source  <module> [{ … }]        # an llm_gateway.context module; default records
//	    format  <entity> "<format>"     # repeatable; default: incident "{number}"
//	    pattern <entity> <pattern>      # overrides the entity's built-in pattern
//	    unknown text|flag               # default text
//	    timeout <duration>              # default 1s
//	}
//
// An unknown subdirective is an error naming it.
func (r *Records) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // module name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch sub := d.Val(); sub {
		case "source":
			err = r.parseSource(d)
		case "format":
			err = entityArg(d, &r.Formats)
		case "pattern":
			err = entityArg(d, &r.Patterns)
		case "unknown":
			r.Unknown, err = cfg.String(d)
			if err == nil && r.Unknown != UnknownText && r.Unknown != UnknownFlag {
				err = d.Errf("unknown: want text or flag, got %q", r.Unknown)
			}
		case "timeout":
			r.Timeout, err = cfg.Duration(d)
			if err == nil && r.Timeout == 0 {
				err = d.Errf("timeout: want a duration > 0")
			}
		default:
			return d.Errf("unrecognized records subdirective %q", sub)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// entityArg parses "<sub> <entity> <value>" into m.
func entityArg(d *caddyfile.Dispenser, m *map[string]string) error {
	sub := d.Val()
	args := d.RemainingArgs()
	if len(args) != 2 {
		return d.Errf("%s: expected <entity> <value>, got %d arguments", sub, len(args))
	}
	if !isLinkable(args[0]) {
		return d.Errf("%s: entity %q cannot be linked (want %s)", sub, args[0], linkableNames())
	}
	if *m == nil {
		*m = map[string]string{}
	}
	if _, dup := (*m)[args[0]]; dup {
		return d.Errf("%s: entity %q given twice", sub, args[0])
	}
	(*m)[args[0]] = args[1]
	return nil
}

// parseSource hands "source <module> …" to the module's own Caddyfile
// parser, as if its block started at <module>.
func (r *Records) parseSource(d *caddyfile.Dispenser) error {
	if r.SourceRaw != nil {
		return d.Errf("source given twice")
	}
	toks := d.NextSegment()
	if len(toks) < 2 {
		return d.Errf("source: expected a module name, e.g. source records")
	}
	name := toks[1].Text
	modID := "llm_gateway.context." + name
	if _, err := caddy.GetModule(modID); err != nil {
		return d.Errf("source: unknown module %q (%s is not registered)", name, modID)
	}
	sub := caddyfile.NewDispenser(toks[1:])
	sub.Next() // UnmarshalModule starts its segment at the current token
	unm, err := caddyfile.UnmarshalModule(sub, modID)
	if err != nil {
		return err
	}
	r.SourceRaw = json.RawMessage(caddyconfig.JSONModuleObject(unm, "source", name, nil))
	return nil
}

// Interface guard.
var _ caddyfile.Unmarshaler = (*Records)(nil)
