package policies

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ArticleQuery is context.articles.query: how the search query for
// knowledge articles is built from the conversation, and which articles
// the records and entities in play restrict or favour. Decoded strictly
// with RawSection.Decode (as part of the context section); check it with
// Validate and fill in defaults with WithDefaults.
//
//	query:
//	  turns: 3            # user messages searched, the last one first
//	  decay: 0.5          # each older user message weighs half the next
//	  assistant: 0.3      # weight of an assistant message, relative to the user message after it
//	  lookback: 12        # messages scanned for entity names and record keys
//	  entities: boost     # entity names mentioned: boost (default), filter or off
//	  match:
//	    - {field: product, metadata: product, mode: filter}
//	    - {field: entity, record: account.name}
//	  rewrite:
//	    source: rewriter  # a query-rewriter context source (a small chat deployment)
//	    max_tokens: 48
//	    input_tokens: 600
type ArticleQuery struct {
	// Turns is how many user messages, the last one and those before it,
	// make up the query. Default 3; 1 searches the last message only.
	Turns int `yaml:"turns" json:"turns,omitempty"`
	// Decay is the weight of a user message relative to the one after it
	// (0 < decay <= 1). Default 0.5.
	Decay float64 `yaml:"decay" json:"decay,omitempty"`
	// Assistant is the weight of an assistant message relative to the
	// user message that follows it (0 leaves assistant messages out of
	// the query; they are still scanned for entity names). Default 0.3.
	Assistant *float64 `yaml:"assistant" json:"assistant,omitempty"`
	// Lookback is how many messages, newest first, are scanned for the
	// entity names and record keys the conversation mentions. Default 12.
	Lookback int `yaml:"lookback" json:"lookback,omitempty"`
	// Entities says what entity names mentioned in the conversation (and
	// matched against the index's entity and title fields) do: "boost"
	// (default) ranks their articles first, "filter" searches only their
	// articles when any is mentioned, "off" ignores them.
	Entities MatchMode `yaml:"entities" json:"entities,omitempty"`
	// Match restricts or boosts articles by metadata taken from the
	// records in play, the request's metadata or a header.
	Match []FieldMatch `yaml:"match" json:"match,omitempty"`
	// Rewrite has a small chat deployment rewrite the conversation into a
	// standalone search query. Off when absent.
	Rewrite *QueryRewrite `yaml:"rewrite" json:"rewrite,omitempty"`
}

// MatchMode says whether a match restricts the search or boosts it.
type MatchMode string

// Match modes.
const (
	ModeBoost  MatchMode = "boost"
	ModeFilter MatchMode = "filter"
	ModeOff    MatchMode = "off"
)

// UnmarshalText accepts boost, filter or off, so that a wrong value is
// reported at its own line.
func (m *MatchMode) UnmarshalText(b []byte) error {
	switch v := MatchMode(b); v {
	case ModeBoost, ModeFilter, ModeOff:
		*m = v
		return nil
	}
	return fmt.Errorf("expected boost, filter or off, got %q", string(b))
}

// FieldMatch takes a value from the request or the records in play and
// matches it against an article metadata field (or the entity field).
// Exactly one of Metadata, Header and Record is set.
type FieldMatch struct {
	// Field is the article field compared: "entity", "title" or a
	// metadata field of the index (e.g. product, category).
	Field string `yaml:"field" json:"field"`
	// Metadata is a key of the request's metadata object.
	Metadata string `yaml:"metadata" json:"metadata,omitempty"`
	// Header is a request header.
	Header string `yaml:"header" json:"header,omitempty"`
	// Record is "<entity>.<column>" of a record in play, e.g.
	// incident.productid or account.name; "<entity>.title" is the
	// record's title (name, fullname, subject).
	Record string `yaml:"record" json:"record,omitempty"`
	// Mode is boost (default) or filter.
	Mode MatchMode `yaml:"mode" json:"mode,omitempty"`
}

// QueryRewrite has a chat deployment rewrite the conversation into one
// standalone search query. Its tokens count against the policy's budgets
// like the answer's, and are written to the audit log.
type QueryRewrite struct {
	// Source names the query-rewriter context source of the gateway.
	// Default: the one named "default" or the only one.
	Source string `yaml:"source" json:"source,omitempty"`
	// MaxTokens caps the rewritten query (completion tokens). Default 48.
	MaxTokens int `yaml:"max_tokens" json:"max_tokens,omitempty"`
	// InputTokens caps the conversation sent, oldest messages dropped
	// first. Default 600.
	InputTokens int `yaml:"input_tokens" json:"input_tokens,omitempty"`
	// Keep searches the rewritten query together with the conversation's
	// own query (default true); false searches the rewrite alone.
	Keep *bool `yaml:"keep" json:"keep,omitempty"`
}

