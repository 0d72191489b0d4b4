// Package citations is the Caddy module llm_gateway.post.citations: it
// checks the [docN] markers of the model's answer against the article
// chunks actually injected into the prompt (grounding.Packed: [docN] is
// Packed.Docs[N-1]), drops invented ones, rewrites the kept ones to a
// format such as "[KA-01234](https://…)", and adds message.context.citations
// the way Azure OpenAI "On Your Data" does. It can also require grounding:
// an answer that cites nothing is flagged or replaced by a refusal.
//
// JSON (inside the gateway's post-processor list, "processor": "citations"):
//
//	{
//	  "processor": "citations",
//	  "format": "[{number}]({url})", // how a kept marker is written; default "[doc{n}]"
//	  "format_no_url": "[{number}]",  // used instead for a doc without a URL; default: format
//	  "context": "cited",             // message.context.citations: cited (default) | all | off
//	  "require": true,                // an answer must cite at least one injected doc
//	  "on_ungrounded": "refuse",      // flag (default) | refuse
//	  "refusal": "I can't answer that from the knowledge base.", // refuse: the answer given instead
//	  "max_hold": 65536               // refuse: bytes of answer held back waiting for a citation
//	}
//
// # Markers
//
// A marker is exactly "[doc" + 1 to 6 ASCII digits + "]", as Azure writes
// them; anything else (such as "[Doc1]", "[doc 1]" or "[doc1, doc2]") is
// left as text. A marker is kept when it names an injected doc by the rule
// of grounding.Packed.Doc (1 ≤ N ≤ len(Docs), no leading zero) and dropped
// otherwise ("invented"); a kept marker that directly follows a kept
// marker for the same doc (nothing in between but dropped markers) is
// dropped too ("[doc1][doc1]" → one citation). Text around a dropped
// marker is left as it is.
//
// # Numbering and format
//
// The format's placeholders are {n}, {doc}, {number} (the article's
// public number, or its id when it has none), {title}, {url}, {id} (the
// article id) and {chunk_id}; "{{" and "}}" are literal braces. With
// context "cited" or "off", {n} is the doc's position in order of first
// citation in the answer: the first doc cited is 1, and
// context.citations[n-1] is that doc, so the default format "[doc{n}]"
// renumbers the markers to match context.citations exactly as Azure's
// contract says ("[docN] refers to citations[N-1]"). With context "all",
// context.citations lists every injected doc in injection order (what
// Azure itself returns) and {n} is the injected number, so markers keep
// their numbers.
//
// # context.citations
//
// Each citation is {"content", "title", "filepath", "url", "chunk_id"} in
// Azure's key order, with null for an empty title, filepath, url or
// chunk_id (as Azure returns unmapped fields). filepath is the article's
// public number (or its id). In a stream, "cited" citations are only known
// at the end: they are sent in the chunk just before the finish chunk
// (post.Stream does this); "all" citations are sent, as Azure does, with
// the first delta that has content. When no doc was injected no citations
// are added.
//
// # Requiring grounding
//
// With require, an answer without a kept marker is ungrounded:
//   - on_ungrounded "flag": the answer is left alone; the Result says
//     Ungrounded (the handler sets the X-Groundgate-Grounding header on
//     non-streamed responses) and the context gets "ungrounded": true
//     (in a stream, in the chunk before the finish chunk).
//   - on_ungrounded "refuse": the answer is replaced by the refusal text.
//     A stream cannot take back what it sent, so the answer is held back
//     until its first kept marker and then released; at most max_hold
//     bytes are held: an answer with no kept marker within its first
//     max_hold bytes of (rewritten) text counts as ungrounded and is
//     refused, streamed or not, so both shapes give the same answer.
//     The context also gets "ungrounded": true.
//
// Caddyfile: see UnmarshalCaddyfile.
package citations

import (
	"fmt"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/groundgate/groundgate/grounding"
	"github.com/groundgate/groundgate/post"
	"github.com/groundgate/groundgate/wire"
)

func init() {
	caddy.RegisterModule(new(Citations))
}

// Context modes.
const (
	ContextCited = "cited"
	ContextAll   = "all"
	ContextOff   = "off"
)

// On-ungrounded actions.
const (
	Flag   = "flag"
	Refuse = "refuse"
)

// Defaults.
const (
	DefaultFormat  = "[doc{n}]"
	DefaultRefusal = "I couldn't find an answer to that in the knowledge base."
	DefaultMaxHold = 64 << 10
)

