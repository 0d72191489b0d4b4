package audit

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/groundgate/groundgate/plugins/post/internal/cfg"
)

// UnmarshalCaddyfile sets up the module from Caddyfile tokens. The
// dispenser is positioned on the module name (as the gateway's
// `post audit { … }` hands it over). Syntax (exactly one sink):
//
//	audit {
//	    jsonl <path> {
//	        max_size  <size>        # e.g. 100MiB; rotate past it (default: never)
//	        max_files <n>           # rotated files kept (default 5)
//	    }
//	    sqlite <path> {
//	        table <name>            # default audit
//	    }
//	    dataverse <url> {
//	        entity_set    <name>    # required
//	        tenant_id     <id>
//	        client_id     <id>
//	        client_secret <secret>  # e.g. {env.DV_SECRET}
//	        token_url     <url>
//	        scope         <scope>
//	        api_version   <v>       # default v9.2
//	        column_prefix <prefix>  # default gg_
//	        timeout       <dur>     # default 30s
//	        analytics               # write the admin console's columns
//	        key_column    <name>    # default <entity set without s>id
//	    }
//	    queue_size    <n>           # default 10000
//	    batch_size    <n>           # default 256
//	    retry_min     <dur>         # default 100ms
//	    retry_max     <dur>         # default 30s
//	    drain_timeout <dur>         # default 15s
//	}
//
// The sink blocks are optional when their settings are all defaults. An
// unknown subdirective is an error naming it.
func (a *Audit) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // module name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch sub := d.Val(); sub {
		case "jsonl":
			if a.JSONL != nil {
				return d.Err("audit: jsonl given twice")
			}
			a.JSONL = new(JSONL)
			err = a.JSONL.unmarshal(d)
		case "sqlite":
			if a.SQLite != nil {
				return d.Err("audit: sqlite given twice")
			}
			a.SQLite = new(SQLite)
			err = a.SQLite.unmarshal(d)
		case "dataverse":
			if a.Dataverse != nil {
				return d.Err("audit: dataverse given twice")
			}
			a.Dataverse = new(Dataverse)
			err = a.Dataverse.unmarshal(d)
		case "queue_size":
			a.QueueSize, err = cfg.Int(d, 1)
		case "batch_size":
			a.BatchSize, err = cfg.Int(d, 1)
		case "retry_min":
			a.RetryMin, err = cfg.Duration(d)
		case "retry_max":
			a.RetryMax, err = cfg.Duration(d)
		case "drain_timeout":
			a.DrainTimeout, err = cfg.Duration(d)
		default:
			return d.Errf("unrecognized audit subdirective %q", sub)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (c *JSONL) unmarshal(d *caddyfile.Dispenser) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	c.Path = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch sub := d.Val(); sub {
		case "max_size":
			c.MaxSize, err = cfg.Size(d)
		case "max_files":
			c.MaxFiles, err = cfg.Int(d, 1)
		default:
			return d.Errf("unrecognized audit jsonl subdirective %q", sub)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (c *SQLite) unmarshal(d *caddyfile.Dispenser) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	c.Path = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch sub := d.Val(); sub {
		case "table":
			c.Table, err = cfg.String(d)
		default:
			return d.Errf("unrecognized audit sqlite subdirective %q", sub)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (c *Dataverse) unmarshal(d *caddyfile.Dispenser) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	c.URL = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch sub := d.Val(); sub {
		case "entity_set":
			c.EntitySet, err = cfg.String(d)
		case "tenant_id":
			c.TenantID, err = cfg.String(d)
		case "client_id":
			c.ClientID, err = cfg.String(d)
		case "client_secret":
			c.ClientSecret, err = cfg.String(d)
		case "token_url":
			c.TokenURL, err = cfg.String(d)
		case "scope":
			c.Scope, err = cfg.String(d)
		case "api_version":
			c.APIVersion, err = cfg.String(d)
		case "column_prefix":
			c.ColumnPrefix, err = cfg.String(d)
		case "timeout":
			c.Timeout, err = cfg.Duration(d)
		case "analytics":
			if d.NextArg() {
				return d.ArgErr()
			}
			c.Analytics = true
		case "key_column":
			c.KeyColumn, err = cfg.String(d)
		default:
			return d.Errf("unrecognized audit dataverse subdirective %q", sub)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Interface guard.
var _ caddyfile.Unmarshaler = (*Audit)(nil)