// Defaults of a query section.
const (
	DefaultQueryTurns     = 3
	DefaultQueryDecay     = 0.5
	DefaultQueryAssistant = 0.3
	DefaultQueryLookback  = 12
	DefaultRewriteMax     = 48
	DefaultRewriteInput   = 600
	maxQueryTurns         = 50
	maxQueryLookback      = 200
	maxRewriteTokens      = 1024
	maxRewriteInputTokens = 32000
	maxQueryMatches       = 16
)

var matchFieldRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,63}$`)

// Validate reports every problem of the section, each naming its field.
func (q *ArticleQuery) Validate() error {
	if q == nil {
		return nil
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if q.Turns < 0 || q.Turns > maxQueryTurns {
		bad("query.turns must be between 1 and %d, got %d", maxQueryTurns, q.Turns)
	}
	if q.Decay < 0 || q.Decay > 1 {
		bad("query.decay must be in (0, 1], got %v", q.Decay)
	}
	if q.Assistant != nil && (*q.Assistant < 0 || *q.Assistant > 1) {
		bad("query.assistant must be in [0, 1], got %v", *q.Assistant)
	}
	if q.Lookback < 0 || q.Lookback > maxQueryLookback {
		bad("query.lookback must be between 1 and %d, got %d", maxQueryLookback, q.Lookback)
	}
	if len(q.Match) > maxQueryMatches {
		bad("query.match: at most %d entries, got %d", maxQueryMatches, len(q.Match))
	}
	for i, m := range q.Match {
		if err := m.validate(); err != nil {
			bad("query.match[%d]: %v", i, err)
		}
	}
	if r := q.Rewrite; r != nil {
		if r.MaxTokens < 0 || r.MaxTokens > maxRewriteTokens {
			bad("query.rewrite.max_tokens must be between 1 and %d, got %d", maxRewriteTokens, r.MaxTokens)
		}
		if r.InputTokens < 0 || r.InputTokens > maxRewriteInputTokens {
			bad("query.rewrite.input_tokens must be between 1 and %d, got %d", maxRewriteInputTokens, r.InputTokens)
		}
	}
	return errors.Join(errs...)
}

func (m FieldMatch) validate() error {
	if !matchFieldRE.MatchString(m.Field) {
		return fmt.Errorf("field must be entity, title or a metadata field name, got %q", m.Field)
	}
	n := 0
	for _, s := range []string{m.Metadata, m.Header, m.Record} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("give exactly one of metadata, header or record (got %d)", n)
	}
	if m.Record != "" {
		ent, col, ok := strings.Cut(m.Record, ".")
		if !ok || ent == "" || !matchFieldRE.MatchString(col) || strings.Contains(col, ".") {
			return fmt.Errorf("record must be <entity>.<column>, e.g. incident.productid, got %q", m.Record)
		}
	}
	if m.Mode == ModeOff {
		return errors.New("mode must be boost or filter (remove the entry to switch it off)")
	}
	return nil
}

// WithDefaults returns a copy of q (or of an absent section) with the
// defaults filled in.
func (q *ArticleQuery) WithDefaults() ArticleQuery {
	var out ArticleQuery
	if q != nil {
		out = *q
		out.Match = append([]FieldMatch(nil), q.Match...)
	}
	if out.Turns == 0 {
		out.Turns = DefaultQueryTurns
	}
	if out.Decay == 0 {
		out.Decay = DefaultQueryDecay
	}
	if out.Assistant == nil {
		a := DefaultQueryAssistant
		out.Assistant = &a
	}
	if out.Lookback == 0 {
		out.Lookback = DefaultQueryLookback
	}
	if out.Entities == "" {
		out.Entities = ModeBoost
	}
	for i := range out.Match {
		if out.Match[i].Mode == "" {
			out.Match[i].Mode = ModeBoost
		}
	}
	if out.Rewrite != nil {
		r := *out.Rewrite
		if r.MaxTokens == 0 {
			r.MaxTokens = DefaultRewriteMax
		}
		if r.InputTokens == 0 {
			r.InputTokens = DefaultRewriteInput
		}
		if r.Keep == nil {
			t := true
			r.Keep = &t
		}
		out.Rewrite = &r
	}
	return out
}
