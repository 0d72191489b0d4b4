package policies

import (
	"fmt"
	"sort"
	"strings"
)

// Specificity bits: a policy that constrains a more significant dimension
// comes first, whatever it says about the less significant ones.
const (
	specAPI uint8 = 1 << iota
	specRoute
	specModel
	specTeam
	specKey
	specFeature
)

// Match dimensions, for trace lines.
const (
	dimFeature = iota
	dimAPI
	dimRoute
	dimModel
	dimKey
	dimTeam
	numDims
)

// Specificity names the dimensions the policy constrains, most
// significant first ("feature+team"), or "none".
func (p *Policy) Specificity() string {
	var parts []string
	for _, x := range []struct {
		bit  uint8
		name string
	}{{specFeature, "feature"}, {specKey, "key"}, {specTeam, "team"}, {specModel, "model"}, {specRoute, "route"}, {specAPI, "api"}} {
		if p.spec&x.bit != 0 {
			parts = append(parts, x.name)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "+")
}

// constrains reports whether a match list restricts anything: it is not
// empty and no entry is the bare "*".
func constrains(list []string) bool {
	for _, x := range list {
		if x == "*" {
			return false
		}
	}
	return len(list) > 0
}

// order sorts the policies into precedence order and builds their trace
// lines. See the package documentation for the rules.
func (s *Set) order() {
	for _, p := range s.policies {
		p.spec = 0
		if p.Feature != "" {
			p.spec |= specFeature
		}
		if constrains(p.Match.Key) {
			p.spec |= specKey
		}
		if constrains(p.Match.Team) {
			p.spec |= specTeam
		}
		if constrains(p.Match.Model) {
			p.spec |= specModel
		}
		if constrains(p.Match.Route) {
			p.spec |= specRoute
		}
		if constrains(p.Match.API) {
			p.spec |= specAPI
		}
	}
	sort.SliceStable(s.policies, func(i, j int) bool { return precedes(s.policies[i], s.policies[j]) })
	for i, p := range s.policies {
		p.order = i
		p.buildTrace()
	}
}

// precedes reports whether a comes before b: non-default policies first,
// then higher priority, then higher specificity, then name.
func precedes(a, b *Policy) bool {
	if a.Default != b.Default {
		return !a.Default
	}
	if a.Priority != b.Priority {
		return a.Priority > b.Priority
	}
	if a.spec != b.spec {
		return a.spec > b.spec
	}
	return a.Name < b.Name
}

func (p *Policy) buildTrace() {
	kind := ""
	if p.Default {
		kind = ", default"
	}
	prefix := fmt.Sprintf("#%d %s (%s, priority %d, specificity %s%s): ", p.order+1, p.Name, p.Source, p.Priority, p.Specificity(), kind)
	p.traceWin = prefix + "matches; selected"
	p.traceShadowed = prefix + "matches, but a policy above it was selected"
	p.traceDefaultUnneeded = prefix + "not needed: a policy above matched"
	p.traceHeaderOnly = prefix + "skipped: the request names a feature (" + FeatureHeader + ") and this policy serves none"
	if p.Feature != "" {
		how := FeatureHeader + ": " + p.Feature
		if len(p.Match.Aliases) > 0 {
			how += ", or model " + strings.Join(p.Match.Aliases, " or ")
		}
		p.traceNoFeature = prefix + "skipped: the request names no feature (this policy serves " + p.Feature + ": send " + how + ")"
		p.traceFail[dimFeature] = prefix + "skipped: the request names another feature (this policy serves " + p.Feature + ")"
	}
	p.traceFail[dimAPI] = prefix + "skipped: api is not " + strings.Join(p.Match.API, " or ")
	p.traceFail[dimRoute] = prefix + "skipped: route is not " + strings.Join(p.Match.Route, " or ")
	p.traceFail[dimModel] = prefix + "skipped: model does not match " + strings.Join(p.Match.Model, " or ")
	p.traceFail[dimKey] = prefix + "skipped: key does not match " + strings.Join(p.Match.Key, " or ")
	p.traceFail[dimTeam] = prefix + "skipped: team does not match " + strings.Join(p.Match.Team, " or ")
}

// Match picks the policy for a request. The first policy in precedence
// order that matches wins; default policies are tried only when no other
// policy matches. See the package documentation for the rules and for
// when a request is refused. Match allocates only the trace slice (and
// the reason on refusals); it is safe for concurrent use.
func (s *Set) Match(in Input) Decision {
	feature := strings.TrimSpace(in.Feature)
	known := true
	if feature != "" {
		feature, known = s.canonicalFeature(feature)
	}
	d := Decision{Trace: make([]string, len(s.policies))}
	var win *Policy
	for i, p := range s.policies {
		if p.Default && win != nil {
			d.Trace[i] = p.traceDefaultUnneeded
			continue
		}
		ok, alias, why := p.matches(&in, feature)
		switch {
		case !ok:
			d.Trace[i] = why
		case win != nil:
			d.Trace[i] = p.traceShadowed
		default:
			win = p
			d.ByAlias = alias
			d.Trace[i] = p.traceWin
		}
	}
	switch {
	case !known:
		d.Denied, d.ByAlias = true, false
		d.Reason = fmt.Sprintf("unknown feature %q: no policy defines it (%s names one of: %s)",
			clip(in.Feature), FeatureHeader, strings.Join(s.features, ", "))
		if len(s.features) == 0 {
			d.Reason = fmt.Sprintf("unknown feature %q: no policy defines any feature", clip(in.Feature))
		}
		return d
	case win == nil && feature != "":
		d.Denied = true
		d.Reason = fmt.Sprintf("feature %q is not available for this request: none of its policies matches (%s)", feature, describeInput(&in))
		return d
	case win == nil:
		d.Denied = true
		d.Reason = fmt.Sprintf("no policy allows this request (%s) and no default policy applies", describeInput(&in))
		return d
	}
	d.Feature = win.Feature
	if win.Feature != "" && in.Overrides != nil && in.Team != "" {
		if on, set := in.Overrides.Access(win.Feature, in.Team); set {
			if !on {
				return denied(d, fmt.Sprintf("feature %q is switched off for team %q in the admin console (overlay on policy %q, %s)",
					win.Feature, clip(in.Team), win.Name, win.Source))
			}
			d.Policy = win
			return d
		}
	}
	if win.Feature != "" {
		switch win.Teams.check(in.Team) {
		case accessDisabled:
			return denied(d, fmt.Sprintf("feature %q is disabled for team %q by policy %q (%s)", win.Feature, clip(in.Team), win.Name, win.Source))
		case accessNotEnabled:
			who := fmt.Sprintf("team %q", clip(in.Team))
			if in.Team == "" {
				who = fmt.Sprintf("key %q, which has no team,", clip(in.Key))
			}
			if len(win.Teams.Enabled) == 0 {
				return denied(d, fmt.Sprintf("feature %q is disabled for every team by policy %q (%s)", win.Feature, win.Name, win.Source))
			}
			return denied(d, fmt.Sprintf("feature %q is not enabled for %s by policy %q (%s); it is enabled for: %s",
				win.Feature, who, win.Name, win.Source, strings.Join(win.Teams.Enabled, ", ")))
		}
	}
	d.Policy = win
	return d
}

func denied(d Decision, reason string) Decision {
	d.Denied, d.Reason = true, reason
	return d
}

// matches reports whether p matches the request; alias is true when the
// feature was selected by a model alias; why is the trace line on a miss.
func (p *Policy) matches(in *Input, feature string) (ok, alias bool, why string) {
	switch {
	case p.Feature != "" && feature != "":
		if feature != p.Feature {
			return false, false, p.traceFail[dimFeature]
		}
	case p.Feature != "":
		if in.Model == "" || !containsString(p.Match.Aliases, in.Model) {
			return false, false, p.traceNoFeature
		}
		alias = true
	case feature != "":
		return false, false, p.traceHeaderOnly
	}
	switch {
	case !matchAny(p.Match.API, in.API):
		return false, false, p.traceFail[dimAPI]
	case !matchAny(p.Match.Route, in.Route):
		return false, false, p.traceFail[dimRoute]
	case !alias && !matchAny(p.Match.Model, in.Model):
		return false, false, p.traceFail[dimModel]
	case !matchAny(p.Match.Key, in.Key):
		return false, false, p.traceFail[dimKey]
	case !matchAny(p.Match.Team, in.Team):
		return false, false, p.traceFail[dimTeam]
	}
	return true, alias, ""
}

func (s *Set) canonicalFeature(f string) (string, bool) {
	for _, x := range s.features {
		if strings.EqualFold(x, f) {
			return x, true
		}
	}
	return f, false
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// matchAny reports whether s matches one of the patterns; no patterns
// match anything.
func matchAny(patterns []string, s string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if glob(p, s) {
			return true
		}
	}
	return false
}

// glob matches s against a pattern where '*' stands for any run of bytes
// (including none); every other byte matches itself.
func glob(pattern, s string) bool {
	px, sx := 0, 0
	starP, starS := -1, 0
	for sx < len(s) {
		switch {
		case px < len(pattern) && pattern[px] == '*':
			starP, starS = px, sx
			px++
		case px < len(pattern) && pattern[px] == s[sx]:
			px++
			sx++
		case starP >= 0:
			starS++
			px, sx = starP+1, starS
		default:
			return false
		}
	}
	for px < len(pattern) && pattern[px] == '*' {
		px++
	}
	return px == len(pattern)
}

func describeInput(in *Input) string {
	var parts []string
	add := func(name, v string) {
		if v != "" {
			parts = append(parts, fmt.Sprintf("%s %q", name, clip(v)))
		}
	}
	add("api", in.API)
	add("route", in.Route)
	add("model", in.Model)
	add("key", in.Key)
	add("team", in.Team)
	if len(parts) == 0 {
		return "no attributes"
	}
	return strings.Join(parts, ", ")
}

// clip shortens client-supplied values quoted in reasons.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
