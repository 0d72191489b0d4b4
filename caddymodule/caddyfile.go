package caddymodule

import (
	"encoding/json"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("llm_gateway", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("llm_gateway", httpcaddyfile.Before, "reverse_proxy")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	g := new(Gateway)
	err := g.UnmarshalCaddyfile(h.Dispenser)
	return g, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	llm_gateway {
//	    key <name> {
//	        sha256 <hex> | env <VAR>
//	        team <team>
//	        scope {
//	            all | accounts <id...> | business_units <name...> | teams <name...>
//	        }
//	    }
//	    model <alias> [<pool>] {
//	        pool <pool>
//	        tokenizer <openai model>
//	    }
//	    pool <name> {
//	        azure|openai [<name>] {
//	            endpoint <url>
//	            deployment <name>
//	            api_version <version>
//	            api_key <key or {env.VAR}>
//	            loopback_api_key <key used when api_key is empty and the endpoint is loopback>
//	            entra {
//	                tenant_id <id>
//	                client_id <id>
//	                client_secret <secret>
//	                scope <scope>
//	                token_url <url>
//	            }
//	            priority <n>
//	            weight <n>
//	            h2c
//	        }
//	    }
//	    max_request_body <size>
//	    max_response_body <size>
//	    timeout <duration>
//	    attempt_timeout <duration>
//	    stream_idle_timeout <duration>
//	    max_attempts <n>
//	    max_retry_wait <duration>
//	    breaker {
//	        failures <n>
//	        open_for <duration>
//	        half_open_requests <n>
//	    }
//	    policies <file|glob|dir...>
//	    watch <interval>
//	    context <name> <records|local_index|dataverse|azure_search> [{ ... }]
//	    price <model alias> {
//	        input <USD per 1M tokens>
//	        cached_input <USD per 1M tokens>
//	        output <USD per 1M tokens>
//	    }
//	    store memory|redis [{ ... }]
//	    filter <name> <pii|prompt_injection|blocklist|regex> [{ ... }]
//	    post <name> <citations|append> [{ ... }]
//	    audit { jsonl <path> | sqlite <path> | dataverse <url> {...} }
//	    tracing
//	    introspect <key name...>
//	}
func (g *Gateway) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "key":
			err = g.parseKey(d)
		case "oidc":
			err = g.parseOIDC(d)
		case "model":
			err = g.parseModel(d)
		case "pool":
			err = g.parsePool(d)
		case "max_request_body":
			err = parseSize(d, &g.MaxRequestBody)
		case "max_response_body":
			err = parseSize(d, &g.MaxResponseBody)
		case "response_owners_max_size":
			err = parseSize(d, &g.ResponseOwnersMaxSize)
		case "timeout":
			err = parseDuration(d, &g.Timeout)
		case "attempt_timeout":
			err = parseDuration(d, &g.AttemptTimeout)
		case "stream_idle_timeout":
			err = parseDuration(d, &g.StreamIdleTimeout)
		case "client_write_timeout":
			err = parseClientWriteTimeout(d, &g.ClientWriteTimeout)
		case "max_retry_wait":
			err = parseDuration(d, &g.MaxRetryWait)
		case "max_attempts":
			err = parseInt(d, &g.MaxAttempts)
		case "breaker":
			err = g.parseBreaker(d)
		case "policies":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Errf("policies: expected one or more files, globs or directories")
			}
			if err := checkPolicyFiles(args); err != nil {
				return d.Errf("policies: %v", err)
			}
			g.Policies = append(g.Policies, args...)
		case "watch":
			err = parseDuration(d, &g.Watch)
		case "price":
			err = g.parsePrice(d)
		case "context":
			var name string
			if !d.NextArg() {
				return d.Errf("context: expected <name> <source module> [{...}]")
			}
			name = d.Val()
			if !d.NextArg() {
				return d.Errf("context %q: expected a source module (records, local_index, dataverse, azure_search)", name)
			}
			modName := d.Val()
			mod, err := caddyfile.UnmarshalModule(d, "llm_gateway.context."+modName)
			if err != nil {
				return err
			}
			if g.ContextRaw == nil {
				g.ContextRaw = map[string]json.RawMessage{}
			}
			if _, dup := g.ContextRaw[name]; dup {
				return d.Errf("context %q is defined twice", name)
			}
			g.ContextRaw[name] = caddyconfig.JSONModuleObject(mod, "source", modName, nil)
		case "filter":
			if !d.NextArg() {
				return d.Errf("filter: expected <name> <module> [{...}]")
			}
			name := d.Val()
			if !d.NextArg() {
				return d.Errf("filter %q: expected a filter module (pii, prompt_injection, blocklist, regex)", name)
			}
			modName := d.Val()
			mod, err := caddyfile.UnmarshalModule(d, "llm_gateway.filters."+modName)
			if err != nil {
				return err
			}
			if g.FiltersRaw == nil {
				g.FiltersRaw = map[string]json.RawMessage{}
			}
			if _, dup := g.FiltersRaw[name]; dup {
				return d.Errf("filter %q is defined twice", name)
			}
			g.FiltersRaw[name] = caddyconfig.JSONModuleObject(mod, "filter", modName, nil)
		case "post":
			if !d.NextArg() {
				return d.Errf("post: expected <name> <module> [{...}]")
			}
			name := d.Val()
			if !d.NextArg() {
				return d.Errf("post %q: expected a post-processor module (citations, append)", name)
			}
			modName := d.Val()
			mod, err := caddyfile.UnmarshalModule(d, "llm_gateway.post."+modName)
			if err != nil {
				return err
			}
			if g.PostRaw == nil {
				g.PostRaw = map[string]json.RawMessage{}
			}
			if _, dup := g.PostRaw[name]; dup {
				return d.Errf("post %q is defined twice", name)
			}
			g.PostRaw[name] = caddyconfig.JSONModuleObject(mod, "post", modName, nil)
		case "audit":
			mod, err := caddyfile.UnmarshalModule(d, "llm_gateway.post.audit")
			if err != nil {
				return err
			}
			g.AuditRaw = caddyconfig.JSONModuleObject(mod, "post", "audit", nil)
		case "store":
			if !d.NextArg() {
				return d.Errf("store: expected a store module name (memory, redis)")
			}
			name := d.Val()
			mod, err := caddyfile.UnmarshalModule(d, "llm_gateway.stores."+name)
			if err != nil {
				return err
			}
			g.StoreRaw = caddyconfig.JSONModuleObject(mod, "type", name, nil)
		case "tracing":
			if d.NextArg() {
				return d.ArgErr()
			}
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				return d.Errf("tracing: unrecognized subdirective %q (exporters are configured with the OTEL_* environment variables)", d.Val())
			}
			g.Tracing = new(TracingConfig)
		case "introspect":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Errf("introspect: expected the names of the keys allowed to call the operator endpoints")
			}
			g.Introspect = append(g.Introspect, args...)
		default:
			return d.Errf("unrecognized llm_gateway subdirective %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (g *Gateway) parseKey(d *caddyfile.Dispenser) error {
	var k KeyConfig
	if !d.AllArgs(&k.Name) {
		return d.Errf("key: expected a principal name")
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "sha256":
			err = parseString(d, &k.SHA256)
		case "env":
			err = parseString(d, &k.Env)
		case "team":
			err = parseString(d, &k.Team)
		case "scope":
			k.Scope = new(KeyScope)
			err = parseScope(d, k.Scope)
		default:
			return d.Errf("key %q: unrecognized subdirective %q", k.Name, d.Val())
		}
		if err != nil {
			return err
		}
	}
	g.Keys = append(g.Keys, k)
	return nil
}