// maxDigits bounds a marker's number: "[doc" + 6 digits + "]" is the
// longest marker, so at most 10 bytes are ever held back.
const maxDigits = 6

// Citations is the llm_gateway.post.citations module. Its fields have yaml
// tags too, so a policy's post section can be decoded into it
// (policies.RawSection.Decode) and compiled with New.
type Citations struct {
	// Format of a kept marker (see the package doc). Default "[doc{n}]".
	Format string `json:"format,omitempty" yaml:"format"`
	// FormatNoURL replaces Format for a doc without a URL. Default: Format.
	FormatNoURL string `json:"format_no_url,omitempty" yaml:"format_no_url"`
	// Context: which docs message.context.citations lists: "cited"
	// (default; in order of first citation), "all" (every injected doc,
	// as Azure does) or "off" (no context.citations).
	Context string `json:"context,omitempty" yaml:"context"`
	// Require grounding: an answer must cite at least one injected doc.
	Require bool `json:"require,omitempty" yaml:"require"`
	// OnUngrounded: what happens to an answer that cites nothing when
	// Require is set: "flag" (default) or "refuse".
	OnUngrounded string `json:"on_ungrounded,omitempty" yaml:"on_ungrounded"`
	// Refusal is the answer given instead of an ungrounded one ("refuse").
	// Default DefaultRefusal.
	Refusal string `json:"refusal,omitempty" yaml:"refusal"`
	// MaxHold bounds, with "refuse", the bytes of answer held back waiting
	// for the first citation. Default 65536.
	MaxHold int `json:"max_hold,omitempty" yaml:"max_hold"`

	format, formatNoURL format
	refuse              bool
	provisioned         bool
}

// CaddyModule returns the Caddy module information.
func (*Citations) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "llm_gateway.post.citations",
		New: func() caddy.Module { return new(Citations) },
	}
}

