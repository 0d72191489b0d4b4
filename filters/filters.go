// Package filters is the host side of Groundgate's content filters: the
// types every filter module (llm_gateway.filters.*) shares, a Chain that
// runs the filters configured for a stage, a StreamScanner that filters a
// streamed answer through a bounded hold-back window, and helpers that
// turn findings into Azure OpenAI's content-filter annotations and its
// 400 content_filter error body.
//
// A filter reports Findings: byte ranges of the text with a category
// ("email", a blocklist's name, "jailbreak"...) and the Action the filter
// is configured to take for that category at that Stage. The Chain merges
// the findings of all its filters: any block finding blocks; redact
// findings are replaced by a label such as "[REDACTED:credit_card]";
// annotate findings are only reported.
//
// Streaming: a filter that implements StreamFilter is scanned
// incrementally; every other filter makes the StreamScanner hold the whole
// answer back until Close (failing closed past Options.MaxHold).
package filters

import (
	"fmt"
	"strings"
)

// Stage is where in the request a filter acts.
type Stage uint8

const (
	// StageInput is the caller's messages.
	StageInput Stage = iota
	// StageContext is retrieved context: CRM records, articles.
	StageContext
	// StageOutput is the model's answer, streamed or not.
	StageOutput

	numStages
)

var stageNames = [numStages]string{"input", "context", "output"}

func (s Stage) String() string {
	if s < numStages {
		return stageNames[s]
	}
	return fmt.Sprintf("Stage(%d)", s)
}

// ParseStage parses "input", "context" or "output".
func ParseStage(s string) (Stage, error) {
	for i, n := range stageNames {
		if s == n {
			return Stage(i), nil
		}
	}
	return 0, fmt.Errorf("unknown stage %q (want input, context or output)", s)
}

// Stages lists every stage, in order.
var Stages = [...]Stage{StageInput, StageContext, StageOutput}

// Action is what a filter does with what it finds. Actions are ordered:
// a stronger action includes the weaker ones (a redacted or blocked
// finding is also annotated).
type Action uint8

const (
	// Off: the filter does not run.
	Off Action = iota
	// Annotate: report the finding (annotations, audit), change nothing.
	Annotate
	// Redact: replace the finding's text by a label.
	Redact
	// Block: refuse the request (input) or end the answer (output).
	Block
)

var actionNames = [...]string{"off", "annotate", "redact", "block"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("Action(%d)", a)
}

// ParseAction parses "off", "annotate" (alias "detect"), "redact" or
// "block".
func ParseAction(s string) (Action, error) {
	switch strings.ToLower(s) {
	case "off", "none":
		return Off, nil
	case "annotate", "detect":
		return Annotate, nil
	case "redact":
		return Redact, nil
	case "block":
		return Block, nil
	}
	return Off, fmt.Errorf("unknown action %q (want annotate, redact, block or off)", s)
}

// MarshalText implements encoding.TextMarshaler.
func (a Action) MarshalText() ([]byte, error) {
	if int(a) >= len(actionNames) {
		return nil, fmt.Errorf("invalid action %d", a)
	}
	return []byte(actionNames[a]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (a *Action) UnmarshalText(b []byte) error {
	v, err := ParseAction(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// StageActions is an action per stage. JSON:
//
//	{"input": "block", "context": "annotate", "output": "redact"}
//
// A stage left out is off.
type StageActions struct {
	Input   Action `json:"input,omitempty"`
	Context Action `json:"context,omitempty"`
	Output  Action `json:"output,omitempty"`
}

// For returns the action at stage s.
func (a StageActions) For(s Stage) Action {
	switch s {
	case StageInput:
		return a.Input
	case StageContext:
		return a.Context
	case StageOutput:
		return a.Output
	}
	return Off
}

// Set sets the action at stage s.
func (a *StageActions) Set(s Stage, act Action) {
	switch s {
	case StageInput:
		a.Input = act
	case StageContext:
		a.Context = act
	case StageOutput:
		a.Output = act
	}
}

// Any reports whether some stage is not off.
func (a StageActions) Any() bool { return a.Input|a.Context|a.Output != Off }

// Validate reports an action value out of range.
func (a StageActions) Validate() error {
	for _, s := range Stages {
		if int(a.For(s)) >= len(actionNames) {
			return fmt.Errorf("%s: invalid action %d", s, a.For(s))
		}
	}
	return nil
}

// Finding is one thing a filter found: the bytes text[Start:End] (for a
// whole-text classifier such as prompt_injection, the whole text), what it
// is, and what the filter's configuration says to do about it at the
// stage scanned.
type Finding struct {
	Filter   string  // the filter's kind: "pii", "blocklist", "regex", "prompt_injection"
	Category string  // "email", "credit_card", a blocklist's name, "jailbreak"...
	Start    int     // byte offset of the first byte
	End      int     // byte offset just past the last byte
	Score    float64 // confidence in [0,1]; 1 for exact matches
	Action   Action  // Annotate, Redact or Block (never Off)
}

// Filter is what every filter module implements. Implementations are
// immutable once provisioned, so Scan is safe for concurrent use; it must
// not retain text nor return strings that alias it.
type Filter interface {
	// Kind names the filter ("pii", "blocklist", "regex",
	// "prompt_injection"); it picks the annotation key (see AnnotationKey).
	Kind() string
	// Active reports whether the filter acts at stage s.
	Active(s Stage) bool
	// Scan returns the findings in text, in no particular order, or nil.
	// Findings whose action at s is Off are not returned.
	Scan(text string, s Stage) []Finding
}

// StreamFilter is a Filter that can scan a text that arrives in pieces,
// with results identical to Scan on the whole text.
type StreamFilter interface {
	Filter
	// ScanStream scans a window of a text that may still grow. text[:from]
	// was already scanned and is left context only (the caller keeps at
	// least MinLeftContext bytes of it, or all of it when it is shorter);
	// final reports that text ends the whole text.
	//
	// It returns every finding Scan of the whole text would return whose
	// Start lies in [from, horizon), with offsets relative to text, and
	// horizon: the position up to which nothing can change whatever text
	// follows. Findings must be complete (their End final). from <=
	// horizon <= len(text); when final, horizon == len(text). The next
	// call passes the returned horizon as from.
	ScanStream(text string, from int, final bool, s Stage) (findings []Finding, horizon int)
	// Window is an upper bound, in bytes, on len(text)-horizon at any call:
	// how much text the filter may hold back.
	Window() int
}

// MinLeftContext is how many bytes before from a StreamScanner keeps for
// ScanStream (less only at the start of the text). A StreamFilter must not
// need to look further back than this to decide a finding at or after from.
const MinLeftContext = 16

// Settle helps a StreamFilter made of several matchers that each resume
// where their last match ended (like regexp's FindAll): given the findings
// of one ScanStream call and the least of the matchers' horizons, it
// lowers the horizon to the start of any finding that runs past it (so the
// next call does not resume inside a match) and drops the findings that
// start at or after the result, which the next call finds again.
func Settle(fs []Finding, horizon int) ([]Finding, int) {
	for changed := true; changed; {
		changed = false
		for i := range fs {
			if fs[i].Start < horizon && fs[i].End > horizon {
				horizon = fs[i].Start
				changed = true
			}
		}
	}
	n := 0
	for _, f := range fs {
		if f.Start < horizon {
			fs[n] = f
			n++
		}
	}
	if n == 0 {
		return nil, horizon
	}
	return fs[:n], horizon
}
