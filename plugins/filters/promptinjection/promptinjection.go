// Package promptinjection is the Caddy module
// llm_gateway.filters.prompt_injection: a transparent scored detector of
// direct jailbreaks (in user messages) and indirect prompt injections
// (hidden in retrieved records and articles).
//
// How it scores: one Aho–Corasick pass over the folded text counts
// phrases of 17 signal classes (instruction-override phrases, persona
// setups like DAN or "developer mode", demands to never refuse,
// dual-response formats, system-prompt extraction, chat-markup and
// delimiter injection, text addressed to an AI inside data, encoding
// tricks...), plus a byte pass for base64-like runs and invisible
// characters. Each feature is log(1+count); the score is the logistic of
// a weighted sum (weights.go). Every weight is >= 0, so adding text never
// lowers a score: padding an attack with benign text does not hide it.
//
// The weights were fit offline by L2-regularised logistic regression with
// non-negative weights (TestTrain in train_test.go, run with -train) on
// the dev set (shared/data/prompt_injection_dev.csv beside the repository), the in-domain
// customer-service messages and the context records in testdata/; the
// held-out (5-fold) figures are in the package's evaluation test.
//
// JSON (inside the gateway's filter list, "filter": "prompt_injection"):
//
//	{
//	  "filter": "prompt_injection",
//	  "actions":    {"input": "block", "context": "redact"},
//	  "thresholds": {"input": 0.5, "context": 0.4}   // the defaults
//	}
//
// A finding covers the whole text scanned (one message, one record), with
// the score; its category is "jailbreak" at input and output and
// "indirect_attack" at context (Azure's keys). Redact at context replaces
// the record. This filter judges a whole text, so it does not stream: on
// an output stream it makes the gateway hold the answer back until the
// end (it is meant for input and context).
package promptinjection

import (
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"

	"github.com/groundgate/groundgate/filters"
	"github.com/groundgate/groundgate/plugins/filters/internal/textmatch"
)

func init() {
	caddy.RegisterModule(new(PromptInjection))
}

// Kind is the filter kind in findings.
const Kind = "prompt_injection"

// Categories.
const (
	CategoryJailbreak      = "jailbreak"
	CategoryIndirectAttack = "indirect_attack"
)

// DefaultThreshold is the score at or above which a message (input,
// output) is an attack; DefaultContextThreshold for retrieved context,
// where text addressed to an AI has no business at all.
const (
	DefaultThreshold        = 0.5
	DefaultContextThreshold = 0.4
)

// PromptInjection scores texts for prompt injection.
type PromptInjection struct {
	// Action per stage.
	Actions filters.StageActions `json:"actions"`
	// Thresholds per stage, in (0,1]; default DefaultThreshold.
	Thresholds Thresholds `json:"thresholds,omitempty"`
}

// Thresholds is a score threshold per stage; 0 means the default.
type Thresholds struct {
	Input   float64 `json:"input,omitempty"`
	Context float64 `json:"context,omitempty"`
	Output  float64 `json:"output,omitempty"`
}

// For returns the threshold at stage s.
func (t Thresholds) For(s filters.Stage) float64 {
	var v float64
	switch s {
	case filters.StageInput:
		v = t.Input
	case filters.StageContext:
		v = t.Context
	case filters.StageOutput:
		v = t.Output
	}
	if v == 0 {
		if s == filters.StageContext {
			return DefaultContextThreshold
		}
		return DefaultThreshold
	}
	return v
}

// Set sets the threshold at stage s.
func (t *Thresholds) Set(s filters.Stage, v float64) {
	switch s {
	case filters.StageInput:
		t.Input = v
	case filters.StageContext:
		t.Context = v
	case filters.StageOutput:
		t.Output = v
	}
}

// CaddyModule returns the Caddy module information.
func (*PromptInjection) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "llm_gateway.filters.prompt_injection",
		New: func() caddy.Module { return new(PromptInjection) },
	}
}

