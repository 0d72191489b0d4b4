package caddymodule

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/groundgate/groundgate/analytics"
	"github.com/groundgate/groundgate/budgets"
	"github.com/groundgate/groundgate/console"
	"github.com/groundgate/groundgate/entra"
	"github.com/groundgate/groundgate/plugins/post/audit"
	"github.com/groundgate/groundgate/policies"
	"github.com/groundgate/groundgate/toggles"
)

// The admin console (package console) is mounted on the operator keys
// (Introspect): without any, its paths answer as unknown URLs. Feature
// toggles live in the budget store when it can keep them (Redis: shared
// by every instance), else in this process; the analytics read the audit
// sink's SQLite database, or its Dataverse table when the sink writes the
// analytics columns.

// consoleDBs holds the analytics databases across reloads, by path and
// table; opening one the first time may build rollups over many rows, so
// it happens in the background.
var consoleDBs = caddy.NewUsagePool()

type consoleDB struct {
	once  sync.Once
	ready chan struct{}
	db    *analytics.DB
	err   error
}

func (c *consoleDB) Destruct() error {
	select {
	case <-c.ready:
		if c.db != nil {
			return c.db.Close()
		}
	default:
		// Still opening: close it when done.
		go func() {
			<-c.ready
			if c.db != nil {
				c.db.Close()
			}
		}()
	}
	return nil
}

var errPreparing = errors.New("the audit database is being prepared for analytics (indexes and rollups over the existing rows, once); try again in a minute")

func (c *consoleDB) get() (analytics.Backend, error) {
	select {
	case <-c.ready:
		if c.db == nil {
			return nil, c.err
		}
		return c.db, c.err
	default:
		return nil, errPreparing
	}
}

// dataverseAudit is implemented by an audit module writing to Dataverse.
type dataverseAudit interface {
	DataverseTable() (audit.Dataverse, bool)
}

// sqliteAudit is implemented by an audit module writing to SQLite.
type sqliteAudit interface {
	SQLiteTable() (path, table string, ok bool)
}

