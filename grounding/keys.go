package grounding

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// KeySpec says where one kind of record key comes from. Exactly one of
// Header, Metadata, User and Message is set.
//
//   - header: x-groundgate-case    (kind: case)
//   - metadata: customer_email     (kind: email)
//   - user: true                   (kind: email)
//   - message: true                (kind: case)
//
// Header values may list several keys separated by commas; a metadata
// value may be a string or an array of strings. Each value from a header,
// metadata or user must match the kind's pattern entirely; the last user
// message is searched for every match of it.
type KeySpec struct {
	Header   string `yaml:"header" json:"header,omitempty"`     // request header name
	Metadata string `yaml:"metadata" json:"metadata,omitempty"` // key in the request's "metadata" object
	User     bool   `yaml:"user" json:"user,omitempty"`         // the request's "user" field
	Message  bool   `yaml:"message" json:"message,omitempty"`   // matches in the last user message
	// Kind is a built-in kind (case, account, email, article) or
	// "<entity>.<column>", e.g. "contact.contactid".
	Kind string `yaml:"kind" json:"kind"`
	// Pattern replaces the kind's pattern (Go regexp syntax). With one
	// capturing group, the group is the key. A custom "<entity>.<column>"
	// kind without a pattern accepts values of [A-Za-z0-9@._+:-] from
	// header, metadata or user, and cannot be used with message.
	Pattern string `yaml:"pattern" json:"pattern,omitempty"`
}

// KeyKind is a built-in kind of record key.
type KeyKind struct {
	Name, Entity, Field string
	Pattern             string // Go regexp, matched case-insensitively
	fold                func(string) string
}

// Built-in kinds. Patterns match case-insensitively; values are
// normalised (numbers upper-cased, emails lower-cased).
var KeyKinds = []KeyKind{
	{Name: "case", Entity: EntityIncident, Field: "ticketnumber", Pattern: `CAS-\d{5}-[A-Z0-9]{6}`, fold: strings.ToUpper},
	{Name: "account", Entity: EntityAccount, Field: "accountnumber", Pattern: `ACC-\d{6}`, fold: strings.ToUpper},
	{Name: "email", Entity: EntityContact, Field: "emailaddress1", Pattern: `[A-Z0-9._%+-]+@[A-Z0-9-]+(?:\.[A-Z0-9-]+)*\.[A-Z]{2,24}`, fold: strings.ToLower},
	{Name: "article", Entity: EntityKnowledgeArticle, Field: "articlepublicnumber", Pattern: `KA-\d{5}`, fold: strings.ToUpper},
}

const (
	// MaxKeys bounds the keys one request yields, over all specs.
	MaxKeys = 16
	// maxValueLen bounds one key value; longer ones are ignored.
	maxValueLen = 256
	// maxScan bounds how much of the last user message is searched.
	maxScan = 64 << 10
)

var plainValue = regexp.MustCompile(`^[A-Za-z0-9@._+:-]{1,256}$`)

// Extractor finds record keys in requests. Build it once (NewExtractor)
// and share it: it is safe for concurrent use.
type Extractor struct {
	specs []compiledSpec
	// lookback > 1 also searches the user messages among the last
	// lookback messages, newest first, with message specs: a case
	// number given turns ago is still the case in play.
	lookback int
}

type compiledSpec struct {
	src           int // srcHeader…
	name          string
	from          string // for RecordKey.From
	entity, field string
	whole         *regexp.Regexp // ^(?:p)$ for header/metadata/user
	find          *regexp.Regexp // \b(?:p)\b for message
	group         bool           // use submatch 1
	fold          func(string) string
}

const (
	srcHeader = iota
	srcMetadata
	srcUser
	srcMessage
)

// NewExtractor compiles specs, reporting the first bad one by index.
func NewExtractor(specs []KeySpec) (*Extractor, error) {
	x := &Extractor{specs: make([]compiledSpec, 0, len(specs))}
	for i, s := range specs {
		c, err := compileSpec(s)
		if err != nil {
			return nil, fmt.Errorf("keys[%d]: %w", i, err)
		}
		x.specs = append(x.specs, c)
	}
	return x, nil
}

func compileSpec(s KeySpec) (compiledSpec, error) {
	var c compiledSpec
	n := 0
	if s.Header != "" {
		n++
		c.src, c.name, c.from = srcHeader, http.CanonicalHeaderKey(s.Header), "header "+strings.ToLower(s.Header)
	}
	if s.Metadata != "" {
		n++
		c.src, c.name, c.from = srcMetadata, s.Metadata, "metadata "+s.Metadata
	}
	if s.User {
		n++
		c.src, c.from = srcUser, "user"
	}
	if s.Message {
		n++
		c.src, c.from = srcMessage, "message"
	}
	if n != 1 {
		return c, fmt.Errorf("give exactly one of header, metadata, user or message (got %d)", n)
	}
	if s.Kind == "" {
		return c, fmt.Errorf("kind is required: one of case, account, email, article or <entity>.<column>")
	}
	pattern := s.Pattern
	var kind *KeyKind
	for i := range KeyKinds {
		if KeyKinds[i].Name == s.Kind {
			kind = &KeyKinds[i]
		}
	}
	if kind != nil {
		c.entity, c.field, c.fold = kind.Entity, kind.Field, kind.fold
		if pattern == "" {
			pattern = "(?i)" + kind.Pattern
		}
	} else {
		ent, col, ok := strings.Cut(s.Kind, ".")
		if !ok || !knownEntity(ent) || !isColumnName(col) {
			return c, fmt.Errorf("unknown kind %q: use case, account, email, article or <entity>.<column> with entity one of %s", s.Kind, strings.Join(KnownEntities, ", "))
		}
		c.entity, c.field, c.fold = ent, col, strings.TrimSpace
	}
	if pattern == "" {
		if c.src == srcMessage {
			return c, fmt.Errorf("kind %q has no built-in pattern: give a pattern to search messages with", s.Kind)
		}
		c.whole = plainValue
		return c, nil
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return c, fmt.Errorf("pattern: %v", err)
	}
	switch re.NumSubexp() {
	case 0:
	case 1:
		c.group = true
	default:
		return c, fmt.Errorf("pattern %q: use at most one capturing group (write (?:…) for the others)", pattern)
	}
	flags := ""
	if strings.HasPrefix(pattern, "(?i)") {
		flags, pattern = "(?i)", pattern[4:]
	}
	if c.src == srcMessage {
		c.find = regexp.MustCompile(flags + `\b(?:` + pattern + `)\b`)
	} else {
		c.whole = regexp.MustCompile(flags + `^(?:` + pattern + `)$`)
	}
	return c, nil
}

