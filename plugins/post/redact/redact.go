// Package redact is the llm_gateway.post.redact post-processor: PII in
// answers replaced by a label, on whole and streamed answers, with the pii
// filter's detectors (Luhn-checked cards, mod-97 IBANs, SSNs, emails,
// phone numbers, IP addresses) and its bounded hold-back on streams.
package redact

import (
	"errors"
	"fmt"

	"github.com/caddyserver/caddy/v2"

	"github.com/groundgate/groundgate/filters"
	"github.com/groundgate/groundgate/plugins/filters/pii"
	"github.com/groundgate/groundgate/post"
)

func init() {
	caddy.RegisterModule(new(Redact))
}

// Redact is the llm_gateway.post.redact module.
type Redact struct {
	// Entities to redact: email, phone, credit_card, iban, ssn, ipv4,
	// ipv6. Default: all.
	Entities []string `json:"entities,omitempty"`
	// Replacement for a redacted span; {category} is the entity type.
	// Default: [REDACTED:{category}].
	Replacement string `json:"replacement,omitempty"`

	chain *filters.Chain
}

// CaddyModule returns the Caddy module information.
func (*Redact) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "llm_gateway.post.redact",
		New: func() caddy.Module { return new(Redact) },
	}
}

// Provision builds the detectors.
func (r *Redact) Provision(ctx caddy.Context) error {
	p := &pii.PII{Entities: r.Entities, Actions: filters.StageActions{Output: filters.Redact}}
	if err := p.Provision(ctx); err != nil {
		return fmt.Errorf("redact: %w", err)
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("redact: %w", err)
	}
	chain, err := filters.NewChain([]filters.Filter{p}, filters.Options{Replacement: r.Replacement})
	if err != nil {
		return fmt.Errorf("redact: %w", err)
	}
	r.chain = chain
	return nil
}

// Validate checks the configuration.
func (r *Redact) Validate() error {
	if r.chain == nil {
		return errors.New("redact: not provisioned")
	}
	return nil
}

// NewRewriter implements post.Processor.
func (r *Redact) NewRewriter(*post.Request, *post.Result) post.Rewriter {
	return &rewriter{sc: r.chain.NewStreamScanner(filters.StageOutput)}
}

// rewriter holds back only what could still become PII, so the streamed
// output equals the whole answer redacted.
type rewriter struct{ sc *filters.StreamScanner }

func (w *rewriter) Delta(text string) (string, []byte) {
	out, _ := w.sc.Push(text)
	return out, nil
}

func (w *rewriter) Finish() (string, []byte) {
	out, _ := w.sc.Close()
	return out, nil
}

// Interface guards
var (
	_ caddy.Provisioner = (*Redact)(nil)
	_ caddy.Validator   = (*Redact)(nil)
	_ post.Processor    = (*Redact)(nil)
)
