package grounding

import (
	"context"
	"net/http"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/groundgate/groundgate/policies"
)

// Turn is one user or assistant message of a conversation.
type Turn struct {
	Role string // "user" or "assistant"
	Text string
}

// QueryPart is a piece of a search query with its weight: recent turns
// weigh more than older ones.
type QueryPart struct {
	Text   string
	Weight float64
}

// FieldMatch is a restriction or a boost on an article field, resolved
// for one request: articles whose Field equals one of Values (compared
// case-insensitively).
type FieldMatch struct {
	Field  string // "entity", "title" or a metadata field
	Values []string
	Filter bool // restrict to these articles; false: rank them first
}

// Field names every index knows.
const (
	FieldEntity = "entity"
	FieldTitle  = "title"
)

// Query is the search query of one request, built from the conversation
// as the policy says (see BuildQuery).
type Query struct {
	// Text is the query as one string, for search services that take
	// one: the parts, newest first, at most MaxQueryText bytes.
	Text string
	// Parts are the turns searched, newest first, with their weights.
	Parts []QueryPart
	// Mentions are the messages in which an index looks for the entity
	// names it knows (its entity and title fields), newest first, with
	// recency weights.
	Mentions []QueryPart
	// Entities says what the index does with the entities it finds in
	// Mentions: boost their articles, filter to them, or nothing.
	Entities policies.MatchMode
	// Match are restrictions and boosts from the records in play, the
	// request's metadata and headers.
	Match []FieldMatch
}

// QueryIndex is an Index that searches with a whole conversation-aware
// Query. Indexes that are not QueryIndexes are searched with Query.Text.
type QueryIndex interface {
	Index
	SearchQuery(ctx context.Context, q Query, k int, f Filter) ([]Hit, error)
}

const (
	// MaxQueryText bounds Query.Text.
	MaxQueryText = 1000
	// maxTurnText bounds the text taken from one message.
	maxTurnText = 8 << 10
	// maxMatchValues bounds the values of one FieldMatch.
	maxMatchValues = 16
)

// Conversation returns the user and assistant messages of a parsed chat
// request, oldest first, at most the last max (0: all). Tool, system and
// developer messages are left out; a message's text parts are joined.
func Conversation(root gjson.Result, max int) []Turn {
	msgs := root.Get("messages")
	if !msgs.IsArray() {
		return nil
	}
	var out []Turn
	msgs.ForEach(func(_, m gjson.Result) bool {
		role := m.Get("role").Str
		if role != "user" && role != "assistant" {
			return true
		}
		t := strings.TrimSpace(messageText(m.Get("content")))
		if t == "" {
			return true
		}
		if len(t) > maxTurnText {
			t = strings.ToValidUTF8(t[:maxTurnText], "")
		}
		out = append(out, Turn{Role: role, Text: t})
		return true
	})
	if max > 0 && len(out) > max {
		out = out[len(out)-max:]
	}
	return out
}

// messageText is a content string, or its text parts joined by newlines.
func messageText(c gjson.Result) string {
	if c.Type == gjson.String {
		return c.Str
	}
	if !c.IsArray() {
		return ""
	}
	var b strings.Builder
	c.ForEach(func(_, p gjson.Result) bool {
		if p.Get("type").Str == "text" {
			if t := p.Get("text"); t.Type == gjson.String {
				if b.Len() > 0 {
					b.WriteByte('\n')
				}
				b.WriteString(t.Str)
			}
		}
		return true
	})
	return b.String()
}

// BuildQuery builds the search query of a conversation (oldest first) as
// spec (with defaults filled in) says. The last user message weighs 1;
// each user message before it weighs decay times the one after it; an
// assistant message weighs assistant times the user message after it.
// Mentions are the last lookback messages, weighted the same way.
func BuildQuery(conv []Turn, spec policies.ArticleQuery) Query {
	q := Query{Entities: spec.Entities}
	asst := 0.0
	if spec.Assistant != nil {
		asst = *spec.Assistant
	}
	// Walk back from the newest message.
	w, users := 1.0, 0
	seenUser := false
	var b strings.Builder
	for i := len(conv) - 1; i >= 0; i-- {
		t := conv[i]
		if t.Role == "user" {
			if seenUser {
				w *= spec.Decay
			}
			seenUser = true
		}
		if len(conv)-1-i < spec.Lookback {
			q.Mentions = append(q.Mentions, QueryPart{Text: t.Text, Weight: w})
		}
		if users >= spec.Turns {
			continue
		}
		switch {
		case t.Role == "user":
			users++
			q.Parts = append(q.Parts, QueryPart{Text: t.Text, Weight: w})
		case asst > 0 && seenUser:
			q.Parts = append(q.Parts, QueryPart{Text: t.Text, Weight: w * asst})
		default:
			continue
		}
		if b.Len() < MaxQueryText {
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(t.Text)
		}
	}
	q.Text = cutText(b.String(), MaxQueryText)
	return q
}

// cutText cuts s to at most n bytes, at a space when one is near.
func cutText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	if i := strings.LastIndexByte(s, ' '); i > n/2 {
		s = s[:i]
	}
	return strings.ToValidUTF8(s, "")
}

// matchValues resolves a policy's match entries for one request: values
// from the request's metadata, headers and the records in play. Entries
// with no value are left out.
func matchValues(specs []policies.FieldMatch, root gjson.Result, header http.Header, records []Record) []FieldMatch {
	var out []FieldMatch
	for _, s := range specs {
		var vals []string
		add := func(v string) {
			v = strings.TrimSpace(v)
			if v != "" && len(v) <= maxValueLen && len(vals) < maxMatchValues {
				vals = append(vals, v)
			}
		}
		switch {
		case s.Metadata != "":
			v := metadataValue(root, s.Metadata)
			if v.Type == gjson.String {
				add(v.Str)
			} else if v.IsArray() {
				v.ForEach(func(_, e gjson.Result) bool {
					if e.Type == gjson.String {
						add(e.Str)
					}
					return true
				})
			}
		case s.Header != "":
			for _, hv := range header.Values(s.Header) {
				for _, v := range strings.Split(hv, ",") {
					add(v)
				}
			}
		case s.Record != "":
			ent, col, _ := strings.Cut(s.Record, ".")
			for _, r := range records {
				if r.Entity != ent {
					continue
				}
				if col == "title" && r.Fields[col] == "" {
					add(r.Title)
				} else {
					add(r.Fields[col])
				}
			}
		}
		if len(vals) > 0 {
			out = append(out, FieldMatch{Field: s.Field, Values: vals, Filter: s.Mode == policies.ModeFilter})
		}
	}
	return out
}

// needsRecords reports whether any match entry reads the records in
// play (then the search waits for the lookup).
func needsRecords(specs []policies.FieldMatch) bool {
	for _, s := range specs {
		if s.Record != "" {
			return true
		}
	}
	return false
}
