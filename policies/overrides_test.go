package policies

import (
	"strings"
	"testing"
)

type overlayMap map[[2]string]bool

func (o overlayMap) Access(feature, team string) (bool, bool) {
	on, ok := o[[2]string{feature, team}]
	return on, ok
}

func TestMatchOverrides(t *testing.T) {
	s := mustParse(t, precedenceFiles)
	ask := Input{API: "openai", Route: "chat.completions", Model: "gpt-4o", Key: "k", Team: "support", Feature: "ask_question"}

	// The file enables support; the overlay switches it off.
	in := ask
	in.Overrides = overlayMap{{"ask_question", "support"}: false}
	d := s.Match(in)
	if !d.Denied || !strings.Contains(d.Reason, "switched off for team \"support\" in the admin console") {
		t.Fatalf("off: %+v", d)
	}
	// The file does not enable billing; the overlay switches it on.
	in = ask
	in.Team = "billing"
	if d := s.Match(in); !d.Denied {
		t.Fatalf("without overlay billing must be refused: %+v", d)
	}
	in.Overrides = overlayMap{{"ask_question", "billing"}: true}
	if d := s.Match(in); d.Denied || d.Policy == nil || d.Policy.Name != "ask" {
		t.Fatalf("on: %+v", d)
	}
	// An overlay entry for another team or feature changes nothing.
	in = ask
	in.Overrides = overlayMap{{"ask_question", "billing"}: false, {"draft_email", "support"}: false}
	if d := s.Match(in); d.Denied {
		t.Fatalf("unrelated overlay: %+v", d)
	}
	// Unknown features stay refused whatever the overlay says.
	in = ask
	in.Feature = "nope"
	in.Overrides = overlayMap{{"nope", "support"}: true}
	if d := s.Match(in); !d.Denied {
		t.Fatalf("unknown feature: %+v", d)
	}
}
