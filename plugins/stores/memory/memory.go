// Package memory is Groundgate's in-process budget store, the Caddy
// module llm_gateway.stores.memory and the default store.
//
// Counters live in the process, in 64 independently locked shards; a
// reservation locks only the shards of its own limits. They are kept in a
// package-level usage pool keyed by the store's name, so they survive
// `caddy reload`: the new config finds the counters of the old one. A
// sweeper frees counters whose windows have passed, and shard maps that
// shrank are rebuilt, so memory stays bounded by the limits in use.
//
// One process only: gateway instances behind a load balancer each count
// on their own. Share budgets between instances with the redis store.
package memory

import (
	"context"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/groundgate/groundgate/budgets"
)

func init() {
	caddy.RegisterModule(new(Store))
}

// pool holds every named store's counters across config reloads.
var pool = caddy.NewUsagePool()

const (
	defaultName          = "default"
	defaultSweepInterval = 30 * time.Second
)

// Store is an in-process budget store: atomic reservations, settles and
// releases over counters held in this process's memory.
type Store struct {
	// Name of the counter set. Every memory store with the same name in
	// this process shares the same counters, across config reloads too.
	// Default: "default".
	Name string `json:"name,omitempty"`

	// How often counters whose windows have passed are freed. The
	// latest loaded config's value applies. Default: 30s.
	SweepInterval caddy.Duration `json:"sweep_interval,omitempty"`

	st *state
}

// CaddyModule returns the Caddy module information.
func (*Store) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "llm_gateway.stores.memory",
		New: func() caddy.Module { return new(Store) },
	}
}

// Provision loads the named counters from the usage pool, or creates
// them and starts their sweeper.
func (s *Store) Provision(caddy.Context) error {
	if s.Name == "" {
		s.Name = defaultName
	}
	if s.SweepInterval == 0 {
		s.SweepInterval = caddy.Duration(defaultSweepInterval)
	}
	if err := s.Validate(); err != nil {
		return err
	}
	v, _, err := pool.LoadOrNew(s.Name, func() (caddy.Destructor, error) {
		st := newState(time.Now)
		st.sweepEvery.Store(int64(s.SweepInterval))
		st.startSweeper()
		return st, nil
	})
	if err != nil {
		return err
	}
	s.st = v.(*state)
	s.st.sweepEvery.Store(int64(s.SweepInterval))
	return nil
}

// Validate checks the configuration.
func (s *Store) Validate() error {
	if s.SweepInterval < 0 {
		return fmt.Errorf("memory store %q: negative sweep_interval %v", s.Name, time.Duration(s.SweepInterval))
	}
	if s.SweepInterval > 0 && time.Duration(s.SweepInterval) < time.Second {
		return fmt.Errorf("memory store %q: sweep_interval %v is below 1s", s.Name, time.Duration(s.SweepInterval))
	}
	return nil
}

// Cleanup drops this config's reference to the counters; the last
// reference stops their sweeper. Reservations of this config still in
// flight can settle afterwards.
func (s *Store) Cleanup() error {
	if s.st == nil || s.Name == "" {
		return nil
	}
	_, err := pool.Delete(s.Name)
	return err
}

// New returns a ready memory store outside any Caddy config, with its own
// counters and no sweeper, reading the time from now (time.Now if nil):
// for tests and for embedding the gateway's budget logic.
func New(now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{Name: "", st: newState(now)}
}

// Reserve implements budgets.Store.
func (s *Store) Reserve(ctx context.Context, charges []budgets.Charge) (*budgets.Reservation, []budgets.Status, error) {
	return s.st.Reserve(ctx, charges)
}

// Settle implements budgets.Store.
func (s *Store) Settle(ctx context.Context, r *budgets.Reservation, actual []int64) error {
	return s.st.Settle(ctx, r, actual)
}

// Release implements budgets.Store.
func (s *Store) Release(ctx context.Context, r *budgets.Reservation) error {
	return s.st.Release(ctx, r)
}

// Interface guards.
var (
	_ caddy.Module       = (*Store)(nil)
	_ caddy.Provisioner  = (*Store)(nil)
	_ caddy.Validator    = (*Store)(nil)
	_ caddy.CleanerUpper = (*Store)(nil)
	_ budgets.Store      = (*Store)(nil)
)