// Provision implements caddy.Provisioner (nothing to do: the model is
// compiled in).
func (*PromptInjection) Provision(caddy.Context) error { return nil }

// Validate checks the configuration.
func (p *PromptInjection) Validate() error {
	if err := p.Actions.Validate(); err != nil {
		return fmt.Errorf("prompt_injection: %v", err)
	}
	if !p.Actions.Any() {
		return fmt.Errorf("prompt_injection: no stage has an action (set input, context or output)")
	}
	for _, s := range filters.Stages {
		if v := p.Thresholds.For(s); !(v > 0 && v <= 1) {
			return fmt.Errorf("prompt_injection: %s threshold %v out of (0,1]", s, v)
		}
	}
	return nil
}

// Kind implements filters.Filter.
func (*PromptInjection) Kind() string { return Kind }

// Active implements filters.Filter.
func (p *PromptInjection) Active(s filters.Stage) bool { return p.Actions.For(s) != filters.Off }

// Scan implements filters.Filter: one finding for the whole text when its
// score reaches the stage's threshold.
func (p *PromptInjection) Scan(text string, s filters.Stage) []filters.Finding {
	act := p.Actions.For(s)
	if act == filters.Off || text == "" {
		return nil
	}
	sc := Score(text)
	if sc < p.Thresholds.For(s) {
		return nil
	}
	cat := CategoryJailbreak
	if s == filters.StageContext {
		cat = CategoryIndirectAttack
	}
	return []filters.Finding{{Filter: Kind, Category: cat, Start: 0, End: len(text), Score: sc, Action: act}}
}

// Feature indices past the phrase classes.
const (
	fOverridePair     = numClasses + iota // an override verb followed by an instruction noun
	fBase64                               // base64-looking runs of 40+ characters
	fInvisible                            // zero-width, bidi and tag characters
	fRoleUnrestricted                     // role-play and unrestricted/compliance together
	fAIPolicy                             // the AI and its policies, together
	numFeatures
)

// FeatureNames names the features, in order.
var FeatureNames = [numFeatures]string{
	"override_verb", "instr_noun", "override_phrase", "unrestricted", "harm", "persona", "ai_ref",
	"policy_ref", "roleplay", "compliance", "dual", "stay", "sys_extract", "delim", "indirect",
	"imperative", "encoded", "identity", "override_pair", "base64", "invisible", "role_unrestricted", "ai_policy",
}

var matcher = func() *textmatch.Matcher {
	var pats []textmatch.Pattern
	for c, phrases := range lexicon {
		for _, ph := range phrases {
			pats = append(pats, textmatch.Pattern{ID: int32(c), Text: ph})
		}
	}
	m, err := textmatch.Build(pats, true)
	if err != nil {
		panic(err)
	}
	return m
}()

// squeezed finds the longer phrases inside runs of spaced-out letters
// that lost their word gaps ("i g n o r e a l l p r e v i o u s" reads
// "ignoreallprevious"): the phrases without spaces, no word boundaries.
var squeezed = func() *textmatch.Matcher {
	var pats []textmatch.Pattern
	for c, phrases := range lexicon {
		for _, ph := range phrases {
			if sq := textmatch.Squeeze(ph); len(sq) >= 6 {
				pats = append(pats, textmatch.Pattern{ID: int32(c), Text: sq})
			}
		}
	}
	m, err := textmatch.Build(pats, false)
	if err != nil {
		panic(err)
	}
	return m
}()

