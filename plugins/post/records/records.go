// Package records is the Caddy module llm_gateway.post.records: it finds
// the record numbers the model mentions in its answer (case numbers by
// default; account and knowledge-article numbers on request), looks them
// up in a records source and rewrites each mention that resolves to a
// configured format, typically a link into Dynamics 365:
//
//	CAS-01001-K7M2Q9 → [CAS-01001-K7M2Q9](https://contoso.crm.dynamics.com/main.aspx?etn=incident&id=10464d82-…)
//
// Numbers that do not resolve are left as text; with unknown "flag" they
// are also listed in the message context as "unresolved_records".
//
// JSON (inside the gateway's post-processor list, "processor": "records"):
//
//	{
//	  "processor": "records",
//	  "source": {"source": "records"},   // an llm_gateway.context module implementing grounding.RecordSource; default the embedded records
//	  "formats": {                       // entity → format; default {"incident": "{number}"}
//	    "incident": "[{number}](https://contoso.crm.dynamics.com/main.aspx?etn=incident&id={id})",
//	    "account":  "[{number}](https://contoso.crm.dynamics.com/main.aspx?etn=account&id={id})"
//	  },
//	  "patterns": {"incident": "CAS-#####-@@@@@@"}, // entity → pattern; default the built-in one
//	  "unknown": "flag",                 // text (default) | flag
//	  "timeout": "1s"                    // per lookup; default 1s
//	}
//
// # Mentions
//
// The entities that can be linked, their number columns and built-in
// patterns (those of grounding.KeyKinds) are:
//
//	incident          ticketnumber         CAS-#####-@@@@@@
//	account           accountnumber        ACC-######
//	knowledgearticle  articlepublicnumber  KA-#####
//
// Only the entities given in formats are looked for. A pattern is a
// template, not a regular expression, so that a stream never holds back
// more than MaxPattern bytes: '#' is an ASCII digit, '@' an ASCII letter
// or digit, and any other character (A-Z, 0-9 or '-') stands for itself;
// letters match either case. A pattern starts and ends with a letter,
// digit, '#' or '@'. A mention is a match that is a whole word: neither
// preceded nor followed by an ASCII letter, digit or '_' (as \b in
// grounding's message keys). When two patterns match at the same place,
// the longer match wins (ties: the entity listed first above).
//
// # Formats
//
// Placeholders: {number} (the record's number as stored, e.g.
// CAS-01001-K7M2Q9, whatever case the model wrote it in), {id} (the
// record's primary key), {entity} (its logical name) and {title} (see
// below); "{{" and "}}" are literal braces.
//
// # Access
//
// Lookups use the principal's record scope (post.Request.RecordScope): a
// number outside it is treated exactly as a number that does not exist
// (left as text, listed as unresolved with "flag"), so an answer never
// reveals an out-of-scope record's id, nor that it exists. The module
// puts nothing of a record into the answer but its entity, id and number:
// {title} is filled only for public records (knowledge articles, which
// every scope may see) and is the number for any other record. Nothing
// else of a record (fields, owner, related records) is kept, even in the
// per-answer cache.
//
// # Streams and lookups
//
// Text that may be the start of a mention is held back (at most
// MaxPattern+1 bytes) until the mention is complete or ruled out, so a
// stream's output, concatenated, equals the non-streamed rewrite however
// the answer was split. A mention is looked up as soon as it is complete,
// each distinct number once per answer (at most MaxLookups numbers; later
// ones are left as text). A lookup that fails or times out leaves the
// mention as text (it is not reported as unresolved) and stops further
// lookups for that answer, so a source that is down delays an answer by
// one timeout at most.
//
// Caddyfile: see UnmarshalCaddyfile.
package records

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/groundgate/groundgate/grounding"
	"github.com/groundgate/groundgate/post"

	// The default source, {"source": "records"}.
	_ "github.com/groundgate/groundgate/plugins/context/records"
)

func init() {
	caddy.RegisterModule(new(Records))
}

// Unknown actions.
const (
	UnknownText = "text" // leave unresolved numbers as text (default)
	UnknownFlag = "flag" // also list them in context.unresolved_records
)