func (g *Gateway) parseModel(d *caddyfile.Dispenser) error {
	var m ModelConfig
	args := d.RemainingArgs()
	switch len(args) {
	case 2:
		m.Pool = args[1]
		fallthrough
	case 1:
		m.Alias = args[0]
	default:
		return d.Errf("model: expected <alias> [<pool>]")
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "pool":
			err = parseString(d, &m.Pool)
		case "tokenizer":
			err = parseString(d, &m.Tokenizer)
		default:
			return d.Errf("model %q: unrecognized subdirective %q", m.Alias, d.Val())
		}
		if err != nil {
			return err
		}
	}
	g.Models = append(g.Models, m)
	return nil
}

func (g *Gateway) parsePool(d *caddyfile.Dispenser) error {
	var p PoolConfig
	if !d.AllArgs(&p.Name) {
		return d.Errf("pool: expected a pool name")
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		kind := d.Val()
		if kind != "azure" && kind != "openai" {
			return d.Errf("pool %q: unrecognized subdirective %q (want azure or openai)", p.Name, kind)
		}
		u := UpstreamConfig{Type: kind}
		args := d.RemainingArgs()
		if len(args) > 1 {
			return d.Errf("%s: expected at most one name", kind)
		}
		if len(args) == 1 {
			u.Name = args[0]
		}
		if err := parseUpstream(d, &u); err != nil {
			return err
		}
		p.Upstreams = append(p.Upstreams, u)
	}
	g.Pools = append(g.Pools, p)
	return nil
}

