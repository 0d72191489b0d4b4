package simulator

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("aoai_simulator", parseCaddyfile)
	// The simulator is terminal, like respond: order it just before it so
	// no global `order` option is needed.
	httpcaddyfile.RegisterDirectiveOrder("aoai_simulator", httpcaddyfile.Before, "respond")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	s := new(Simulator)
	if err := s.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return s, nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	aoai_simulator [<matcher>] {
//	    deployment            <name> [<model>]
//	    dimensions            <name> <n>
//	    api_key               <key...>
//	    latency               <duration>
//	    time_to_first_token   <duration>
//	    tokens_per_second     <n>
//	    error_rate            <0..1>
//	    rate_limit_rate       <0..1>
//	    drop_rate             <0..1>
//	    retry_after           <duration>
//	    tokens_per_minute     <n>
//	    requests_per_minute   <n>
//	    blocked_terms         <term...>
//	    blocked_output_terms  <term...>
//	    filter_category       hate|self_harm|sexual|violence
//	    async_filter          [true|false]
//	    seed                  <n>
//	    region                <name>
//	    max_request_body_size <bytes>
//	}
//
// deployment, api_key, blocked_terms and blocked_output_terms may repeat;
// their values accumulate. dimensions sets the default embedding size of
// a deployment declared before it.
func (s *Simulator) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		sub := d.Val()
		switch sub {
		case "deployment":
			args := d.RemainingArgs()
			if len(args) < 1 || len(args) > 2 {
				return d.ArgErr()
			}
			dep := Deployment{Name: args[0]}
			if len(args) == 2 {
				dep.Model = args[1]
			}
			s.Deployments = append(s.Deployments, dep)
		case "dimensions":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(args[1])
			if err != nil || n <= 0 {
				return d.Errf("dimensions: invalid value %q", args[1])
			}
			found := false
			for i := range s.Deployments {
				if s.Deployments[i].Name == args[0] {
					s.Deployments[i].Dimensions, found = n, true
				}
			}
			if !found {
				return d.Errf("dimensions: deployment %q is not declared before", args[0])
			}
		case "api_key", "api_keys":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			s.APIKeys = append(s.APIKeys, args...)
		case "latency", "time_to_first_token", "retry_after":
			dur, err := durationArg(d, sub)
			if err != nil {
				return err
			}
			switch sub {
			case "latency":
				s.Latency = dur
			case "time_to_first_token":
				s.TimeToFirstToken = dur
			default:
				s.RetryAfter = dur
			}
		case "tokens_per_second", "error_rate", "rate_limit_rate", "drop_rate":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return d.Errf("%s: invalid number %q", sub, v)
			}
			switch sub {
			case "tokens_per_second":
				s.TokensPerSecond = f
			case "error_rate":
				s.ErrorRate = f
			case "rate_limit_rate":
				s.RateLimitRate = f
			default:
				s.DropRate = f
			}
		case "tokens_per_minute", "requests_per_minute", "max_request_body_size":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return d.Errf("%s: invalid integer %q", sub, v)
			}
			switch sub {
			case "tokens_per_minute":
				s.TokensPerMinute = n
			case "requests_per_minute":
				s.RequestsPerMinute = n
			default:
				s.MaxRequestBodySize = n
			}
		case "blocked_terms", "blocked_output_terms":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			if sub == "blocked_terms" {
				s.BlockedTerms = append(s.BlockedTerms, args...)
			} else {
				s.BlockedOutputTerms = append(s.BlockedOutputTerms, args...)
			}
		case "filter_category":
			if !d.AllArgs(&s.FilterCategory) {
				return d.ArgErr()
			}
		case "async_filter":
			args := d.RemainingArgs()
			switch {
			case len(args) == 0:
				s.AsyncFilter = true
			case len(args) == 1:
				b, err := strconv.ParseBool(args[0])
				if err != nil {
					return d.Errf("async_filter: invalid boolean %q", args[0])
				}
				s.AsyncFilter = b
			default:
				return d.ArgErr()
			}
		case "seed":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return d.Errf("seed: invalid unsigned integer %q", v)
			}
			s.Seed = &n
		case "region":
			if !d.AllArgs(&s.Region) {
				return d.ArgErr()
			}
		default:
			return d.Errf("unrecognized subdirective %q", sub)
		}
	}
	return nil
}

func durationArg(d *caddyfile.Dispenser, name string) (caddy.Duration, error) {
	var v string
	if !d.AllArgs(&v) {
		return 0, d.ArgErr()
	}
	dur, err := caddy.ParseDuration(v)
	if err != nil {
		return 0, d.Errf("%s: invalid duration %q: %v", name, v, err)
	}
	return caddy.Duration(dur), nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Simulator)(nil)