// Defaults and limits.
const (
	DefaultTimeout = time.Second
	DefaultFormat  = "{number}"
	// MaxPattern bounds a pattern's length in bytes.
	MaxPattern = 24
	// MaxLookups bounds the distinct numbers looked up for one answer.
	MaxLookups = 64
)

// linkable lists the entities whose numbers can be linked, in order of
// precedence, with their number column and built-in pattern.
var linkable = []struct{ entity, field, pattern string }{
	{grounding.EntityIncident, "ticketnumber", "CAS-#####-@@@@@@"},
	{grounding.EntityAccount, "accountnumber", "ACC-######"},
	{grounding.EntityKnowledgeArticle, "articlepublicnumber", "KA-#####"},
}

// DefaultSource is the source used when none is configured.
var DefaultSource = json.RawMessage(`{"source":"records"}`)

// Records is the llm_gateway.post.records module.
type Records struct {
	// SourceRaw is the records source: an llm_gateway.context module
	// that implements grounding.RecordSource. Default {"source":"records"}.
	SourceRaw json.RawMessage `json:"source,omitempty" caddy:"namespace=llm_gateway.context inline_key=source"`
	// Formats maps an entity (incident, account, knowledgearticle) to the
	// text a resolved mention is rewritten to. Only these entities are
	// looked for. Default {"incident": "{number}"}.
	Formats map[string]string `json:"formats,omitempty"`
	// Patterns overrides the built-in pattern of an entity (see the
	// package doc for the syntax).
	Patterns map[string]string `json:"patterns,omitempty"`
	// Unknown: "text" (default) or "flag".
	Unknown string `json:"unknown,omitempty"`
	// Timeout of one lookup. Default 1s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	src    grounding.RecordSource
	kinds  []kind
	hold   int // longest pattern
	base   context.Context
	logger *zap.Logger
}

// kind is one entity looked for.
type kind struct {
	entity, field string
	pat           string // template, letters upper-cased
	format        format
}

// CaddyModule returns the Caddy module information.
func (*Records) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "llm_gateway.post.records",
		New: func() caddy.Module { return new(Records) },
	}
}

// New returns a provisioned and validated copy of cfg that looks records
// up in src (for use outside Caddy and in tests); cfg.SourceRaw is
// ignored.
func New(cfg Records, src grounding.RecordSource) (*Records, error) {
	if src == nil {
		return nil, fmt.Errorf("records: no source")
	}
	r := cfg
	r.SourceRaw = nil
	r.src = src
	if err := r.setup(context.Background(), zap.NewNop()); err != nil {
		return nil, err
	}
	return &r, r.Validate()
}

// Provision loads the source and compiles formats and patterns.
func (r *Records) Provision(ctx caddy.Context) error {
	if r.SourceRaw == nil {
		r.SourceRaw = DefaultSource
	}
	mod, err := ctx.LoadModule(r, "SourceRaw")
	if err != nil {
		return fmt.Errorf("records: source: %v", err)
	}
	src, ok := mod.(grounding.RecordSource)
	if !ok {
		return fmt.Errorf("records: source: module %T does not look up records (grounding.RecordSource)", mod)
	}
	r.src = src
	return r.setup(ctx, ctx.Logger())
}

func (r *Records) setup(base context.Context, logger *zap.Logger) error {
	r.base, r.logger = base, logger
	if r.Unknown == "" {
		r.Unknown = UnknownText
	}
	if r.Timeout == 0 {
		r.Timeout = caddy.Duration(DefaultTimeout)
	}
	formats := r.Formats
	if len(formats) == 0 {
		formats = map[string]string{grounding.EntityIncident: DefaultFormat}
	}
	for e := range formats {
		if !isLinkable(e) {
			return fmt.Errorf("records: formats: entity %q cannot be linked (want %s)", e, linkableNames())
		}
	}
	for e := range r.Patterns {
		if _, ok := formats[e]; !ok {
			if !isLinkable(e) {
				return fmt.Errorf("records: patterns: entity %q cannot be linked (want %s)", e, linkableNames())
			}
			return fmt.Errorf("records: patterns: entity %q has no format", e)
		}
	}
	r.kinds, r.hold = nil, 0
	for _, l := range linkable {
		fs, ok := formats[l.entity]
		if !ok {
			continue
		}
		f, err := compileFormat(fs)
		if err != nil {
			return fmt.Errorf("records: formats %s: %v", l.entity, err)
		}
		pat := l.pattern
		if p, ok := r.Patterns[l.entity]; ok {
			if pat, err = compilePattern(p); err != nil {
				return fmt.Errorf("records: patterns %s: %v", l.entity, err)
			}
		}
		r.kinds = append(r.kinds, kind{entity: l.entity, field: l.field, pat: pat, format: f})
		r.hold = max(r.hold, len(pat))
	}
	return nil
}

