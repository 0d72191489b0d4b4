// Package blocklist is the Caddy module llm_gateway.filters.blocklist: a
// list of terms (thousands are fine) found in one pass with an
// Aho–Corasick automaton, matching regardless of case and diacritics
// (é→e, ß→ss, fullwidth forms), across invisible characters inside words
// and runs of whitespace, and on word boundaries.
//
// JSON (inside the gateway's filter list, "filter": "blocklist"):
//
//	{
//	  "filter": "blocklist",
//	  "name": "competitors",               // list name: finding category and
//	                                       // custom_blocklists details id; default "blocklist"
//	  "terms": ["acme corp", "globex"],    // inline terms
//	  "files": ["/etc/groundgate/competitors.txt"], // one term per line, # comments
//	  "actions": {"input": "annotate", "context": "annotate", "output": "redact"},
//	  "word_boundaries": true              // default true
//	}
//
// A stage left out of actions is off. Caddyfile: see UnmarshalCaddyfile.
package blocklist

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/groundgate/groundgate/filters"
	"github.com/groundgate/groundgate/plugins/filters/internal/textmatch"
)

func init() {
	caddy.RegisterModule(new(Blocklist))
}

// Kind is the filter kind in findings.
const Kind = "blocklist"

// Blocklist finds listed terms.
type Blocklist struct {
	// Name of the list; the category of its findings and the id in
	// Azure's custom_blocklists details. Default "blocklist".
	Name string `json:"name,omitempty"`
	// Terms to find, inline.
	Terms []string `json:"terms,omitempty"`
	// Files of terms, one per line; blank lines and lines starting with
	// '#' are skipped.
	Files []string `json:"files,omitempty"`
	// Action per stage.
	Actions filters.StageActions `json:"actions"`
	// WordBoundaries: a term that starts (ends) with a letter or digit
	// matches only where no letter or digit precedes (follows) it.
	// Default true.
	WordBoundaries *bool `json:"word_boundaries,omitempty"`

	m *textmatch.Matcher
}

// CaddyModule returns the Caddy module information.
func (*Blocklist) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "llm_gateway.filters.blocklist",
		New: func() caddy.Module { return new(Blocklist) },
	}
}

// Provision reads the term files and builds the automaton.
func (b *Blocklist) Provision(caddy.Context) error {
	if b.Name == "" {
		b.Name = "blocklist"
	}
	terms := append([]string(nil), b.Terms...)
	for _, f := range b.Files {
		t, err := readTerms(f)
		if err != nil {
			return err
		}
		terms = append(terms, t...)
	}
	return b.build(terms)
}

// New returns a provisioned blocklist (for use outside Caddy and tests).
func New(name string, terms []string, actions filters.StageActions, wordBoundaries bool) (*Blocklist, error) {
	b := &Blocklist{Name: name, Terms: terms, Actions: actions, WordBoundaries: &wordBoundaries}
	if err := b.Provision(caddy.Context{}); err != nil {
		return nil, err
	}
	return b, b.Validate()
}

func (b *Blocklist) build(terms []string) error {
	pats := make([]textmatch.Pattern, 0, len(terms))
	for _, t := range terms {
		if strings.TrimSpace(t) != "" {
			pats = append(pats, textmatch.Pattern{Text: t})
		}
	}
	wb := b.WordBoundaries == nil || *b.WordBoundaries
	m, err := textmatch.Build(pats, wb)
	if errors.Is(err, textmatch.ErrEmpty) {
		return fmt.Errorf("blocklist %q: no terms", b.Name)
	}
	if err != nil {
		return fmt.Errorf("blocklist %q: %v", b.Name, err)
	}
	b.m = m
	return nil
}

func readTerms(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("blocklist: %v", err)
	}
	defer f.Close()
	var terms []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		terms = append(terms, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("blocklist: %s: %v", path, err)
	}
	return terms, nil
}

// Validate checks the configuration.
func (b *Blocklist) Validate() error {
	if err := b.Actions.Validate(); err != nil {
		return fmt.Errorf("blocklist %q: %v", b.Name, err)
	}
	if !b.Actions.Any() {
		return fmt.Errorf("blocklist %q: no stage has an action (set input, context or output)", b.Name)
	}
	if b.m == nil {
		return fmt.Errorf("blocklist %q: not provisioned", b.Name)
	}
	return nil
}

// Kind implements filters.Filter.
func (*Blocklist) Kind() string { return Kind }

// Active implements filters.Filter.
func (b *Blocklist) Active(s filters.Stage) bool { return b.Actions.For(s) != filters.Off }

// Scan implements filters.Filter. What clients send and retrieved
// context are also read despaced ("k i l l", "k.i.l.l": see
// textmatch.Despace); answers are not, so that a streamed answer and a
// whole one get the same findings.
func (b *Blocklist) Scan(text string, s filters.Stage) []filters.Finding {
	fs, _ := b.ScanStream(text, 0, true, s)
	if s == filters.StageOutput || (len(fs) > 0 && fs[0].Action == filters.Block) {
		return fs
	}
	v, ok := textmatch.Despace(text)
	if !ok {
		return fs
	}
	act := b.Actions.For(s)
	var buf [16]textmatch.Hit
	hits, _ := b.m.Scan(buf[:0], v.Text, 0, true)
	for _, x := range hits {
		st, en := v.Span(x.Start, x.End)
		fs = append(fs, filters.Finding{Filter: Kind, Category: b.Name, Start: st, End: en, Score: 1, Action: act})
	}
	return fs
}

// ScanStream implements filters.StreamFilter.
func (b *Blocklist) ScanStream(text string, from int, final bool, s filters.Stage) ([]filters.Finding, int) {
	act := b.Actions.For(s)
	if act == filters.Off {
		return nil, len(text)
	}
	var buf [16]textmatch.Hit
	hits, h := b.m.Scan(buf[:0], text, from, final)
	if len(hits) == 0 {
		return nil, h
	}
	out := make([]filters.Finding, len(hits))
	for i, x := range hits {
		out[i] = filters.Finding{Filter: Kind, Category: b.Name, Start: x.Start, End: x.End, Score: 1, Action: act}
	}
	return out, h
}

// Window implements filters.StreamFilter: the longest term, in bytes of
// text (a term written with decomposed accents or invisible characters
// inside it holds back more, up to the chain's MaxHold).
func (b *Blocklist) Window() int { return 4*b.m.MaxLen() + 8 }

// Interface guards.
var (
	_ caddy.Provisioner    = (*Blocklist)(nil)
	_ caddy.Validator      = (*Blocklist)(nil)
	_ filters.StreamFilter = (*Blocklist)(nil)
)
