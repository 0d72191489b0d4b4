// Package pii is the Caddy module llm_gateway.filters.pii: personal data
// found by hand-written scanners (no regexp on the hot path) plus custom
// regular expressions, with an action per entity type and stage.
//
// Built-in entity types:
//
//	email        local@domain.tld (RFC lengths: local part ≤ 64, domain ≤ 253)
//	phone        international (+44 20 7946 0958, +1 (415) 555-0100, 0049 30 901820,
//	             +14155550100), North American ((415) 555-0100, 415.555.0100,
//	             1-800-555-0199) and national formats with a trunk 0 (020 7946 0958,
//	             01 42 68 53 00, 06-12345678); 8–15 digits. Plain digit runs
//	             without + are not phones (order numbers); dates are excluded.
//	credit_card  13–19 digits, plain or in groups of 4 (Amex 4-6-5), Luhn-valid,
//	             with a known issuer prefix and length
//	iban         country code, check digits and BBAN of the country's length,
//	             plain or in groups; ISO 7064 mod-97 valid
//	ssn          US social security number ddd-dd-dddd (or spaced); area 000,
//	             666 and 900–999, group 00 and serial 0000 excluded
//	ipv4         dotted quad, each part 0–255 without leading zeros; not part
//	             of a longer dotted number (version strings)
//	ipv6         any RFC 4291 text form, including :: and embedded IPv4
//
// JSON (inside the gateway's filter list, "filter": "pii"):
//
//	{
//	  "filter": "pii",
//	  "entities": ["email", "phone", "credit_card", "iban", "ssn", "ipv4", "ipv6"], // default: all
//	  "actions": {"input": "redact", "context": "annotate", "output": "redact"},   // default per stage
//	  "overrides": {"credit_card": {"input": "block", "output": "block"}},          // per entity type
//	  "custom": [{"name": "employee_id", "pattern": "\\bEMP-\\d{6}\\b",
//	              "actions": {"output": "redact"}}],                               // default: actions
//	  "max_match": 256  // stream window for unbounded custom patterns
//	}
//
// Actions are annotate (alias detect), redact, block or off. An override
// replaces the default actions of its entity type entirely.
package pii

import (
	"fmt"
	"slices"

	"github.com/caddyserver/caddy/v2"

	"github.com/groundgate/groundgate/filters"
	"github.com/groundgate/groundgate/plugins/filters/internal/rx"
)

func init() {
	caddy.RegisterModule(new(PII))
}

// Kind is the filter kind in findings.
const Kind = "pii"

// Entity types (finding categories).
const (
	Email      = "email"
	Phone      = "phone"
	CreditCard = "credit_card"
	IBAN       = "iban"
	SSN        = "ssn"
	IPv4       = "ipv4"
	IPv6       = "ipv6"
)

// entities lists the built-in types in scanning order.
var entities = []struct {
	name string
	scan scanner
	// window: the most bytes held back for the type
	window int
}{
	{Email, scanEmail, 64 + 1 + 254 + 1},
	{Phone, scanPhone, 40},
	{CreditCard, scanCard, maxCardBytes},
	{IBAN, scanIBAN, 34 + 9 + 4},
	{SSN, scanSSN, 14},
	{IPv4, scanIPv4, 17},
	{IPv6, scanIPv6, maxIPv6 + 6},
}

// EntityTypes returns the built-in entity type names.
func EntityTypes() []string {
	out := make([]string, len(entities))
	for i, e := range entities {
		out[i] = e.name
	}
	return out
}

// PII finds personal data.
type PII struct {
	// Entities enabled; default all built-in types.
	Entities []string `json:"entities,omitempty"`
	// Default action per stage.
	Actions filters.StageActions `json:"actions"`
	// Overrides: actions per stage for an entity type (built-in or
	// custom), replacing the default.
	Overrides map[string]filters.StageActions `json:"overrides,omitempty"`
	// Custom patterns, found like built-in types.
	Custom []Custom `json:"custom,omitempty"`
	// MaxMatch is the stream window, in bytes, for custom patterns
	// without a length bound. Default 256.
	MaxMatch int `json:"max_match,omitempty"`

	acts   [7]filters.StageActions // per built-in entity; Off when disabled
	custom []custom
	window int
}

// Custom is a custom entity type.
type Custom struct {
	// Name: the finding category.
	Name string `json:"name"`
	// Pattern in Go RE2 syntax.
	Pattern string `json:"pattern"`
	// Actions per stage; default the filter's.
	Actions *filters.StageActions `json:"actions,omitempty"`
}

type custom struct {
	name string
	re   *rx.Pattern
	act  filters.StageActions
}

// CaddyModule returns the Caddy module information.
func (*PII) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "llm_gateway.filters.pii",
		New: func() caddy.Module { return new(PII) },
	}
}

