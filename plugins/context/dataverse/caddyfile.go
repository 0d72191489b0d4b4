package dataverse

import (
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
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
			err = oneString(disp, &d.URL)
		case "api_version":
			err = oneString(disp, &d.APIVersion)
		case "tenant_id":
			err = oneString(disp, &d.TenantID)
		case "client_id":
			err = oneString(disp, &d.ClientID)
		case "client_secret":
			err = oneString(disp, &d.ClientSecret)
		case "token_url":
			err = oneString(disp, &d.TokenURL)
		case "scope":
			err = oneString(disp, &d.Scope)
		case "timeout":
			err = oneDuration(disp, &d.Timeout)
		case "page_size":
			err = oneInt(disp, &d.PageSize)
		case "max_pages":
			err = oneInt(disp, &d.MaxPages)
		case "article_url":
			err = oneString(disp, &d.ArticleURL)
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
	cols := splitList(args[1:])
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
			s.SearchColumns = splitList(disp.RemainingArgs())
			if len(s.SearchColumns) == 0 {
				return disp.ArgErr()
			}
		case "chunk_tokens":
			err = oneInt(disp, &s.ChunkTokens)
		case "tokenizer":
			err = oneString(disp, &s.Tokenizer)
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

// splitList accepts "a,b,c", "a b c" and mixtures.
func splitList(args []string) []string {
	var out []string
	for _, a := range args {
		for _, p := range strings.Split(a, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func oneString(d *caddyfile.Dispenser, dst *string) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

func oneInt(d *caddyfile.Dispenser, dst *int) error {
	name := d.Val()
	var s string
	if err := oneString(d, &s); err != nil {
		return err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return d.Errf("%s: expected a whole number, got %q", name, s)
	}
	*dst = n
	return nil
}

func oneDuration(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	name := d.Val()
	var s string
	if err := oneString(d, &s); err != nil {
		return err
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil || dur <= 0 {
		return d.Errf("%s: expected a positive duration such as 5s, got %q", name, s)
	}
	*dst = caddy.Duration(dur)
	return nil
}

var _ caddyfile.Unmarshaler = (*Dataverse)(nil)