func parseUpstream(d *caddyfile.Dispenser, u *UpstreamConfig) error {
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "endpoint":
			err = parseString(d, &u.Endpoint)
		case "deployment", "model":
			err = parseString(d, &u.Deployment)
		case "api_version":
			err = parseString(d, &u.APIVersion)
		case "api_key":
			err = parseString(d, &u.APIKey)
		case "loopback_api_key":
			err = parseString(d, &u.LoopbackAPIKey)
		case "priority":
			err = parseInt(d, &u.Priority)
		case "weight":
			err = parseInt(d, &u.Weight)
		case "h2c":
			if d.NextArg() {
				return d.Errf("%s upstream: h2c takes no arguments, got %q", u.Type, d.Val())
			}
			u.H2C = true
		case "entra":
			u.Entra = new(EntraConfig)
			err = parseEntra(d, u.Entra)
		default:
			return d.Errf("%s upstream: unrecognized subdirective %q", u.Type, d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func parseEntra(d *caddyfile.Dispenser, e *EntraConfig) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "tenant_id":
			err = parseString(d, &e.TenantID)
		case "client_id":
			err = parseString(d, &e.ClientID)
		case "client_secret":
			err = parseString(d, &e.ClientSecret)
		case "scope":
			err = parseString(d, &e.Scope)
		case "token_url":
			err = parseString(d, &e.TokenURL)
		default:
			return d.Errf("entra: unrecognized subdirective %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (g *Gateway) parseBreaker(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	g.Breaker = new(BreakerConfig)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		var n int
		switch d.Val() {
		case "failures":
			err = parseInt(d, &n)
			g.Breaker.Failures = uint32(n)
		case "half_open_requests":
			err = parseInt(d, &n)
			g.Breaker.HalfOpenRequests = uint32(n)
		case "open_for":
			err = parseDuration(d, &g.Breaker.OpenFor)
		default:
			return d.Errf("breaker: unrecognized subdirective %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (g *Gateway) parsePrice(d *caddyfile.Dispenser) error {
	var model string
	if !d.AllArgs(&model) {
		return d.Errf("price: expected a model alias")
	}
	var p Price
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var dst *float64
		switch d.Val() {
		case "input":
			dst = &p.Input
		case "cached_input":
			dst = &p.CachedInput
		case "output":
			dst = &p.Output
		default:
			return d.Errf("price %q: unrecognized subdirective %q", model, d.Val())
		}
		name := d.Val()
		var v string
		if !d.AllArgs(&v) {
			return d.Errf("price %q: %s: expected one number", model, name)
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 {
			return d.Errf("price %q: %s: %q is not a non-negative number", model, name, v)
		}
		*dst = f
	}
	if g.Prices == nil {
		g.Prices = map[string]Price{}
	}
	g.Prices[model] = p
	return nil
}

func parseScope(d *caddyfile.Dispenser, s *KeyScope) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		args := d.RemainingArgs()
		switch sub {
		case "all":
			if len(args) > 0 {
				return d.ArgErr()
			}
			s.All = true
			continue
		case "accounts":
			s.Accounts = append(s.Accounts, args...)
		case "business_units":
			s.BusinessUnits = append(s.BusinessUnits, args...)
		case "teams":
			s.Teams = append(s.Teams, args...)
		default:
			return d.Errf("scope: unrecognized subdirective %q", sub)
		}
		if len(args) == 0 {
			return d.Errf("scope: %s: expected one or more values", sub)
		}
	}
	return nil
}

func parseString(d *caddyfile.Dispenser, dst *string) error {
	name := d.Val()
	if !d.AllArgs(dst) {
		return d.Errf("%s: expected exactly one value", name)
	}
	return nil
}

func parseInt(d *caddyfile.Dispenser, dst *int) error {
	name := d.Val()
	var s string
	if !d.AllArgs(&s) {
		return d.Errf("%s: expected exactly one value", name)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return d.Errf("%s: %q is not a non-negative integer", name, s)
	}
	*dst = n
	return nil
}

func parseDuration(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	name := d.Val()
	var s string
	if !d.AllArgs(&s) {
		return d.Errf("%s: expected exactly one value", name)
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil {
		return d.Errf("%s: %q is not a duration: %v", name, s, err)
	}
	*dst = caddy.Duration(dur)
	return nil
}

// parseClientWriteTimeout reads a positive duration, or off (stored as
// -1: disabled). Zero would silently mean the default, so it is refused.
func parseClientWriteTimeout(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	name := d.Val()
	var s string
	if !d.AllArgs(&s) {
		return d.Errf("%s: expected exactly one value (a duration or off)", name)
	}
	if s == "off" {
		*dst = -1
		return nil
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil {
		return d.Errf("%s: %q is not a duration: %v", name, s, err)
	}
	if dur <= 0 {
		return d.Errf("%s: %q must be positive (use off to disable)", name, s)
	}
	*dst = caddy.Duration(dur)
	return nil
}

func parseSize(d *caddyfile.Dispenser, dst *int64) error {
	name := d.Val()
	var s string
	if !d.AllArgs(&s) {
		return d.Errf("%s: expected exactly one value", name)
	}
	n, err := humanize.ParseBytes(s)
	if err != nil || n == 0 {
		return d.Errf("%s: %q is not a size (like 4MB)", name, s)
	}
	*dst = int64(n)
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Gateway)(nil)
