package redis

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// UnmarshalCaddyfile sets up the store from Caddyfile tokens. The
// dispenser is positioned on the module name, as the host's
// `store redis ...` hands it over. Syntax:
//
//	redis [<address>] {
//	    address      <host:port>
//	    addresses    <host:port>...
//	    mode         standalone|cluster|sentinel
//	    master_name  <name>
//	    sentinel_password <secret>
//	    username     <name>
//	    password     <secret or {env.REDIS_PASSWORD}>
//	    db           <n>
//	    prefix       <string>
//	    timeout      <duration>
//	    dial_timeout <duration>
//	    pool_size    <n>
//	    tls
//	}
//
// An unknown subdirective is an error naming it.
func (s *Store) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume the module name
	if d.NextArg() {
		s.Address = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	for d.NextBlock(0) {
		switch sub := d.Val(); sub {
		case "address":
			if !d.AllArgs(&s.Address) {
				return d.ArgErr()
			}
		case "addresses":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			s.Addresses = append(s.Addresses, args...)
		case "mode":
			if !d.AllArgs(&s.Mode) {
				return d.ArgErr()
			}
			switch s.Mode {
			case modeStandalone, modeCluster, modeSentinel:
			default:
				return d.Errf("mode: must be standalone, cluster or sentinel, not %q", s.Mode)
			}
		case "master_name":
			if !d.AllArgs(&s.MasterName) {
				return d.ArgErr()
			}
		case "sentinel_password":
			if !d.AllArgs(&s.SentinelPassword) {
				return d.ArgErr()
			}
		case "username":
			if !d.AllArgs(&s.Username) {
				return d.ArgErr()
			}
		case "password":
			if !d.AllArgs(&s.Password) {
				return d.ArgErr()
			}
		case "prefix":
			if !d.AllArgs(&s.Prefix) {
				return d.ArgErr()
			}
		case "db", "pool_size":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || (sub == "pool_size" && n == 0) {
				return d.Errf("%s: invalid value %q", sub, v)
			}
			if sub == "db" {
				s.DB = n
			} else {
				s.PoolSize = n
			}
		case "timeout", "dial_timeout":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return d.Errf("%s: invalid duration %q", sub, v)
			}
			if sub == "timeout" {
				s.Timeout = caddy.Duration(dur)
			} else {
				s.DialTimeout = caddy.Duration(dur)
			}
		case "tls":
			if d.NextArg() {
				return d.ArgErr()
			}
			s.TLS = true
		default:
			return d.Errf("unrecognized redis store subdirective %q", sub)
		}
	}
	return nil
}

// Interface guard.
var _ caddyfile.Unmarshaler = (*Store)(nil)
