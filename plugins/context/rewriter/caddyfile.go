package rewriter

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/groundgate/groundgate/plugins/internal/caddyargs"
)

// UnmarshalCaddyfile sets up the rewriter from Caddyfile tokens:
//
//	query_rewriter {
//	    endpoint <url>
//	    deployment <name>
//	    api_version <version>
//	    api_key <key or {env.VAR}>
//	    api azure|openai
//	    instructions <text>
//	    timeout <duration>
//	}
//
// Unknown subdirectives are errors.
func (r *Rewriter) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // module name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "endpoint":
			err = caddyargs.String(d, &r.Endpoint)
		case "deployment":
			err = caddyargs.String(d, &r.Deployment)
		case "api_version":
			err = caddyargs.String(d, &r.APIVersion)
		case "api_key":
			err = caddyargs.String(d, &r.APIKey)
		case "api":
			err = caddyargs.String(d, &r.API)
			if err == nil && r.API != "azure" && r.API != "openai" {
				err = d.Errf("api: expected azure or openai, got %q", r.API)
			}
		case "instructions":
			err = caddyargs.String(d, &r.Instructions)
		case "timeout":
			err = caddyargs.Duration(d, &r.Timeout)
		default:
			return d.Errf("unrecognized query_rewriter subdirective %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

var _ caddyfile.Unmarshaler = (*Rewriter)(nil)
