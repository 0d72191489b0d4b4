package toggles

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/groundgate/groundgate/policies"
)

// DefaultRefresh is how often a View rereads the store: the longest an
// instance applies a toggle made on another one later.
const DefaultRefresh = time.Second

// Snapshot is an overlay as read from the store.
type Snapshot struct {
	Overlay *Overlay
	Version int64
}

// View serves the overlay to the request path from memory; a goroutine
// rereads the store every refresh period, so a request never waits for
// the store, and a store outage keeps the last overlay read. Close stops
// it.
type View struct {
	store   Store
	refresh time.Duration
	logger  *zap.Logger
	cur     atomic.Pointer[Snapshot]
	lastErr atomic.Pointer[string]
	stop    chan struct{}
	closed  sync.Once
}

// NewView reads the overlay once (an error leaves it empty until the
// store answers) and starts rereading it every refresh.
func NewView(ctx context.Context, s Store, refresh time.Duration, logger *zap.Logger) *View {
	if refresh <= 0 {
		refresh = DefaultRefresh
	}
	v := &View{store: s, refresh: refresh, logger: logger, stop: make(chan struct{})}
	v.cur.Store(&Snapshot{Overlay: &Overlay{Toggles: map[string]map[string]bool{}}})
	_ = v.reload(ctx)
	go v.loop()
	return v
}

func (v *View) loop() {
	t := time.NewTicker(v.refresh)
	defer t.Stop()
	for {
		select {
		case <-v.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), max(v.refresh, time.Second))
		_ = v.reload(ctx)
		cancel()
	}
}

// Close stops the background rereads.
func (v *View) Close() {
	if v != nil {
		v.closed.Do(func() { close(v.stop) })
	}
}

// Access implements policies.Overrides.
func (v *View) Access(feature, team string) (on, set bool) {
	if v == nil {
		return false, false
	}
	s := v.cur.Load()
	if len(s.Overlay.Toggles) == 0 {
		return false, false
	}
	on, set = s.Overlay.Toggles[feature][team]
	return on, set
}

// Current is the overlay this instance applies now.
func (v *View) Current() *Snapshot { return v.cur.Load() }

// Reload rereads the store now (the console does before it shows or
// changes the overlay).
func (v *View) Reload(ctx context.Context) error { return v.reload(ctx) }

func (v *View) reload(ctx context.Context) error {
	doc, ver, err := v.store.ToggleLoad(ctx)
	var o *Overlay
	if err == nil {
		o, err = decodeOverlay(doc)
	}
	if err != nil {
		msg := err.Error()
		if p := v.lastErr.Swap(&msg); (p == nil || *p != msg) && v.logger != nil {
			v.logger.Error("feature toggles: cannot read the overlay; the last one read stays in force", zap.Error(err))
		}
		return err
	}
	v.lastErr.Store(nil)
	v.cur.Store(&Snapshot{Overlay: o, Version: ver})
	return nil
}

// Apply validates the change set against the policy set and saves it
// whole or not at all: a ValidationError or ConflictError leaves the
// overlay as it was. who is the operator named in the log.
func (v *View) Apply(ctx context.Context, set *policies.Set, who string, changes []Change) ([]LogEntry, error) {
	var features []string
	if set != nil {
		features = set.Features()
	}
	if err := validate(changes, features); err != nil {
		return nil, err
	}
	for range 5 { // the store changed between read and swap: read again
		doc, ver, err := v.store.ToggleLoad(ctx)
		if err != nil {
			return nil, fmt.Errorf("toggles: reading the overlay: %w", err)
		}
		cur, err := decodeOverlay(doc)
		if err != nil {
			return nil, err
		}
		var conflicts []string
		next := cur.clone()
		now := time.Now().UTC()
		entries := make([]LogEntry, 0, len(changes))
		for _, c := range changes {
			before := cur.State(c.Feature, c.Team)
			if c.Before != "" && c.Before != before {
				conflicts = append(conflicts, fmt.Sprintf("%s/%s: you saw %s, it is now %s", c.Feature, c.Team, c.Before, before))
			}
			next.set(c.Feature, c.Team, c.State)
			entries = append(entries, LogEntry{Time: now, Who: who, Feature: c.Feature, Team: c.Team, Before: before, After: c.State, Version: ver + 1})
		}
		if len(conflicts) > 0 {
			_ = v.reload(ctx)
			return nil, &ConflictError{Cells: conflicts}
		}
		nd, err := json.Marshal(next)
		if err != nil {
			return nil, err
		}
		log := make([][]byte, len(entries))
		for i, e := range entries {
			log[i], _ = json.Marshal(e)
		}
		nv, ok, err := v.store.ToggleSwap(ctx, ver, nd, log)
		if err != nil {
			return nil, fmt.Errorf("toggles: saving the overlay: %w", err)
		}
		if ok {
			v.cur.Store(&Snapshot{Overlay: next, Version: nv})
			if v.logger != nil {
				for _, e := range entries {
					v.logger.Info("feature toggle changed", zap.String("who", e.Who), zap.String("feature", e.Feature),
						zap.String("team", e.Team), zap.String("before", e.Before), zap.String("after", e.After), zap.Int64("version", nv))
				}
			}
			return entries, nil
		}
	}
	return nil, &ConflictError{Cells: []string{"the overlay kept changing while this change was saved; try again"}}
}

// Log returns up to limit change-log entries, newest first.
func (v *View) Log(ctx context.Context, limit int) ([]LogEntry, error) {
	raw, err := v.store.ToggleLog(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := make([]LogEntry, 0, len(raw))
	for _, r := range raw {
		var e LogEntry
		if json.Unmarshal(r, &e) == nil {
			out = append(out, e)
		}
	}
	return out, nil
}

var _ policies.Overrides = (*View)(nil)
