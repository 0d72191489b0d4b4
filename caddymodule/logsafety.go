package caddymodule

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Client keys and Caddy's access log.
//
// Caddy copies each request for its access log before any handler runs,
// so the gateway cannot take its key headers out of what gets logged.
// Caddy redacts Authorization itself (unless log_credentials is set) but
// not api-key, the header every Azure client sends its key in. What
// decides is the log's encoder: a filter encoder that deletes
// request>headers>Api-Key keeps the key out. The gateway checks, when
// its config loads, that every log receiving the access entries of its
// server does that, by encoding a probe request with each log's own
// encoder (nothing is written), and refuses to load otherwise.

// keyHeaderFilter is the Caddyfile fix the error suggests.
const keyHeaderFilter = "log {\n\tformat filter {\n\t\twrap json\n\t\trequest>headers>Api-Key delete\n\t\trequest>headers>Authorization delete\n\t}\n}"

// checkAccessLogs refuses a config whose access logs would write a client
// key in clear. ctx is the handler's provisioning context: Caddy puts the
// server being provisioned in it.
// It returns the guard for loggers chosen per request (nil when the server
// keeps no access log).
func checkAccessLogs(ctx caddy.Context) (*logGuard, error) {
	srv, _ := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if srv == nil || srv.Logs == nil {
		return nil, nil // no access log
	}
	headers := keyHeaders(srv.Logs)
	for _, name := range accessLoggerNames(srv.Logs) {
		if leaked := leakedHeaders(ctx, name, headers); len(leaked) > 0 {
			return nil, fmt.Errorf("llm_gateway: the access log %s would record client keys in clear (request header %s); "+
				"delete the header in that log's encoder, e.g. in the Caddyfile:\n%s",
				name, strings.Join(leaked, ", "), keyHeaderFilter)
		}
	}
	return &logGuard{ctx: ctx, keys: headers}, nil
}

// keyHeaders are the request headers holding a client key that Caddy
// would log, as Go spells them in a request's header map.
func keyHeaders(logs *caddyhttp.ServerLogConfig) []string {
	if logs.ShouldLogCredentials {
		return []string{"Api-Key", "Authorization"}
	}
	return []string{"Api-Key"}
}

// accessLoggerNames are the loggers a server's access entries go to: its
// default logger and those named for hosts.
func accessLoggerNames(logs *caddyhttp.ServerLogConfig) []string {
	names := []string{accessLoggerName(logs.DefaultLoggerName)}
	for _, ns := range logs.LoggerNames {
		for _, n := range ns {
			if n := accessLoggerName(n); !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	slices.Sort(names)
	return names
}

func accessLoggerName(n string) string {
	if n == "" {
		return "http.log.access"
	}
	return "http.log.access." + n
}

// loggerNamespace stands for a logger name where Caddy asks for a module:
// ctx.Logger(m) returns a logger over exactly the logs that accept m's
// name, with their encoders.
type loggerNamespace string

func (n loggerNamespace) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: caddy.ModuleID(n), New: func() caddy.Module { return n }}
}

// leakedHeaders encodes a probe request through the logs behind logger
// name and reports which of headers reached an encoder unfiltered.
// zapcore's With encodes the field into a copy of each log's encoder and
// writes nothing; a log whose filter drops or replaces the header never
// asks the probe for its value.
func leakedHeaders(ctx caddy.Context, name string, headers []string) []string {
	p := &probeHeaders{names: headers, leaked: map[string]bool{}}
	core := ctx.Logger(loggerNamespace(name)).Core()
	core.With([]zapcore.Field{zap.Object("request", probeRequest{p})})
	var out []string
	for _, h := range headers {
		if p.leaked[h] {
			out = append(out, h)
		}
	}
	return out
}

// probeRequest has the shape of Caddy's logged request, as far as the
// header values: request>headers>NAME.
type probeRequest struct{ headers *probeHeaders }

func (r probeRequest) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	return enc.AddObject("headers", r.headers)
}

type probeHeaders struct {
	mu     sync.Mutex // a tee of several logs may encode concurrently
	names  []string
	leaked map[string]bool
}

func (p *probeHeaders) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	for _, n := range p.names {
		if err := enc.AddArray(n, probeValue{p, n}); err != nil {
			return err
		}
	}
	return nil
}

type probeValue struct {
	p    *probeHeaders
	name string
}

// MarshalLogArray runs only when an encoder writes the value.
func (v probeValue) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	v.p.mu.Lock()
	v.p.leaked[v.name] = true
	v.p.mu.Unlock()
	enc.AppendString("probe")
	return nil
}

// requestLogNames are the loggers a handler before the gateway chose for
// this request (log_name, access_logger_names); nil when none.
func requestLogNames(r *http.Request) []string {
	names, _ := caddyhttp.GetVar(r.Context(), caddyhttp.AccessLoggerNameVarKey).([]any)
	out := make([]string, 0, len(names))
	for _, n := range names {
		if s, ok := n.(string); ok {
			out = append(out, accessLoggerName(s))
		}
	}
	return out
}

// logGuard checks, once per name, loggers chosen per request (log_name),
// which the config-load check cannot know.
type logGuard struct {
	ctx  caddy.Context
	keys []string
	safe sync.Map // logger name → bool
}

// skipUnsafe keeps the access entry of r out of the logs when a logger
// chosen for it would record its key, and says so once per logger.
func (lg *logGuard) skipUnsafe(r *http.Request, logger *zap.Logger) {
	if lg == nil {
		return
	}
	for _, name := range requestLogNames(r) {
		v, seen := lg.safe.Load(name)
		if !seen {
			leaked := leakedHeaders(lg.ctx, name, lg.keys)
			v, seen = lg.safe.LoadOrStore(name, len(leaked) == 0)
			if !seen && len(leaked) > 0 {
				logger.Error("an access log chosen per request would record client keys; its entries for gateway requests are skipped",
					zap.String("logger", name), zap.Strings("headers", leaked))
			}
		}
		if !v.(bool) {
			caddyhttp.SetVar(r.Context(), caddyhttp.LogSkipVar, true)
			return
		}
	}
}
