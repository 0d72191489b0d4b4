package policies

import (
	"errors"

	"gopkg.in/yaml.v3"
)

// Input is what the matcher knows about a request.
type Input struct {
	API     string // "openai" (/v1/...), "azure" (/openai/deployments/{d}/...), "azure_v1" (/openai/v1/...)
	Route   string // "chat.completions", "responses" or "embeddings"
	Model   string // the model alias or deployment name the client asked for
	Key     string // principal (client key) name
	Team    string // principal's team
	Feature string // value of x-groundgate-feature, "" if absent
	// Overrides, when set, switches features on or off per team over
	// what the policy files say (the admin console's toggles).
	Overrides Overrides
}

// Overrides is a live overlay on the policy files' team access. Access
// reports whether feature is switched on for team, and set=false when the
// overlay says nothing (the policy file decides). It must be safe for
// concurrent use and fast: Match calls it once per feature request.
type Overrides interface {
	Access(feature, team string) (on, set bool)
}

// FeatureHeader is the request header that names a copilot feature.
const FeatureHeader = "x-groundgate-feature"

// The API shapes and routes a policy may match (Input.API, Input.Route).
const (
	APIOpenAI  = "openai"
	APIAzure   = "azure"
	APIAzureV1 = "azure_v1"

	RouteChat       = "chat.completions"
	RouteEmbeddings = "embeddings"
	RouteResponses  = "responses"
)

var (
	knownAPIs   = []string{APIOpenAI, APIAzure, APIAzureV1}
	knownRoutes = []string{RouteChat, RouteEmbeddings, RouteResponses}
)

// Decision is the outcome of Set.Match.
type Decision struct {
	Policy *Policy // nil when refused
	Denied bool    // true → caller answers 403 with Reason
	// Reason is a human message saying why the request was refused, e.g.
	// `feature "draft_email" is disabled for team "billing" by policy
	// "draft-email" (policies/draft_email.yaml)`. "" when allowed.
	Reason string
	// Feature is the copilot feature in effect ("" for none), whether the
	// request named it by header or by model alias.
	Feature string
	// ByAlias is true when the feature was selected by a model alias
	// (match.aliases) rather than the feature header. The caller then
	// sends the pool's own model/deployment upstream, not the alias.
	ByAlias bool
	// Trace says, for every policy in precedence order, why it matched
	// or not; for the explain/dry-run endpoint. Its strings are built at
	// load, so Match does not format per request.
	Trace []string
}

// Policy is one compiled policy. Policies are immutable once loaded;
// never modify one that a Set returned.
type Policy struct {
	Name        string
	Description string
	Source      string // file name
	Line        int    // line of the policy in Source (1 for a one-policy file)
	Hash        string // sha256 of the file content, hex
	Priority    int
	Default     bool   // matches anything nothing else matched
	Feature     string // "" when the policy is not a copilot feature
	Pool        string // upstream pool name ("" = the gateway's default)
	Match       Match  // the match spec as parsed
	Meta        *MetaPrompt
	Vars        map[string]string
	Teams       TeamAccess // enabled/disabled teams for the feature

	// Context, Budgets, Filters and Post are switched on here and
	// decoded later, strictly, by their owners (RawSection.Decode).
	Context, Budgets, Filters, Post RawSection
	// Cache switches on the response cache for the policy.
	Cache RawSection
	// Tracing says what the policy's requests put in OpenTelemetry spans.
	Tracing RawSection

	nameLine, aliasLine int // for cross-file errors

	spec  uint8 // specificity bits, see spec* constants
	order int   // index in precedence order

	// Trace lines, built at load.
	traceWin, traceShadowed, traceDefaultUnneeded, traceHeaderOnly string
	traceFail                                                      [numDims]string
	traceNoFeature                                                 string
}

// Match is a policy's match spec. Every list is a set of alternatives;
// an empty list matches anything; "*" inside a pattern matches any run of
// characters. All given dimensions must match.
type Match struct {
	// API shapes: "openai", "azure", "azure_v1".
	API []string `yaml:"api"`
	// Routes: "chat.completions", "responses", "embeddings".
	Route []string `yaml:"route"`
	// Model aliases or Azure deployment names the client asks for.
	Model []string `yaml:"model"`
	// Key (principal) names.
	Key []string `yaml:"key"`
	// Teams.
	Team []string `yaml:"team"`
	// Aliases are model names that select this policy's feature when the
	// request carries no feature header (feature policies only; literal
	// names, no "*").
	Aliases []string `yaml:"aliases"`
}

// TeamAccess says which teams may use a copilot feature.
//
//   - no teams section (both nil): every team may.
//   - enabled: only the teams listed ("*" = every team); enabled: []
//     switches the feature off for everyone.
//   - disabled: these teams may not, whatever enabled says.
type TeamAccess struct {
	Enabled  []string `yaml:"enabled"`
	Disabled []string `yaml:"disabled"`
}

// Allows reports whether team may use the feature.
func (t TeamAccess) Allows(team string) bool {
	return t.check(team) == accessOK
}

type access uint8

const (
	accessOK access = iota
	accessDisabled
	accessNotEnabled
)

func (t TeamAccess) check(team string) access {
	for _, d := range t.Disabled {
		if d == team {
			return accessDisabled
		}
	}
	if t.Enabled == nil {
		return accessOK
	}
	for _, e := range t.Enabled {
		if e == team || e == "*" {
			return accessOK
		}
	}
	return accessNotEnabled
}

// RawSection is a policy section whose mechanics belong to another part of
// the gateway (context sources, budgets, filters, post-processors). Load
// only checks that it is a mapping or a list; its owner decodes it with
// Decode, which is as strict as the policy loader and reports file:line.
type RawSection struct {
	Node *yaml.Node // nil when the section is absent
	File string     // policy file name
	Line int        // line of the section's value
	Path string     // field path, e.g. "policy.filters"
}

// IsZero reports whether the section is absent.
func (r RawSection) IsZero() bool { return r.Node == nil }

// Decode decodes the section into v (a pointer) strictly: unknown fields,
// duplicate keys, wrong types and nulls are errors (an ErrorList) naming
// file, line and field path, exactly like the policy loader's. Struct
// fields are named by their yaml tags. An absent section leaves v alone.
func (r RawSection) Decode(v any) error {
	if r.Node == nil {
		return nil
	}
	e := &errs{file: r.File}
	if err := decodeInto(r.Node, v, r.Path, e); err != nil {
		return err
	}
	if len(e.list) > 0 {
		return e.list
	}
	return nil
}

var errNotPointer = errors.New("policies: RawSection.Decode needs a non-nil pointer")