func isColumnName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Extract returns the record keys of a chat request: header holds its
// headers, body its JSON (parsed with gjson, never unmarshalled). Keys are
// deduplicated, in spec order, at most MaxKeys.
func (x *Extractor) Extract(header http.Header, body []byte) []RecordKey {
	if x == nil || len(x.specs) == 0 {
		return nil
	}
	var (
		out  []RecordKey
		seen map[string]bool
		root gjson.Result
		have bool
	)
	add := func(c *compiledSpec, v string) bool {
		if len(out) >= MaxKeys {
			return false
		}
		k := RecordKey{Entity: c.entity, Field: c.field, Value: c.fold(v), From: c.from}
		if k.Value == "" {
			return true
		}
		dk := k.dedupeKey()
		if seen == nil {
			seen = make(map[string]bool, 4)
		}
		if !seen[dk] {
			seen[dk] = true
			out = append(out, k)
		}
		return true
	}
	whole := func(c *compiledSpec, v string) bool {
		v = strings.TrimSpace(v)
		if v == "" || len(v) > maxValueLen || !utf8.ValidString(v) {
			return true
		}
		m := c.whole.FindStringSubmatch(v)
		if m == nil {
			return true
		}
		if c.group {
			return add(c, m[1])
		}
		return add(c, m[0])
	}
	for i := range x.specs {
		c := &x.specs[i]
		if c.src != srcHeader && !have {
			if !gjson.ValidBytes(body) {
				continue
			}
			root, have = gjson.ParseBytes(body), true
		}
		switch c.src {
		case srcHeader:
			for _, hv := range header.Values(c.name) {
				for _, v := range strings.Split(hv, ",") {
					if !whole(c, v) {
						return out
					}
				}
			}
		case srcMetadata:
			v := metadataValue(root, c.name)
			switch {
			case v.Type == gjson.String:
				whole(c, v.Str)
			case v.IsArray():
				v.ForEach(func(_, e gjson.Result) bool {
					if e.Type == gjson.String {
						return whole(c, e.Str)
					}
					return true
				})
			}
		case srcUser:
			if v := root.Get("user"); v.Type == gjson.String {
				whole(c, v.Str)
			}
		case srcMessage:
			for i, text := range x.userTexts(root) {
				if len(text) > maxScan {
					text = text[:maxScan]
				}
				from := c.from
				if i > 0 {
					c.from = "earlier message"
				}
				for _, m := range c.find.FindAllStringSubmatch(text, MaxKeys) {
					v := m[0]
					if c.group {
						v = m[1]
					}
					if len(v) > maxValueLen {
						continue
					}
					if !add(c, v) {
						c.from = from
						return out
					}
				}
				c.from = from
			}
		}
	}
	return out
}

// userTexts are the texts message specs search: the last user message,
// and with a lookback the other user messages among the last lookback
// messages, newest first.
func (x *Extractor) userTexts(root gjson.Result) []string {
	if x.lookback <= 1 {
		return []string{LastUserText(root)}
	}
	// The last user message whole (Conversation cuts long ones), then
	// the earlier ones.
	out := []string{LastUserText(root)}
	conv := Conversation(root, x.lookback)
	first := true
	for i := len(conv) - 1; i >= 0; i-- {
		if conv[i].Role != "user" {
			continue
		}
		if first {
			first = false
			continue
		}
		out = append(out, conv[i].Text)
	}
	return out
}

// metadataValue finds metadata[name] without gjson path syntax (names may
// contain dots or wildcards).
func metadataValue(root gjson.Result, name string) gjson.Result {
	var v gjson.Result
	md := root.Get("metadata")
	if !md.IsObject() {
		return v
	}
	md.ForEach(func(k, e gjson.Result) bool {
		if k.Str == name {
			v = e
			return false
		}
		return true
	})
	return v
}

// LastUserText returns the text of the last message with role "user" of a
// parsed chat request: its content string, or its text parts joined by
// newlines. "" when there is none. For a Responses API request (no
// "messages") it reads "input": the input string, or the last user
// message item's text (input_text parts).
func LastUserText(root gjson.Result) string {
	msgs := root.Get("messages")
	if !msgs.Exists() {
		in := root.Get("input")
		if in.Type == gjson.String {
			return in.Str
		}
		msgs = in
	}
	if !msgs.IsArray() {
		return ""
	}
	var last gjson.Result
	msgs.ForEach(func(_, m gjson.Result) bool {
		if m.Get("role").Str == "user" {
			last = m
		}
		return true
	})
	return messageText(last.Get("content"))
}

// Extract compiles specs and extracts keys from one request. Prefer
// NewExtractor once and Extractor.Extract per request.
func Extract(specs []KeySpec, header http.Header, body []byte) ([]RecordKey, error) {
	x, err := NewExtractor(specs)
	if err != nil {
		return nil, err
	}
	return x.Extract(header, body), nil
}
