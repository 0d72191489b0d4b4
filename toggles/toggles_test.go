package toggles

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/groundgate/groundgate/policies"
)

const askBody = "name: ask\nfeature: ask_question\nmatch:\n  route: chat.completions\n"
const draftBody = "name: draft\nfeature: draft_email\n"

func parse(t *testing.T, askTeams, draftTeams string) *policies.Set {
	t.Helper()
	s, err := policies.Parse(map[string][]byte{
		"p/ask.yaml":   []byte(askBody + askTeams),
		"p/draft.yaml": []byte(draftBody + draftTeams),
		"p/def.yaml":   []byte("name: general\ndefault: true\n"),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestApplyValidatesWholeSet(t *testing.T) {
	set := parse(t, "teams:\n  enabled: [support]\n", "")
	v := NewView(context.Background(), new(Memory), time.Hour, nil)
	_, err := v.Apply(context.Background(), set, "ops", []Change{
		{Feature: "ask_question", Team: "billing", State: On},
		{Feature: "nope", Team: "billing", State: On},
		{Feature: "draft_email", Team: "", State: "maybe"},
	})
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 3 {
		t.Fatalf("want 3 problems, got %v", err)
	}
	// Nothing applied, the valid change included.
	if on, set := v.Access("ask_question", "billing"); set || on {
		t.Fatal("a refused change set was half-applied")
	}
	if n := v.Current().Overlay.Len(); n != 0 {
		t.Fatalf("overlay has %d entries", n)
	}
}

func TestApplyConflictAndLog(t *testing.T) {
	set := parse(t, "teams:\n  enabled: [support]\n", "")
	store := new(Memory)
	a := NewView(context.Background(), store, time.Hour, nil)
	b := NewView(context.Background(), store, time.Hour, nil)
	ctx := context.Background()
	if _, err := a.Apply(ctx, set, "alice", []Change{{Feature: "ask_question", Team: "support", State: Off, Before: Inherit}}); err != nil {
		t.Fatal(err)
	}
	// b read the overlay before alice's change: its change of the same
	// cell, and the unrelated one with it, are refused.
	_, err := b.Apply(ctx, set, "bob", []Change{
		{Feature: "ask_question", Team: "support", State: On, Before: Inherit},
		{Feature: "draft_email", Team: "billing", State: Off, Before: Inherit},
	})
	var ce *ConflictError
	if !errors.As(err, &ce) || !strings.Contains(ce.Error(), "ask_question/support: you saw inherit, it is now off") {
		t.Fatalf("want conflict, got %v", err)
	}
	if on, set := b.Access("draft_email", "billing"); set || on {
		t.Fatal("conflicting change set half-applied")
	}
	// b reloaded on the conflict and now sees alice's change.
	if on, set := b.Access("ask_question", "support"); !set || on {
		t.Fatalf("b does not see alice's toggle: on=%v set=%v", on, set)
	}
	if _, err := b.Apply(ctx, set, "bob", []Change{{Feature: "ask_question", Team: "support", State: Inherit, Before: Off}}); err != nil {
		t.Fatal(err)
	}
	log, err := a.Log(ctx, 10)
	if err != nil || len(log) != 2 {
		t.Fatalf("log: %v %+v", err, log)
	}
	if log[0].Who != "bob" || log[0].Before != Off || log[0].After != Inherit || log[1].Who != "alice" || log[1].Before != Inherit || log[1].After != Off {
		t.Fatalf("log: %+v", log)
	}
}

func TestViewRefreshesFromStore(t *testing.T) {
	set := parse(t, "", "")
	store := new(Memory)
	a := NewView(context.Background(), store, time.Hour, nil)
	b := NewView(context.Background(), store, 10*time.Millisecond, nil)
	if _, err := a.Apply(context.Background(), set, "alice", []Change{{Feature: "draft_email", Team: "sales", State: Off}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if on, set := b.Access("draft_email", "sales"); set && !on {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the other instance never applied the toggle")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestExportRoundTrip(t *testing.T) {
	cases := []struct{ ask, draft string }{
		{"teams:\n  enabled: [support, billing]\n", ""},
		{"teams:\n  enabled: [\"*\"]\n  disabled: [sales]\n", "teams:\n  enabled: []\n"},
		{"", "teams:\n  disabled: [support]\n"},
	}
	teams := []string{"support", "billing", "sales", "ops"}
	for i, tc := range cases {
		set := parse(t, tc.ask, tc.draft)
		v := NewView(context.Background(), new(Memory), time.Hour, nil)
		var changes []Change
		for j, team := range teams {
			for k, f := range []string{"ask_question", "draft_email"} {
				st := []string{On, Off, Inherit}[(i+j+k)%3]
				changes = append(changes, Change{Feature: f, Team: team, State: st})
			}
		}
		if _, err := v.Apply(context.Background(), set, "ops", changes); err != nil {
			t.Fatal(err)
		}
		o := v.Current().Overlay
		want := map[[2]string]bool{}
		for _, c := range Matrix(set, o, teams) {
			want[[2]string{c.Feature, c.Team}] = c.On
		}
		// Apply the exported teams sections to the files; the files alone
		// must then say what files + overlay said.
		ask, draft := tc.ask, tc.draft
		fc, _ := Export(set, o)
		for _, c := range fc {
			switch c.Source {
			case "p/ask.yaml":
				ask = c.YAML
			case "p/draft.yaml":
				draft = c.YAML
			}
		}
		next := parse(t, ask, draft)
		for k, on := range want {
			if got, _ := FileAccess(next, k[0], k[1]); got != on {
				t.Errorf("case %d: %s/%s: exported files say %v, overlay said %v\nexport:\n%s", i, k[0], k[1], got, on, ExportText(set, o))
			}
		}
	}
}
