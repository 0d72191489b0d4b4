package dataverse

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/groundgate/groundgate/plugins/internal/caddyargs"
)

// UnmarshalCaddyfile sets up the source from Caddyfile tokens:
//
//	dataverse [<url>] {
//	    url <environment url>
//	    api_version <v9.2>
//	    tenant_id <tenant id>
//	    client_id <client id>
//	    client_secret <secret>           # a placeholder: {env.DATAVERSE_CLIENT_SECRET}
//	    token_url <url>
//	    scope <scope>
//	    timeout <duration>
//	    page_size <n>
//	    max_pages <n>
//	    select <table> <column[,column…]…>
//	    article_url <template with {id} or {number}>
//	    search on|off [{
//	        entities <table…>
//	        search_columns <column[,column…]…>
//	        match_column <policy field> <column>   # repeatable
//	        chunk_tokens <n>
//	        tokenizer <model>
//	    }]
//	}
//
// Every subdirective may appear once (select once per table). Unknown
// subdirectives are errors.
func (d *Dataverse) UnmarshalCaddyfile(disp *caddyfile.Dispenser) error {
	disp.Next() // module name
	if disp.NextArg() {
		d.URL = disp.Val()
		if disp.NextArg() {
			return disp.ArgErr()
		}
	}
	seen := map[string]bool{}
	for disp.NextBlock(0) {
		name := disp.Val()
		if name != "select" {
			if seen[name] {
				return disp.Errf("dataverse: %s given twice", name)
			}
			seen[name] = true
		}
		var err error
		switch name {
		case "url":
			err = caddyargs.String(disp, &d.URL)
		case "api_version":
			err = caddyargs.String(disp, &d.APIVersion)
		case "tenant_id":
			err = caddyargs.String(disp, &d.TenantID)
		case "client_id":
			err = caddyargs.String(disp, &d.ClientID)
		case "client_secret":
			err = caddyargs.String(disp, &d.ClientSecret)
		case "token_url":
			err = caddyargs.String(disp, &d.TokenURL)
		case "scope":
			err = caddyargs.String(disp, &d.Scope)
		case "timeout":
			err = caddyargs.Duration(disp, &d.Timeout)
		case "page_size":
			err = caddyargs.Int(disp, &d.PageSize)
		case "max_pages":
			err = caddyargs.Int(disp, &d.MaxPages)
		case "article_url":
			err = caddyargs.String(disp, &d.ArticleURL)
		case "select":
			err = d.parseSelect(disp)
		case "search":
			err = d.parseSearch(disp)
		default:
			return disp.Errf("unrecognized dataverse subdirective %q", name)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (d *Dataverse) parseSelect(disp *caddyfile.Dispenser) error {
	args := disp.RemainingArgs()
	if len(args) < 2 {
		return disp.Errf("select: expected <table> <column[,column…]…>")
	}
	table := args[0]
	if entities[table] == nil {
		return disp.Errf("select: unknown table %q", table)
	}
	if _, dup := d.Select[table]; dup {
		return disp.Errf("select: table %q given twice", table)
	}
	cols := caddyargs.List(args[1:])
	for _, c := range cols {
		if !isColumnName(c) {
			return disp.Errf("select %s: %q is not a column name", table, c)
		}
	}
	if d.Select == nil {
		d.Select = map[string][]string{}
	}
	d.Select[table] = cols
	return nil
}

func (d *Dataverse) parseSearch(disp *caddyfile.Dispenser) error {
	s := &SearchConfig{}
	if !disp.NextArg() {
		return disp.Errf("search: expected on or off")
	}
	switch disp.Val() {
	case "on":
		s.Enabled = true
	case "off":
	default:
		return disp.Errf("search: expected on or off, got %q", disp.Val())
	}
	if disp.NextArg() {
		return disp.ArgErr()
	}
	seen := map[string]bool{}
	for nesting := disp.Nesting(); disp.NextBlock(nesting); {
		name := disp.Val()
		if seen[name] {
			return disp.Errf("search: %s given twice", name)
		}
		seen[name] = true
		var err error
		switch name {
		case "entities":
			s.Entities = disp.RemainingArgs()
			if len(s.Entities) == 0 {
				return disp.ArgErr()
			}
		case "search_columns":
			s.SearchColumns = caddyargs.List(disp.RemainingArgs())
			if len(s.SearchColumns) == 0 {
				return disp.ArgErr()
			}
		case "chunk_tokens":
			err = caddyargs.Int(disp, &s.ChunkTokens)
		case "tokenizer":
			err = caddyargs.String(disp, &s.Tokenizer)
		case "match_column":
			// repeatable: match_column <policy field> <column>
			delete(seen, name)
			args := disp.RemainingArgs()
			if len(args) != 2 {
				return disp.Errf("search: match_column: expected <policy field> <column>")
			}
			if s.MatchColumns == nil {
				s.MatchColumns = map[string]string{}
			}
			if _, dup := s.MatchColumns[args[0]]; dup {
				return disp.Errf("search: match_column %s given twice", args[0])
			}
			s.MatchColumns[args[0]] = args[1]
		default:
			return disp.Errf("unrecognized dataverse search subdirective %q", name)
		}
		if err != nil {
			return err
		}
	}
	d.SearchConfig = s
	return nil
}

var _ caddyfile.Unmarshaler = (*Dataverse)(nil)
