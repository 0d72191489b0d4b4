// Package toggles is the live overlay of copilot feature switches on the
// policy files: an admin switches a feature on or off for a team in the
// console, and every gateway instance sharing the store applies it at
// once, without a reload. The policy files stay the source of truth: the
// overlay only overrides their teams sections, is audited (who, when,
// before and after) and can be exported as the YAML change to commit.
//
// The overlay lives in a Store: in-process memory for one instance, or the
// gateway's Redis store for several. A View caches it for the request
// path (one map lookup per feature request) and refreshes it in the
// background.
package toggles

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
)

// States of one feature/team cell in the overlay.
const (
	On      = "on"      // switched on whatever the policy file says
	Off     = "off"     // switched off whatever the policy file says
	Inherit = "inherit" // no overlay entry: the policy file decides
)

// Overlay is the stored document: feature → team → on.
type Overlay struct {
	Toggles map[string]map[string]bool `json:"toggles"`
}

// State is the overlay's state of one cell: On, Off or Inherit.
func (o *Overlay) State(feature, team string) string {
	if o == nil {
		return Inherit
	}
	on, ok := o.Toggles[feature][team]
	switch {
	case !ok:
		return Inherit
	case on:
		return On
	default:
		return Off
	}
}

// Len is the number of overlay entries.
func (o *Overlay) Len() int {
	n := 0
	if o != nil {
		for _, m := range o.Toggles {
			n += len(m)
		}
	}
	return n
}

// Entries lists the overlay's cells, sorted by feature then team.
func (o *Overlay) Entries() []Entry {
	var out []Entry
	if o == nil {
		return out
	}
	for f, m := range o.Toggles {
		for t, on := range m {
			out = append(out, Entry{Feature: f, Team: t, On: on})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Feature != out[j].Feature {
			return out[i].Feature < out[j].Feature
		}
		return out[i].Team < out[j].Team
	})
	return out
}

// Entry is one overlay cell.
type Entry struct {
	Feature string `json:"feature"`
	Team    string `json:"team"`
	On      bool   `json:"on"`
}

func (o *Overlay) clone() *Overlay {
	c := &Overlay{Toggles: make(map[string]map[string]bool, len(o.Toggles))}
	for f, m := range o.Toggles {
		cm := make(map[string]bool, len(m))
		for t, on := range m {
			cm[t] = on
		}
		c.Toggles[f] = cm
	}
	return c
}

func (o *Overlay) set(feature, team, state string) {
	if state == Inherit {
		delete(o.Toggles[feature], team)
		if len(o.Toggles[feature]) == 0 {
			delete(o.Toggles, feature)
		}
		return
	}
	if o.Toggles[feature] == nil {
		o.Toggles[feature] = map[string]bool{}
	}
	o.Toggles[feature][team] = state == On
}

// decodeOverlay reads a stored document; nil or empty is the empty
// overlay.
func decodeOverlay(doc []byte) (*Overlay, error) {
	o := &Overlay{Toggles: map[string]map[string]bool{}}
	if len(doc) == 0 {
		return o, nil
	}
	if err := json.Unmarshal(doc, o); err != nil {
		return nil, fmt.Errorf("toggles: the stored overlay is not valid: %v", err)
	}
	if o.Toggles == nil {
		o.Toggles = map[string]map[string]bool{}
	}
	return o, nil
}

// Change asks for one cell's new state. Before is the overlay state the
// admin saw (On, Off, Inherit; "" to skip the check): when the store
// holds another, someone changed the cell meanwhile and the whole change
// set is refused as a conflict.
type Change struct {
	Feature string `json:"feature"`
	Team    string `json:"team"`
	State   string `json:"state"`
	Before  string `json:"before,omitempty"`
}

// LogEntry is the audit record of one cell's change.
type LogEntry struct {
	Time    time.Time `json:"time"`
	Who     string    `json:"who"`
	Feature string    `json:"feature"`
	Team    string    `json:"team"`
	Before  string    `json:"before"`
	After   string    `json:"after"`
	Version int64     `json:"version"`
}

var teamRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.@ -]{0,63}$`)

// ValidationError lists every problem of a change set; nothing of it was
// applied.
type ValidationError struct{ Problems []string }

func (e *ValidationError) Error() string {
	return "toggles: nothing was changed: " + strings.Join(e.Problems, "; ")
}

// ConflictError says that cells changed since the admin read them;
// nothing of the change set was applied.
type ConflictError struct {
	Cells []string // "feature/team: you saw X, it is now Y"
}

func (e *ConflictError) Error() string {
	return "toggles: nothing was changed: changed meanwhile by someone else: " + strings.Join(e.Cells, "; ")
}

// validate checks a change set against the features the policy files
// define.
func validate(changes []Change, features []string) error {
	var problems []string
	seen := map[[2]string]bool{}
	if len(changes) == 0 {
		problems = append(problems, "no change given")
	}
	for i, c := range changes {
		where := fmt.Sprintf("change %d (%s/%s)", i+1, c.Feature, c.Team)
		if !contains(features, c.Feature) {
			problems = append(problems, fmt.Sprintf("%s: no policy defines feature %q (features: %s)", where, c.Feature, strings.Join(features, ", ")))
		}
		if !teamRe.MatchString(c.Team) {
			problems = append(problems, fmt.Sprintf("%s: team %q: want 1 to 64 letters, digits, spaces or . _ @ -, starting with a letter or digit", where, c.Team))
		}
		if c.State != On && c.State != Off && c.State != Inherit {
			problems = append(problems, fmt.Sprintf("%s: state %q: want on, off or inherit", where, c.State))
		}
		if c.Before != "" && c.Before != On && c.Before != Off && c.Before != Inherit {
			problems = append(problems, fmt.Sprintf("%s: before %q: want on, off or inherit", where, c.Before))
		}
		k := [2]string{c.Feature, c.Team}
		if seen[k] {
			problems = append(problems, where+": the same cell is changed twice")
		}
		seen[k] = true
	}
	if len(problems) > 0 {
		return &ValidationError{Problems: problems}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
