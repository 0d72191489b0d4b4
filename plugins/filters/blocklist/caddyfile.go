package blocklist

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/groundgate/groundgate/plugins/filters/internal/cfg"
)

// UnmarshalCaddyfile sets up the blocklist from Caddyfile tokens. The
// dispenser is positioned on the module name (as the gateway's
// `filter blocklist ...` hands it over). Syntax:
//
//	blocklist [<name>] {
//	    name            <name>
//	    terms           <term>...          # repeatable; quote terms with spaces
//	    file            <path>...          # repeatable
//	    input           annotate|redact|block|off
//	    context         annotate|redact|block|off
//	    output          annotate|redact|block|off
//	    word_boundaries on|off
//	}
//
// An unknown subdirective is an error naming it.
func (b *Blocklist) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // module name
	if d.NextArg() {
		b.Name = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	for d.NextBlock(0) {
		if ok, err := cfg.StageAction(d, &b.Actions); ok {
			if err != nil {
				return err
			}
			continue
		}
		switch sub := d.Val(); sub {
		case "name":
			if !d.AllArgs(&b.Name) {
				return d.ArgErr()
			}
		case "terms":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			b.Terms = append(b.Terms, args...)
		case "file":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			b.Files = append(b.Files, args...)
		case "word_boundaries":
			v, err := cfg.Bool(d)
			if err != nil {
				return err
			}
			b.WordBoundaries = &v
		default:
			return d.Errf("unrecognized blocklist subdirective %q", sub)
		}
	}
	return nil
}

// Interface guard.
var _ caddyfile.Unmarshaler = (*Blocklist)(nil)