// Features returns the feature vector of text: log(1+count) per signal.
// Text with spaced-out words ("i g n o r e  a l l") is read both as it is
// and despaced, each signal counting the more of the two.
func Features(text string) [numFeatures]float64 {
	var buf [64]textmatch.Hit
	hits, _ := matcher.Scan(buf[:0], text, 0, true)
	counts := phraseCounts(hits)
	if v, ok := textmatch.Despace(text); ok {
		hits, _ = matcher.Scan(hits[:0], v.Text, 0, true)
		for _, r := range v.Runs {
			run := v.Text[r[0]:r[1]]
			n := len(hits)
			hits, _ = squeezed.Scan(hits, run, 0, true)
			for k := n; k < len(hits); k++ { // offsets in the view, for override pairs
				hits[k].Start += r[0]
				hits[k].End += r[0]
			}
		}
		for i, c := range phraseCounts(hits) {
			counts[i] = max(counts[i], c)
		}
	}
	counts[fBase64], counts[fInvisible] = byteSignals(text)
	counts[fRoleUnrestricted] = min(counts[cRoleplay], counts[cUnrestricted]+counts[cCompliance])
	counts[fAIPolicy] = min(counts[cAIRef], counts[cPolicyRef])
	var x [numFeatures]float64
	for i, c := range counts {
		if c > 0 {
			x[i] = math.Log1p(float64(c))
		}
	}
	// the override verb and instruction noun count only as a pair
	x[cOverrideVerb], x[cInstrNoun] = 0, 0
	return x
}

// insideIdentity reports whether h lies within an identity statement
// ("You are ChatGPT, a large language model trained by OpenAI"), which
// system prompts make and jailbreaks do not need.
func insideIdentity(hits []textmatch.Hit, h textmatch.Hit) bool {
	for _, x := range hits {
		if x.ID == cIdentity && x.Start <= h.Start && h.End <= x.End {
			return true
		}
	}
	return false
}

// phraseCounts counts the phrase classes and the override pairs
// ("ignore ... instructions" within 60 bytes) among hits.
func phraseCounts(hits []textmatch.Hit) [numFeatures]int {
	var counts [numFeatures]int
	for _, h := range hits {
		if h.ID == cAIRef && insideIdentity(hits, h) {
			continue
		}
		counts[h.ID]++
	}
	for _, v := range hits {
		if v.ID != cOverrideVerb {
			continue
		}
		for _, n := range hits {
			if n.ID == cInstrNoun && n.Start >= v.End && n.Start-v.End <= 60 {
				counts[fOverridePair]++
				break
			}
		}
	}
	return counts
}

// byteSignals counts base64-like runs (40+ characters of the base64
// alphabet mixing upper case, lower case and digits) and invisible
// characters.
func byteSignals(text string) (b64, invisible int) {
	run, up, lo, dg := 0, false, false, false
	flush := func() {
		if run >= 40 && up && lo && dg {
			b64++
		}
		run, up, lo, dg = 0, false, false, false
	}
	for i := 0; i < len(text); {
		c := text[i]
		if c < utf8.RuneSelf {
			switch {
			case 'A' <= c && c <= 'Z':
				up = true
				run++
			case 'a' <= c && c <= 'z':
				lo = true
				run++
			case '0' <= c && c <= '9':
				dg = true
				run++
			case c == '+' || c == '/' || c == '=' || c == '-' || c == '_':
				run++
			default:
				flush()
			}
			i++
			continue
		}
		flush()
		r, n := utf8.DecodeRuneInString(text[i:])
		switch {
		case r >= 0x200B && r <= 0x200F, r >= 0x202A && r <= 0x202E, r >= 0x2060 && r <= 0x2064,
			r >= 0x2066 && r <= 0x2069, r == 0xFEFF, r >= 0xE0000 && r <= 0xE007F:
			invisible++
		}
		i += n
	}
	flush()
	return b64, invisible
}

// Score returns the probability-like score of text being a prompt
// injection, in (0,1).
func Score(text string) float64 {
	x := Features(text)
	return score(&weights, bias, &x)
}

func score(w *[numFeatures]float64, b float64, x *[numFeatures]float64) float64 {
	z := b
	for i := range x {
		z += w[i] * x[i]
	}
	return 1 / (1 + math.Exp(-z))
}

// Interface guards.
var (
	_ caddy.Provisioner = (*PromptInjection)(nil)
	_ caddy.Validator   = (*PromptInjection)(nil)
	_ filters.Filter    = (*PromptInjection)(nil)
)