// New returns a provisioned and validated copy of cfg (for use outside
// Caddy, e.g. from a policy's post section).
func New(cfg Citations) (*Citations, error) {
	c := cfg
	if err := c.Provision(caddy.Context{}); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Provision sets defaults and compiles the formats.
func (c *Citations) Provision(caddy.Context) error {
	if c.Format == "" {
		c.Format = DefaultFormat
	}
	if c.Context == "" {
		c.Context = ContextCited
	}
	if c.Require && c.OnUngrounded == "" {
		c.OnUngrounded = Flag
	}
	if c.OnUngrounded == Refuse && c.Refusal == "" {
		c.Refusal = DefaultRefusal
	}
	if c.MaxHold == 0 {
		c.MaxHold = DefaultMaxHold
	}
	var err error
	if c.format, err = compileFormat(c.Format); err != nil {
		return fmt.Errorf("citations: %v", err)
	}
	c.formatNoURL = c.format
	if c.FormatNoURL != "" {
		if c.formatNoURL, err = compileFormat(c.FormatNoURL); err != nil {
			return fmt.Errorf("citations: format_no_url: %v", err)
		}
	}
	c.refuse = c.Require && c.OnUngrounded == Refuse
	c.provisioned = true
	return nil
}

// Validate checks the configuration.
func (c *Citations) Validate() error {
	if !c.provisioned {
		return fmt.Errorf("citations: not provisioned")
	}
	switch c.Context {
	case ContextCited, ContextAll, ContextOff:
	default:
		return fmt.Errorf("citations: context %q: want cited, all or off", c.Context)
	}
	switch c.OnUngrounded {
	case "", Flag, Refuse:
	default:
		return fmt.Errorf("citations: on_ungrounded %q: want flag or refuse", c.OnUngrounded)
	}
	if !c.Require && (c.OnUngrounded != "" || c.Refusal != "") {
		return fmt.Errorf("citations: on_ungrounded and refusal need require")
	}
	if c.Refusal != "" && c.OnUngrounded != Refuse {
		return fmt.Errorf("citations: refusal is only used with on_ungrounded refuse")
	}
	if c.MaxHold < 0 {
		return fmt.Errorf("citations: max_hold %d: want >= 0", c.MaxHold)
	}
	if strings.Contains(c.Refusal, "[doc") {
		// The refusal is emitted as is; a marker in it would cite nothing.
		return fmt.Errorf("citations: refusal must not contain [doc markers")
	}
	return nil
}

// NewRewriter implements post.Processor. Every answer gets a rewriter,
// even when no doc was injected: its markers are all invented then.
func (c *Citations) NewRewriter(req *post.Request, res *post.Result) post.Rewriter {
	if res == nil {
		res = new(post.Result)
	}
	r := &rewriter{c: c, docs: req.Docs(), res: res, last: -1, withhold: c.refuse}
	if len(r.docs) > 0 {
		r.num = make([]int32, len(r.docs))
	}
	return r
}

// rewriter is the per-answer state machine; the non-streamed rewrite is
// one Delta of the whole answer plus Finish, so both shapes give the same
// text by construction.
type rewriter struct {
	c    *Citations
	docs []grounding.Doc
	res  *post.Result

	// Marker scanner: st is 0 outside a possible marker, 1..4 after
	// "[", "[d", "[do", "[doc", 5 inside the digits; hold[:nh] is the
	// possible marker prefix seen so far.
	st   uint8
	nh   int
	hold [4 + maxDigits]byte

	num   []int32 // per doc: its number in this answer, 0 until cited
	cited int32   // docs cited so far
	order []int   // docs in order of first citation
	last  int     // doc of the last kept marker if nothing followed it, else -1

	withhold bool   // refuse: hold the answer until the first citation
	pending  []byte // the held answer
	over     bool   // refuse: max_hold exceeded before any citation

	allSent bool   // context "all": citations sent
	out     []byte // text to emit from this call
	ctx     []byte
}

func (r *rewriter) Delta(text string) (string, []byte) {
	if r.st == 0 && !r.withhold && !r.over && strings.IndexByte(text, '[') < 0 {
		// Fast path: no marker can start or continue here.
		if text != "" {
			r.last = -1
		}
		return text, r.allContext(text != "")
	}
	if need := len(text) + len(text)/2 + r.nh + 64; cap(r.out) < need {
		r.out = make([]byte, 0, need) // markers usually grow when rewritten
	}
	r.out = r.out[:0]
	r.feed(text)
	if len(r.out) == 0 {
		return "", nil
	}
	return string(r.out), r.allContext(true)
}

func (r *rewriter) Finish() (string, []byte) {
	r.out = r.out[:0]
	if r.st != 0 {
		r.text(r.hold[:r.nh])
		r.st, r.nh = 0, 0
	}
	ungrounded := r.c.Require && r.cited == 0
	if ungrounded {
		r.res.Ungrounded = true
		if r.c.refuse {
			r.res.Refused = true
			r.out = append(r.out[:0], r.c.Refusal...)
		}
	}
	r.withhold, r.pending = false, nil

	// Context members: citations (unless off, or sent already with the
	// first delta in "all" mode) and the ungrounded flag.
	r.ctx = r.ctx[:0]
	if len(r.docs) > 0 {
		switch r.c.Context {
		case ContextCited:
			r.ctx = slices.Grow(r.ctx, r.citationsSize(r.order))
			r.ctx = append(r.ctx, `{"citations":[`...)
			for _, i := range r.order {
				if len(r.ctx) > len(`{"citations":[`) {
					r.ctx = append(r.ctx, ',')
				}
				r.ctx = appendCitation(r.ctx, &r.docs[i])
			}
			r.ctx = append(r.ctx, ']')
		case ContextAll:
			if !r.allSent {
				r.allSent = true
				r.ctx = r.appendAll(append(r.ctx, '{'))
			}
		}
	}
	if ungrounded {
		if len(r.ctx) == 0 {
			r.ctx = append(r.ctx, '{')
		} else {
			r.ctx = append(r.ctx, ',')
		}
		r.ctx = append(r.ctx, `"ungrounded":true`...)
	}
	var ctx []byte
	if len(r.ctx) > 0 {
		r.ctx = append(r.ctx, '}')
		ctx = r.ctx
	}
	if len(r.out) == 0 {
		return "", ctx
	}
	return string(r.out), ctx
}

// allContext returns, in "all" mode, the citations of every injected doc
// the first time text is emitted (Azure sends context with the first
// delta that has content).
func (r *rewriter) allContext(emitted bool) []byte {
	if !emitted || r.allSent || r.c.Context != ContextAll || len(r.docs) == 0 {
		return nil
	}
	r.allSent = true
	r.ctx = r.appendAll(append(r.ctx[:0], '{'))
	r.ctx = append(r.ctx, '}')
	return r.ctx
}

// citationsSize estimates the bytes of the citations of docs (indexes
// into r.docs; nil: all), so the buffer grows once.
func (r *rewriter) citationsSize(docs []int) int {
	n := 32
	add := func(d *grounding.Doc) {
		c := len(d.Content)
		n += c + c/8 + len(d.Title) + len(d.Number) + len(d.ArticleID) + len(d.URL) + len(d.ChunkID) + 96
	}
	if docs == nil {
		for i := range r.docs {
			add(&r.docs[i])
		}
		return n
	}
	for _, i := range docs {
		add(&r.docs[i])
	}
	return n
}

func (r *rewriter) appendAll(b []byte) []byte {
	b = slices.Grow(b, r.citationsSize(nil))
	b = append(b, `"citations":[`...)
	for i := range r.docs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendCitation(b, &r.docs[i])
	}
	return append(b, ']')
}