// Provision resolves the actions and compiles custom patterns.
func (p *PII) Provision(caddy.Context) error {
	if p.MaxMatch == 0 {
		p.MaxMatch = rx.DefaultCap
	}
	if p.MaxMatch < 0 {
		return fmt.Errorf("pii: max_match must be positive")
	}
	enabled := p.Entities
	if len(enabled) == 0 {
		enabled = EntityTypes()
	}
	known := map[string]bool{}
	for _, e := range entities {
		known[e.name] = true
	}
	for _, name := range enabled {
		if !known[name] {
			return fmt.Errorf("pii: unknown entity type %q (want one of %v)", name, EntityTypes())
		}
	}
	p.window = 0
	for i, e := range entities {
		p.acts[i] = filters.StageActions{}
		if !slices.Contains(enabled, e.name) {
			continue
		}
		p.acts[i] = p.Actions
		if o, ok := p.Overrides[e.name]; ok {
			p.acts[i] = o
		}
		if p.acts[i].Any() {
			p.window = max(p.window, e.window)
		}
	}
	p.custom = p.custom[:0]
	for _, c := range p.Custom {
		if c.Name == "" {
			return fmt.Errorf("pii: custom pattern without a name")
		}
		if known[c.Name] {
			return fmt.Errorf("pii: custom pattern %q: name already used", c.Name)
		}
		known[c.Name] = true
		re, err := rx.Compile(c.Pattern)
		if err != nil {
			return fmt.Errorf("pii: custom pattern %q: %v", c.Name, err)
		}
		if re.MatchesEmpty() {
			return fmt.Errorf("pii: custom pattern %q matches the empty string", c.Name)
		}
		act := p.Actions
		if c.Actions != nil {
			act = *c.Actions
		}
		if o, ok := p.Overrides[c.Name]; ok {
			act = o
		}
		p.custom = append(p.custom, custom{c.Name, re, act})
		p.window = max(p.window, re.Window(p.MaxMatch))
	}
	for name := range p.Overrides {
		if !known[name] {
			return fmt.Errorf("pii: override for unknown entity type %q", name)
		}
	}
	return nil
}

// New returns a provisioned filter (for use outside Caddy and tests).
func New(cfg PII) (*PII, error) {
	p := &cfg
	if err := p.Provision(caddy.Context{}); err != nil {
		return nil, err
	}
	return p, p.Validate()
}

// Validate checks the configuration.
func (p *PII) Validate() error {
	active := false
	for i := range p.acts {
		if err := p.acts[i].Validate(); err != nil {
			return fmt.Errorf("pii: %s: %v", entities[i].name, err)
		}
		active = active || p.acts[i].Any()
	}
	for _, c := range p.custom {
		if err := c.act.Validate(); err != nil {
			return fmt.Errorf("pii: %s: %v", c.name, err)
		}
		active = active || c.act.Any()
	}
	if !active {
		return fmt.Errorf("pii: no entity type has an action (set input, context or output)")
	}
	return nil
}

// Kind implements filters.Filter.
func (*PII) Kind() string { return Kind }

// Active implements filters.Filter.
func (p *PII) Active(s filters.Stage) bool {
	for i := range p.acts {
		if p.acts[i].For(s) != filters.Off {
			return true
		}
	}
	for _, c := range p.custom {
		if c.act.For(s) != filters.Off {
			return true
		}
	}
	return false
}

// Scan implements filters.Filter.
func (p *PII) Scan(text string, s filters.Stage) []filters.Finding {
	fs, _ := p.ScanStream(text, 0, true, s)
	return fs
}

// ScanStream implements filters.StreamFilter.
func (p *PII) ScanStream(text string, from int, final bool, s filters.Stage) ([]filters.Finding, int) {
	var out []filters.Finding
	h := len(text)
	for i, e := range entities {
		act := p.acts[i].For(s)
		if act == filters.Off {
			continue
		}
		var eh int
		out, eh = e.scan(out, text, from, final, act)
		h = min(h, eh)
	}
	var buf [8][2]int
	for _, c := range p.custom {
		act := c.act.For(s)
		if act == filters.Off {
			continue
		}
		ms, ch := c.re.Scan(buf[:0], text, from, final, p.MaxMatch)
		h = min(h, ch)
		for _, m := range ms {
			out = append(out, filters.Finding{Filter: Kind, Category: c.name, Start: m[0], End: m[1], Score: 1, Action: act})
		}
	}
	return filters.Settle(out, h)
}

// Window implements filters.StreamFilter: the longest entity (an email
// address: 320 bytes) or custom match. Text is held back only while it
// may still be part of an entity: in prose, usually the last word or
// number.
func (p *PII) Window() int { return p.window }

// Interface guards.
var (
	_ caddy.Provisioner    = (*PII)(nil)
	_ caddy.Validator      = (*PII)(nil)
	_ filters.StreamFilter = (*PII)(nil)
)
