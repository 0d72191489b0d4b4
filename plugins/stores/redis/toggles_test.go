package redis

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/groundgate/groundgate/policies"
	"github.com/groundgate/groundgate/toggles"
)

// TestTogglesTwoInstances: a toggle made through one instance's store is
// applied by another instance's view without a reload; concurrent change
// sets are serialised, never half-applied.
func TestTogglesTwoInstances(t *testing.T) {
	srv := startRedis(t)
	a := newTestStore(t, srv.addr(), "tg:", time.Now, 2*time.Second)
	b := newTestStore(t, srv.addr(), "tg:", time.Now, 2*time.Second)
	set, err := policies.Parse(map[string][]byte{"ask.yaml": []byte("name: ask\nfeature: ask_question\nteams:\n  enabled: [support]\n")})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	va := toggles.NewView(ctx, a, time.Hour, nil)
	vb := toggles.NewView(ctx, b, 10*time.Millisecond, nil)
	if _, err := va.Apply(ctx, set, "alice", []toggles.Change{{Feature: "ask_question", Team: "support", State: toggles.Off}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if on, set := vb.Access("ask_question", "support"); set && !on {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("instance b never applied the toggle")
		}
		time.Sleep(5 * time.Millisecond)
	}

	// 16 admins flip 16 cells at once, each expecting "inherit": every
	// one must land exactly once (retries on version races).
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := []*toggles.View{va, vb}[i%2]
			team := "team" + string(rune('a'+i))
			_, err := v.Apply(ctx, set, "admin", []toggles.Change{{Feature: "ask_question", Team: team, State: toggles.On, Before: toggles.Inherit}})
			var ce *toggles.ConflictError
			if errors.As(err, &ce) {
				err = nil // lost five races in a row: allowed, nothing applied
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	log, err := vb.Log(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := va.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	// Every logged change is in the overlay, and nothing else.
	if got, want := va.Current().Overlay.Len(), len(log); got != want {
		t.Fatalf("overlay has %d entries, log %d", got, want)
	}
	if va.Current().Version != int64(len(log)) {
		t.Fatalf("version %d, log %d", va.Current().Version, len(log))
	}
}
