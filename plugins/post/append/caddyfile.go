package appendtext

import (
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/groundgate/groundgate/plugins/post/internal/cfg"
)

// UnmarshalCaddyfile sets up the module from Caddyfile tokens. The
// dispenser is positioned on the module name (as the gateway's
// `post append …` hands it over). Syntax:
//
//	append [<text>] {
//	    text      <text>
//	    separator <text>     # default "\n\n"; "" for none
//	}
//
// The text is given either inline or in the block, once; a multi-line
// text can be written as a quoted string spanning lines or a heredoc.
// In separator (only), the escapes \n, \t and \\ stand for a newline, a tab
// and a backslash, since the Caddyfile keeps them literal. An unknown
// subdirective is an error naming it.
func (a *Append) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // module name
	if d.NextArg() {
		a.Text = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	for d.NextBlock(0) {
		switch sub := d.Val(); sub {
		case "text":
			if a.Text != "" {
				return d.Err("append: text given twice")
			}
			v, err := cfg.String(d)
			if err != nil {
				return err
			}
			a.Text = v
		case "separator":
			v, err := cfg.String(d)
			if err != nil {
				return err
			}
			v = unescape(v)
			a.Separator = &v
		default:
			return d.Errf("unrecognized append subdirective %q", sub)
		}
	}
	return nil
}

// unescape turns \n, \t and \\ into a newline, a tab and a backslash.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			switch s[i+1] {
			case 'n':
				b.WriteByte('\n')
				i++
				continue
			case 't':
				b.WriteByte('\t')
				i++
				continue
			case '\\':
				b.WriteByte('\\')
				i++
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Interface guard.
var _ caddyfile.Unmarshaler = (*Append)(nil)
