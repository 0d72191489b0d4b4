// Package regex is the Caddy module llm_gateway.filters.regex: named Go
// (RE2) regular expressions, each with an action per stage.
//
// JSON (inside the gateway's filter list, "filter": "regex"):
//
//	{
//	  "filter": "regex",
//	  "actions": {"input": "annotate", "output": "redact"}, // default for every pattern
//	  "patterns": [
//	    {"name": "order_number", "pattern": "\\bORD-\\d{8}\\b"},
//	    {"name": "api_key", "pattern": "sk-[A-Za-z0-9]{32,64}",
//	     "actions": {"input": "block", "output": "block"}}   // replaces the default
//	  ],
//	  "max_match": 256
//	}
//
// Findings have the pattern's name as category; Azure annotations list it
// under custom_blocklists (Azure blocklists hold regular expressions too).
// Matches are those of regexp's FindAllStringIndex (leftmost-first, not
// overlapping; empty matches are ignored and patterns that match the
// empty string are refused).
//
// Streaming holds back the longest possible match of each pattern plus
// one rune. A pattern without a length bound (*, +, {n,}) is held back
// max_match bytes (default 256): in a stream, its matches longer than
// that may be cut short or missed. Prefer bounded repetitions ({1,64}).
package regex

import (
	"fmt"

	"github.com/caddyserver/caddy/v2"

	"github.com/groundgate/groundgate/filters"
	"github.com/groundgate/groundgate/plugins/filters/internal/rx"
)

func init() {
	caddy.RegisterModule(new(Regex))
}

// Kind is the filter kind in findings.
const Kind = "regex"

// Regex finds named patterns.
type Regex struct {
	// Default action per stage, for patterns without their own.
	Actions filters.StageActions `json:"actions"`
	// Patterns to find.
	Patterns []Pattern `json:"patterns"`
	// MaxMatch is the stream window, in bytes, for patterns without a
	// length bound. Default 256.
	MaxMatch int `json:"max_match,omitempty"`

	window int
}

// Pattern is one named regular expression.
type Pattern struct {
	// Name: the finding category; must be unique.
	Name string `json:"name"`
	// Pattern in Go RE2 syntax, e.g. "(?i)\\bproject falcon\\b".
	Pattern string `json:"pattern"`
	// Actions per stage; when nil, the filter's default.
	Actions *filters.StageActions `json:"actions,omitempty"`

	re  *rx.Pattern
	act filters.StageActions
}

// CaddyModule returns the Caddy module information.
func (*Regex) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "llm_gateway.filters.regex",
		New: func() caddy.Module { return new(Regex) },
	}
}

// Provision compiles the patterns.
func (r *Regex) Provision(caddy.Context) error {
	if r.MaxMatch == 0 {
		r.MaxMatch = rx.DefaultCap
	}
	if r.MaxMatch < 0 {
		return fmt.Errorf("regex: max_match must be positive")
	}
	seen := map[string]bool{}
	r.window = 0
	for i := range r.Patterns {
		p := &r.Patterns[i]
		if p.Name == "" {
			return fmt.Errorf("regex: pattern %d has no name", i)
		}
		if seen[p.Name] {
			return fmt.Errorf("regex: duplicate pattern name %q", p.Name)
		}
		seen[p.Name] = true
		re, err := rx.Compile(p.Pattern)
		if err != nil {
			return fmt.Errorf("regex: pattern %q: %v", p.Name, err)
		}
		if re.MatchesEmpty() {
			return fmt.Errorf("regex: pattern %q matches the empty string", p.Name)
		}
		p.re = re
		p.act = r.Actions
		if p.Actions != nil {
			p.act = *p.Actions
		}
		r.window = max(r.window, re.Window(r.MaxMatch))
	}
	return nil
}

// New returns a provisioned filter (for use outside Caddy and tests).
func New(actions filters.StageActions, patterns ...Pattern) (*Regex, error) {
	r := &Regex{Actions: actions, Patterns: patterns}
	if err := r.Provision(caddy.Context{}); err != nil {
		return nil, err
	}
	return r, r.Validate()
}

// Validate checks the configuration.
func (r *Regex) Validate() error {
	if len(r.Patterns) == 0 {
		return fmt.Errorf("regex: no patterns")
	}
	for _, p := range r.Patterns {
		if p.re == nil {
			return fmt.Errorf("regex: not provisioned")
		}
		if err := p.act.Validate(); err != nil {
			return fmt.Errorf("regex: pattern %q: %v", p.Name, err)
		}
		if !p.act.Any() {
			return fmt.Errorf("regex: pattern %q: no stage has an action (set input, context or output)", p.Name)
		}
	}
	return nil
}

// Kind implements filters.Filter.
func (*Regex) Kind() string { return Kind }

// Active implements filters.Filter.
func (r *Regex) Active(s filters.Stage) bool {
	for i := range r.Patterns {
		if r.Patterns[i].act.For(s) != filters.Off {
			return true
		}
	}
	return false
}

// Scan implements filters.Filter.
func (r *Regex) Scan(text string, s filters.Stage) []filters.Finding {
	fs, _ := r.ScanStream(text, 0, true, s)
	return fs
}

// ScanStream implements filters.StreamFilter.
func (r *Regex) ScanStream(text string, from int, final bool, s filters.Stage) ([]filters.Finding, int) {
	var out []filters.Finding
	h := len(text)
	var buf [8][2]int
	for i := range r.Patterns {
		p := &r.Patterns[i]
		act := p.act.For(s)
		if act == filters.Off {
			continue
		}
		ms, ph := p.re.Scan(buf[:0], text, from, final, r.MaxMatch)
		h = min(h, ph)
		for _, m := range ms {
			out = append(out, filters.Finding{Filter: Kind, Category: p.Name, Start: m[0], End: m[1], Score: 1, Action: act})
		}
	}
	// Each pattern resumes where its last match ended: settle on a
	// horizon no reported match runs past.
	return filters.Settle(out, h)
}

// Window implements filters.StreamFilter.
func (r *Regex) Window() int { return r.window }

// Interface guards.
var (
	_ caddy.Provisioner    = (*Regex)(nil)
	_ caddy.Validator      = (*Regex)(nil)
	_ filters.StreamFilter = (*Regex)(nil)
)
