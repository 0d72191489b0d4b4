package filters

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// DefaultReplacement is the label a redacted span is replaced with.
// {category} is the finding's category, {filter} the filter's kind.
const DefaultReplacement = "[REDACTED:{category}]"

// DefaultMaxHold is the most bytes a StreamScanner holds back before it
// fails closed (blocks).
const DefaultMaxHold = 64 << 10

// Options configures a Chain.
type Options struct {
	// Replacement for a redacted span; placeholders {category} and
	// {filter}. Default DefaultReplacement.
	Replacement string
	// MaxHold is the most bytes a StreamScanner may hold back; past it the
	// stream is blocked (fail closed). Default DefaultMaxHold.
	MaxHold int
}

// Chain runs an ordered list of filters. Its configuration is immutable
// and it is safe for concurrent use.
type Chain struct {
	filters []Filter
	repl    []replPart
	maxHold int
	memoize bool            // no filter active at the context stage is Remote
	ctxMemo memo            // verdicts at the context stage, by text
	keyed   map[string]bool // kinds of the Keyed filters: findings keyed by category
}

type replPart struct {
	lit string
	ph  byte // 0 literal, 'c' category, 'f' filter
}

// NewChain returns a chain of filters (nil entries are skipped).
func NewChain(fs []Filter, opt Options) (*Chain, error) {
	c := &Chain{maxHold: opt.MaxHold}
	for _, f := range fs {
		if f != nil {
			c.filters = append(c.filters, f)
		}
	}
	c.memoize = true
	for _, f := range c.filters {
		if r, ok := f.(Remote); ok && r.Remote() && f.Active(StageContext) {
			c.memoize = false
		}
		if _, ok := f.(Keyed); ok {
			if c.keyed == nil {
				c.keyed = map[string]bool{}
			}
			c.keyed[f.Kind()] = true
		}
	}
	if c.maxHold == 0 {
		c.maxHold = DefaultMaxHold
	}
	if c.maxHold < 0 {
		return nil, errors.New("filters: negative max hold")
	}
	r := opt.Replacement
	if r == "" {
		r = DefaultReplacement
	}
	for r != "" {
		i := strings.IndexByte(r, '{')
		if i < 0 {
			c.repl = append(c.repl, replPart{lit: r})
			break
		}
		switch {
		case strings.HasPrefix(r[i:], "{category}"):
			c.repl = append(c.repl, replPart{lit: r[:i]}, replPart{ph: 'c'})
			r = r[i+len("{category}"):]
		case strings.HasPrefix(r[i:], "{filter}"):
			c.repl = append(c.repl, replPart{lit: r[:i]}, replPart{ph: 'f'})
			r = r[i+len("{filter}"):]
		default:
			return nil, fmt.Errorf("filters: replacement %q: unknown placeholder at %q (want {category} or {filter})", opt.Replacement, r[i:])
		}
	}
	return c, nil
}

// MustChain is NewChain that panics on error (tests, examples).
func MustChain(fs []Filter, opt Options) *Chain {
	c, err := NewChain(fs, opt)
	if err != nil {
		panic(err)
	}
	return c
}

// Filters returns the chain's filters (do not modify).
func (c *Chain) Filters() []Filter { return c.filters }

// Active reports whether any filter acts at stage s.
func (c *Chain) Active(s Stage) bool {
	for _, f := range c.filters {
		if f.Active(s) {
			return true
		}
	}
	return false
}

// Result is what a Chain made of one text.
type Result struct {
	// Findings of every filter, in chain order.
	Findings []Finding
	// Text is the text with redactions applied; the input itself when
	// nothing was redacted. Not meaningful when Blocked.
	Text string
	// Blocked: some finding's action is Block.
	Blocked bool
	// Redacted: Text differs from the input.
	Redacted bool
}

// Run runs every filter active at stage s over text.
func (c *Chain) Run(text string, s Stage) Result {
	res := Result{Text: text}
	for _, f := range c.filters {
		if !f.Active(s) {
			continue
		}
		fs := f.Scan(text, s)
		if res.Findings == nil {
			res.Findings = fs
		} else {
			res.Findings = append(res.Findings, fs...)
		}
	}
	var redact bool
	for i := range res.Findings {
		switch res.Findings[i].Action {
		case Block:
			res.Blocked = true
		case Redact:
			redact = true
		}
	}
	if res.Blocked || !redact {
		return res
	}
	spans := redactSpans(res.Findings)
	res.Text = string(c.applyRedactions(make([]byte, 0, len(text)+32), text, spans))
	res.Redacted = true
	return res
}

// redactLess orders redactions: by Start, longest first, then filter kind
// and category, so the order (and the label of a merged span: its first
// finding's) depends on the findings only, not on who reported them when.
func redactLess(a, b Finding) int {
	switch {
	case a.Start != b.Start:
		return a.Start - b.Start
	case a.End != b.End:
		return b.End - a.End
	}
	if c := strings.Compare(a.Filter, b.Filter); c != 0 {
		return c
	}
	return strings.Compare(a.Category, b.Category)
}

// redactSpans returns the redact findings sorted by redactLess.
func redactSpans(fs []Finding) []Finding {
	var out []Finding
	for i := range fs {
		if fs[i].Action == Redact && fs[i].End > fs[i].Start {
			out = append(out, fs[i])
		}
	}
	slices.SortFunc(out, redactLess)
	return out
}

// applyRedactions appends text with the sorted spans replaced: spans that
// overlap merge into one, labelled by the first.
func (c *Chain) applyRedactions(dst []byte, text string, spans []Finding) []byte {
	pos := 0
	for i := 0; i < len(spans); {
		sp := spans[i]
		if sp.Start < pos { // inside a previous merged span: cannot happen after merging
			sp.Start = pos
		}
		dst = append(dst, text[pos:sp.Start]...)
		dst = c.appendLabel(dst, sp)
		end := sp.End
		i++
		for i < len(spans) && spans[i].Start < end {
			end = max(end, spans[i].End)
			i++
		}
		pos = end
	}
	return append(dst, text[pos:]...)
}

func (c *Chain) appendLabel(dst []byte, f Finding) []byte {
	for _, p := range c.repl {
		switch p.ph {
		case 'c':
			dst = append(dst, f.Category...)
		case 'f':
			dst = append(dst, f.Filter...)
		default:
			dst = append(dst, p.lit...)
		}
	}
	return dst
}
