// Package appendtext is the Caddy module llm_gateway.post.append: it
// appends a fixed text (a disclaimer such as "AI-generated content may be
// incorrect.") to every answer. Non-streamed, the text is appended to
// choices[i].message.content; streamed, it is sent as one extra content
// chunk just before the finish chunk (post.Stream does this). Answers
// without text content (tool calls: content null) are left alone.
//
// JSON (inside the gateway's post-processor list, "processor": "append"):
//
//	{
//	  "processor": "append",
//	  "text": "AI-generated content may be incorrect.", // required
//	  "separator": "\n\n"  // put between the answer and the text; default "\n\n"
//	}
//
// The separator is left out when the answer is empty. The text is the
// same for every answer; it is not a template. Caddyfile: see
// UnmarshalCaddyfile.
package appendtext

import (
	"errors"

	"github.com/caddyserver/caddy/v2"

	"github.com/groundgate/groundgate/post"
)

func init() {
	caddy.RegisterModule(new(Append))
}

// DefaultSeparator goes between the answer and the appended text.
const DefaultSeparator = "\n\n"

// Append is the llm_gateway.post.append module. Its fields have yaml tags
// so a policy's post section can be decoded into it.
type Append struct {
	// Text to append. Required.
	Text string `json:"text" yaml:"text"`
	// Separator between the answer and Text; default "\n\n". nil means
	// the default; an empty string means none.
	Separator *string `json:"separator,omitempty" yaml:"separator"`

	sep string
}

// CaddyModule returns the Caddy module information.
func (*Append) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "llm_gateway.post.append",
		New: func() caddy.Module { return new(Append) },
	}
}

// New returns a provisioned and validated Append.
func New(text string, separator *string) (*Append, error) {
	a := &Append{Text: text, Separator: separator}
	if err := a.Provision(caddy.Context{}); err != nil {
		return nil, err
	}
	return a, a.Validate()
}

// Provision sets defaults.
func (a *Append) Provision(caddy.Context) error {
	a.sep = DefaultSeparator
	if a.Separator != nil {
		a.sep = *a.Separator
	}
	return nil
}

// Validate checks the configuration.
func (a *Append) Validate() error {
	if a.Text == "" {
		return errors.New("append: text is required")
	}
	return nil
}

// NewRewriter implements post.Processor.
func (a *Append) NewRewriter(_ *post.Request, res *post.Result) post.Rewriter {
	return &rewriter{a: a, res: res}
}

type rewriter struct {
	a    *Append
	res  *post.Result
	seen bool // the answer has text
	done bool
}

// Delta passes the answer through unchanged.
func (r *rewriter) Delta(text string) (string, []byte) {
	if text != "" {
		r.seen = true
	}
	return text, nil
}

// Finish returns the separator and the text.
func (r *rewriter) Finish() (string, []byte) {
	if r.done {
		return "", nil
	}
	r.done = true
	if r.res != nil {
		r.res.Appended++
	}
	if !r.seen {
		return r.a.Text, nil
	}
	return r.a.sep + r.a.Text, nil
}

// Interface guards.
var (
	_ caddy.Provisioner = (*Append)(nil)
	_ caddy.Validator   = (*Append)(nil)
	_ post.Processor    = (*Append)(nil)
)
