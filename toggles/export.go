package toggles

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/groundgate/groundgate/policies"
)

// Cell is one feature/team pair as the console shows it.
type Cell struct {
	Feature string
	Team    string
	// File says whether the policy files alone let the team use the
	// feature, and FileReason why not.
	File       bool
	FileReason string
	// Overlay is the overlay's state: On, Off or Inherit.
	Overlay string
	// On is what requests get now: the overlay's state, else File's.
	On bool
	// Redundant: the overlay says what the files already say.
	Redundant bool
}

// FileAccess reports whether the policy files alone let team use feature:
// what a chat request naming the feature gets from a key of that team.
func FileAccess(set *policies.Set, feature, team string) (bool, string) {
	d := set.Match(policies.Input{API: policies.APIOpenAI, Route: policies.RouteChat, Team: team, Feature: feature})
	return !d.Denied, d.Reason
}

// Matrix is the features × teams grid with the overlay applied.
func Matrix(set *policies.Set, o *Overlay, teams []string) []Cell {
	var cells []Cell
	for _, f := range set.Features() {
		for _, t := range teams {
			c := Cell{Feature: f, Team: t, Overlay: o.State(f, t)}
			c.File, c.FileReason = FileAccess(set, f, t)
			c.On = c.File
			if c.Overlay != Inherit {
				c.On = c.Overlay == On
				c.Redundant = c.On == c.File
			}
			cells = append(cells, c)
		}
	}
	return cells
}

// Teams is every team the console should show: the keys' teams, those the
// policy files name and those the overlay names, sorted.
func Teams(set *policies.Set, o *Overlay, keyTeams []string) []string {
	seen := map[string]bool{}
	add := func(t string) {
		if t != "" && t != "*" {
			seen[t] = true
		}
	}
	for _, t := range keyTeams {
		add(t)
	}
	if set != nil {
		for _, p := range set.Policies() {
			for _, t := range p.Teams.Enabled {
				add(t)
			}
			for _, t := range p.Teams.Disabled {
				add(t)
			}
		}
	}
	for _, e := range o.Entries() {
		add(e.Team)
	}
	out := make([]string, 0, len(seen))
	for t := range seen {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// FileChange is the edit of one policy file's teams section that makes
// the file say what the overlay says.
type FileChange struct {
	Policy  string
	Source  string
	Line    int
	Feature string
	Before  policies.TeamAccess
	After   policies.TeamAccess
	// YAML is the new teams section, to paste over the old one.
	YAML string
}

// Export turns the overlay into the policy-file changes to commit, and
// notes about entries that change nothing (already what the files say) or
// name a feature no policy defines any more.
func Export(set *policies.Set, o *Overlay) (changes []FileChange, notes []string) {
	byFeature := map[string][]Entry{}
	for _, e := range o.Entries() {
		byFeature[e.Feature] = append(byFeature[e.Feature], e)
	}
	features := set.Features()
	for _, f := range sortedKeys(byFeature) {
		if !slices.Contains(features, f) {
			notes = append(notes, fmt.Sprintf("feature %q: no policy defines it any more; its %d overlay entries are ignored", f, len(byFeature[f])))
			continue
		}
		for _, p := range set.Policies() {
			if p.Feature != f {
				continue
			}
			after := p.Teams
			after.Enabled = cloneNilable(after.Enabled)
			after.Disabled = cloneNilable(after.Disabled)
			changed := false
			for _, e := range byFeature[f] {
				if !servesTeam(p, e.Team) {
					continue
				}
				if after.Allows(e.Team) == e.On {
					continue
				}
				changed = true
				if e.On {
					after.Disabled = remove(after.Disabled, e.Team)
					if after.Enabled != nil && !after.Allows(e.Team) {
						after.Enabled = append(after.Enabled, e.Team)
					}
				} else {
					if after.Enabled == nil || slices.Contains(after.Enabled, "*") || !slices.Contains(after.Enabled, e.Team) {
						after.Disabled = append(after.Disabled, e.Team)
					} else {
						after.Enabled = remove(after.Enabled, e.Team)
					}
				}
			}
			if !changed {
				continue
			}
			changes = append(changes, FileChange{Policy: p.Name, Source: p.Source, Line: p.Line, Feature: f,
				Before: p.Teams, After: after, YAML: teamsYAML(after)})
		}
	}
	for _, e := range o.Entries() {
		if slices.Contains(features, e.Feature) {
			if ok, _ := FileAccess(set, e.Feature, e.Team); ok == e.On {
				notes = append(notes, fmt.Sprintf("%s/%s: the overlay says %s, as the policy files already do; it can be cleared",
					e.Feature, e.Team, map[bool]string{true: On, false: Off}[e.On]))
			}
		}
	}
	return changes, notes
}

// ExportText is the whole export as one YAML document of comments and
// teams sections, file by file.
func ExportText(set *policies.Set, o *Overlay) string {
	changes, notes := Export(set, o)
	var b strings.Builder
	b.WriteString("# Feature toggles made in the admin console, as policy-file changes.\n")
	b.WriteString("# Replace each file's teams section with the one below, commit, reload,\n# then clear the overlay.\n")
	if len(changes) == 0 {
		b.WriteString("# Nothing to change: the overlay says what the policy files say.\n")
	}
	for _, c := range changes {
		fmt.Fprintf(&b, "\n# %s (policy %s, line %d, feature %s)\n%s", c.Source, c.Policy, c.Line, c.Feature, c.YAML)
	}
	for _, n := range notes {
		b.WriteString("# note: " + n + "\n")
	}
	return b.String()
}

func servesTeam(p *policies.Policy, team string) bool {
	if len(p.Match.Team) == 0 {
		return true
	}
	for _, t := range p.Match.Team {
		if t == team || strings.Contains(t, "*") {
			return true
		}
	}
	return false
}

func teamsYAML(t policies.TeamAccess) string {
	var b strings.Builder
	b.WriteString("teams:\n")
	if t.Enabled != nil {
		b.WriteString("  enabled: " + flowList(t.Enabled) + "\n")
	}
	if len(t.Disabled) > 0 {
		b.WriteString("  disabled: " + flowList(t.Disabled) + "\n")
	}
	return b.String()
}

func flowList(list []string) string {
	parts := make([]string, len(list))
	for i, s := range list {
		q, _ := yaml.Marshal(s)
		parts[i] = strings.TrimSpace(string(q))
		if strings.ContainsAny(parts[i], ",[]{}") && !strings.HasPrefix(parts[i], `"`) && !strings.HasPrefix(parts[i], `'`) {
			parts[i] = fmt.Sprintf("%q", s)
		}
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func cloneNilable(s []string) []string {
	if s == nil {
		return nil
	}
	return append([]string{}, s...)
}

func remove(list []string, s string) []string {
	if list == nil {
		return nil
	}
	out := []string{}
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