func (g *Gateway) provisionConsole() error {
	if g.policies != nil {
		// Toggles apply on every instance, with the console or not.
		ts, ok := g.store.(toggles.Store)
		if !ok {
			ts = toggles.Shared()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		g.toggles = toggles.NewView(ctx, ts, toggles.DefaultRefresh, g.logger)
		cancel()
		g.held = append(g.held, g.toggles.Close)
	}
	if len(g.Introspect) == 0 {
		return nil
	}
	if g.toggles == nil {
		g.toggles = toggles.NewView(context.Background(), toggles.Shared(), toggles.DefaultRefresh, g.logger)
		g.held = append(g.held, g.toggles.Close)
	}
	dbf := func() (analytics.Backend, error) { return nil, nil }
	if da, ok := g.audit.(dataverseAudit); ok {
		if c, ok := da.DataverseTable(); ok {
			client := &http.Client{Timeout: time.Duration(c.Timeout)}
			dv, err := analytics.OpenDataverse(analytics.DataverseOptions{URL: c.URL, EntitySet: c.EntitySet, ColumnPrefix: c.ColumnPrefix,
				KeyColumn: c.KeyColumn, APIVersion: c.APIVersion, Client: client,
				Token: entra.New(c.TokenURL, c.ClientID, c.ClientSecret, c.Scope, client)})
			if err != nil {
				return fmt.Errorf("admin console: %v", err)
			}
			dbf = func() (analytics.Backend, error) { return dv, nil }
		}
	}
	if sa, ok := g.audit.(sqliteAudit); ok {
		if path, table, ok := sa.SQLiteTable(); ok {
			key := "analytics|" + path + "|" + table
			v, _, err := consoleDBs.LoadOrNew(key, func() (caddy.Destructor, error) {
				c := &consoleDB{ready: make(chan struct{})}
				go func() {
					defer close(c.ready)
					c.db, c.err = analytics.Open(context.Background(), path, table)
					if c.err != nil {
						g.logger.Error("admin console: cannot open the audit database for analytics", zap.Error(c.err))
					}
				}()
				return c, nil
			})
			if err != nil {
				return err
			}
			g.held = append(g.held, func() { _, _ = consoleDBs.Delete(key) })
			dbf = v.(*consoleDB).get
		}
	}
	c, err := console.New(consoleGateway{g}, g.toggles, dbf, g.logger)
	if err != nil {
		return fmt.Errorf("admin console: %v", err)
	}
	g.console = c
	return nil
}

// consoleGateway is the gateway as the console sees it.
type consoleGateway struct{ g *Gateway }

func (cg consoleGateway) Authenticate(r *http.Request) (console.Principal, error) {
	p, err := cg.g.keys.authenticate(r)
	if err != nil {
		return console.Principal{}, err
	}
	return console.Principal{Name: p.name, Team: p.team}, nil
}

func (cg consoleGateway) Principals() []console.Principal {
	out := make([]console.Principal, 0, len(cg.g.keys))
	for _, p := range cg.g.keys {
		out = append(out, console.Principal{Name: p.name, Team: p.team})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (cg consoleGateway) SessionKey(name string) ([]byte, bool) {
	if !slices.Contains(cg.g.Introspect, name) {
		return nil, false
	}
	for sum, p := range cg.g.keys {
		if p.name == name {
			k := sha256.Sum256(append([]byte("groundgate console session\x00"), sum[:]...))
			return k[:], true
		}
	}
	return nil, false
}

func (cg consoleGateway) Policies() *policies.Set {
	if cg.g.policies == nil {
		return nil
	}
	return cg.g.policies.cur.Load().set
}

func (cg consoleGateway) Pools() []console.Pool {
	var out []console.Pool
	for _, pc := range cg.g.Pools {
		p := cg.g.pools[pc.Name]
		if p == nil {
			continue
		}
		cp := console.Pool{Name: p.name}
		now := time.Now().UnixNano()
		for _, u := range p.order() {
			cu := console.Upstream{Name: u.name, Kind: u.kind, Deployment: u.deployment, URL: u.chatURL, EmbeddingsURL: u.embeddingsURL,
				Priority: u.priority, Weight: u.weight, Breaker: u.state.breaker.State().String()}
			if until := u.state.coolUntil.Load(); until > now {
				cu.CoolingFor = time.Duration(until - now)
			}
			cp.Upstreams = append(cp.Upstreams, cu)
		}
		out = append(out, cp)
	}
	return out
}

// Budgets reads what remains of each limit by reserving nothing against
// it (a zero charge changes no counter) and releasing the reservation.
func (cg consoleGateway) Budgets(ctx context.Context) []console.Budget {
	g := cg.g
	if g.policies == nil {
		return nil
	}
	cp := g.policies.cur.Load()
	subjects := map[string][]string{"policy": {""}, "global": {""}}
	for _, p := range g.keys {
		subjects["key"] = append(subjects["key"], p.name)
		if p.team != "" && !slices.Contains(subjects["team"], p.team) {
			subjects["team"] = append(subjects["team"], p.team)
		}
	}
	for alias := range g.models {
		subjects["model"] = append(subjects["model"], alias)
	}
	for _, k := range []string{"key", "team", "model"} {
		sort.Strings(subjects[k])
	}
	var out []console.Budget
	for _, p := range cp.set.Policies() {
		rt := cp.rt[p.Name]
		if rt == nil {
			continue
		}
		for _, c := range rt.counters {
			for _, subj := range subjects[c.per] {
				b := console.Budget{Policy: p.Name, Per: c.per, Subject: subj, Window: string(c.window), Unit: c.unit.String(), Max: c.max}
				lim := budgets.Limit{Key: c.prefix + "|" + subj, Window: c.window, Max: c.max, Quota: c.window != budgets.Minute}
				sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				res, st, err := g.store.Reserve(sctx, []budgets.Charge{{Limit: lim}})
				var denied *budgets.Denied
				switch {
				case errors.As(err, &denied):
					st = denied.Status
				case err != nil:
					b.Err = "store unavailable"
				}
				if res != nil {
					_ = g.store.Release(sctx, res)
				}
				cancel()
				if len(st) > 0 {
					b.Remaining, b.Reset = st[0].Remaining, st[0].Reset
				}
				out = append(out, b)
			}
		}
	}
	return out
}

// Explain runs the explain endpoint as operator would call it, with
// ?principal=principal.
func (cg consoleGateway) Explain(ctx context.Context, operator, principal, path, feature string, body []byte) (int, []byte) {
	g := cg.g
	rec := httptest.NewRecorder()
	r := httptest.NewRequestWithContext(ctx, http.MethodPost, "/groundgate/explain"+path+"?principal="+url.QueryEscape(principal), bytes.NewReader(body))
	if feature != "" {
		r.Header.Set(policies.FeatureHeader, feature)
	}
	ex := g.newExchange(rec, r)
	err := func() error {
		rt, err := matchRoute(r)
		if err != nil {
			return err
		}
		if rt.op != opExplain {
			return notFound(r)
		}
		ex.route = rt
		if ex.principal = g.keys.byName(operator); ex.principal == nil {
			return notFound(r)
		}
		return g.serveExplain(ex)
	}()
	if err != nil {
		ex.fail(err)
	}
	return rec.Code, rec.Body.Bytes()
}