// appendCitation writes one Azure citation object.
func appendCitation(b []byte, d *grounding.Doc) []byte {
	filepath := d.Number
	if filepath == "" {
		filepath = d.ArticleID
	}
	b = append(b, `{"content":`...)
	b = wire.AppendString(b, d.Content)
	b = append(b, `,"title":`...)
	b = appendNullable(b, d.Title)
	b = append(b, `,"filepath":`...)
	b = appendNullable(b, filepath)
	b = append(b, `,"url":`...)
	b = appendNullable(b, d.URL)
	b = append(b, `,"chunk_id":`...)
	b = appendNullable(b, d.ChunkID)
	return append(b, '}')
}

func appendNullable(b []byte, s string) []byte {
	if s == "" {
		return append(b, "null"...)
	}
	return wire.AppendString(b, s)
}

// feed scans s, continuing a possible marker held from the previous call.
func (r *rewriter) feed(s string) {
	for i := 0; i < len(s); {
		if r.st == 0 {
			j := strings.IndexByte(s[i:], '[')
			if j < 0 {
				r.textString(s[i:])
				return
			}
			r.textString(s[i : i+j])
			i += j + 1
			r.st, r.hold[0], r.nh = 1, '[', 1
			continue
		}
		c := s[i]
		switch {
		case r.st == 1 && c == 'd', r.st == 2 && c == 'o', r.st == 3 && c == 'c':
			r.hold[r.nh] = c
			r.nh++
			r.st++
			i++
		case (r.st == 4 || r.st == 5) && '0' <= c && c <= '9' && r.nh < len(r.hold):
			r.hold[r.nh] = c
			r.nh++
			r.st = 5
			i++
		case r.st == 5 && c == ']':
			i++
			r.marker(r.hold[4:r.nh])
			r.st, r.nh = 0, 0
		default:
			// Not a marker: what was held is text, and c is looked at
			// again outside a marker (it may be the next '[').
			r.text(r.hold[:r.nh])
			r.st, r.nh = 0, 0
		}
	}
}

// marker handles a complete marker with the given digits.
func (r *rewriter) marker(digits []byte) {
	if r.over {
		return
	}
	i := -1
	if digits[0] != '0' {
		n := 0
		for _, d := range digits {
			n = n*10 + int(d-'0')
		}
		if n <= len(r.docs) {
			i = n - 1
		}
	}
	if i < 0 {
		r.res.Invented++
		return
	}
	if i == r.last {
		r.res.Duplicates++
		return
	}
	if r.num[i] == 0 {
		r.cited++
		r.num[i] = r.cited
		r.order = append(r.order, i)
		r.res.AddCited(i)
	}
	if r.withhold {
		r.withhold = false
		r.out = append(r.out, r.pending...)
		r.pending = nil
	}
	n := int(r.num[i])
	if r.c.Context == ContextAll {
		n = i + 1
	}
	d := &r.docs[i]
	f := r.c.format
	if d.URL == "" {
		f = r.c.formatNoURL
	}
	r.out = f.appendTo(r.out, d, i, n)
	r.last = i
}

func (r *rewriter) text(b []byte) { r.textString(string(b)) }

func (r *rewriter) textString(t string) {
	if t == "" {
		return
	}
	r.last = -1
	if r.over {
		return
	}
	if r.withhold {
		if len(r.pending)+len(t) > r.c.MaxHold {
			r.over, r.pending = true, nil
			return
		}
		r.pending = append(r.pending, t...)
		return
	}
	r.out = append(r.out, t...)
}

// Interface guards.
var (
	_ caddy.Provisioner = (*Citations)(nil)
	_ caddy.Validator   = (*Citations)(nil)
	_ post.Processor    = (*Citations)(nil)
)