func isLinkable(e string) bool {
	for _, l := range linkable {
		if l.entity == e {
			return true
		}
	}
	return false
}

func linkableNames() string {
	var s []string
	for _, l := range linkable {
		s = append(s, l.entity)
	}
	return strings.Join(s, ", ")
}

// compilePattern checks a pattern template and upper-cases its letters.
func compilePattern(p string) (string, error) {
	if len(p) < 2 || len(p) > MaxPattern {
		return "", fmt.Errorf("pattern %q: want 2 to %d characters", p, MaxPattern)
	}
	p = strings.ToUpper(p)
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c == '#' || c == '@' || c == '-' || isAlnum(c)) {
			return "", fmt.Errorf("pattern %q: character %q: want '#', '@', '-', A-Z or 0-9", p, c)
		}
	}
	if p[0] == '-' || p[len(p)-1] == '-' {
		return "", fmt.Errorf("pattern %q: must start and end with a letter, digit, '#' or '@'", p)
	}
	return p, nil
}

// Validate checks the configuration.
func (r *Records) Validate() error {
	if r.src == nil {
		return fmt.Errorf("records: not provisioned")
	}
	switch r.Unknown {
	case UnknownText, UnknownFlag:
	default:
		return fmt.Errorf("records: unknown %q: want text or flag", r.Unknown)
	}
	if r.Timeout < 0 {
		return fmt.Errorf("records: timeout %v: want > 0", time.Duration(r.Timeout))
	}
	return nil
}

// Entities returns the entities looked for, in order of precedence.
func (r *Records) Entities() []string {
	var s []string
	for _, k := range r.kinds {
		s = append(s, k.entity)
	}
	return s
}

// NewRewriter implements post.Processor.
func (r *Records) NewRewriter(req *post.Request, _ *post.Result) post.Rewriter {
	if len(r.kinds) == 0 {
		return nil
	}
	return &rewriter{r: r, scope: req.RecordScope()}
}

// link is what the rewriter keeps of a resolved record: never more than
// the format may show.
type link struct {
	ok                        bool
	entity, id, number, title string
}

// lookup resolves one number of kind k; err is the source's failure.
// Records outside scope are not found (see "Access" in the package doc).
func (r *Records) lookup(k *kind, value string, scope *grounding.Scope) (link, error) {
	ctx, cancel := context.WithTimeout(r.base, time.Duration(r.Timeout))
	defer cancel()
	recs, _, err := r.src.Lookup(ctx, []grounding.RecordKey{{Entity: k.entity, Field: k.field, Value: value, From: "answer"}}, scope)
	if err != nil {
		return link{}, err
	}
	if err := ctx.Err(); err != nil {
		return link{}, err
	}
	var found []*grounding.Record
	for i := range recs {
		// Allows again: a source that leaks must not leak through links.
		if recs[i].Entity == k.entity && recs[i].ID != "" && scope.Allows(recs[i].Owner) {
			found = append(found, &recs[i])
		}
	}
	if len(found) == 0 {
		return link{}, nil
	}
	sort.SliceStable(found, func(i, j int) bool { return found[i].ID < found[j].ID })
	rec := found[0]
	l := link{ok: true, entity: rec.Entity, id: rec.ID, number: rec.Number}
	if l.number == "" {
		l.number = value
	}
	l.title = l.number
	if rec.Owner.Public && rec.Title != "" {
		l.title = rec.Title
	}
	return l, nil
}

// Interface guards.
var (
	_ caddy.Provisioner = (*Records)(nil)
	_ caddy.Validator   = (*Records)(nil)
	_ post.Processor    = (*Records)(nil)
)
