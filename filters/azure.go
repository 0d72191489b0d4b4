package filters

import (
	"slices"

	"github.com/groundgate/groundgate/wire"
)

// Azure OpenAI annotates every prompt (prompt_filter_results[].
// content_filter_results) and every choice (choices[].
// content_filter_results) with one member per filter category. Groundgate
// adds its own findings there, under the keys Azure-aware clients parse:
//
//	jailbreak          {"filtered":bool,"detected":bool}   prompt_injection at input (and output)
//	indirect_attack    {"filtered":bool,"detected":bool}   prompt_injection at context
//	custom_blocklists  {"filtered":bool,"details":[{"filtered":bool,"id":"<name>"}]}
//	                                                     blocklist (id: the list's name) and
//	                                                     regex (id: the pattern's name)
//	pii                {"filtered":bool,"detected":bool}   pii (Groundgate's key; Azure has none)
//	hate, self_harm,   {"filtered":bool,"severity":"safe"|"low"|"medium"|"high"}
//	sexual, violence                                       azure_content_safety (Azure's own categories)
//
// A filter that reports under keys of its own (azure_content_safety: one
// per category) implements Keyed.
//
// The shapes are Azure's (reference/wire-formats.md §1.5; custom_blocklists
// as in the use-blocklists docs). "detected" is true when the category
// found anything, "filtered" when something was redacted or blocked.

// Annotation keys.
const (
	KeyJailbreak        = "jailbreak"
	KeyIndirectAttack   = "indirect_attack"
	KeyCustomBlocklists = "custom_blocklists"
	KeyPII              = "pii"
)

// Severity keys: Azure's harm categories, in the severity shape.
const (
	KeyHate     = "hate"
	KeySelfHarm = "self_harm"
	KeySexual   = "sexual"
	KeyViolence = "violence"
)

// Keyed is a Filter whose findings are reported under their category
// rather than under one key for the filter's kind.
type Keyed interface {
	Filter
	// AnnotationKeys returns the keys the filter reports under at stage s
	// (each present even when nothing was found). Finding categories are
	// keys.
	AnnotationKeys(s Stage) []string
}

// findingKey returns the key finding f is reported under at stage s: its
// category when a Keyed filter of the chain made it.
func (c *Chain) findingKey(f *Finding, s Stage) string {
	if c.keyed[f.Filter] {
		return f.Category
	}
	return AnnotationKey(f.Filter, s)
}

// severityKey reports whether key has Azure's severity shape.
func severityKey(key string) bool {
	switch key {
	case KeyHate, KeySelfHarm, KeySexual, KeyViolence:
		return true
	}
	return false
}

// SeverityName is Azure's name of a finding's score on the 0-7 severity
// scale (score = severity/6 clipped to 1): safe, low, medium or high.
func SeverityName(score float64) string {
	switch sev := score * 6; {
	case sev < 0.5:
		return "safe"
	case sev < 2.5:
		return "low"
	case sev < 4.5:
		return "medium"
	}
	return "high"
}

// FinishReasonContentFilter is the finish_reason of an answer cut by a
// filter (reference/wire-formats.md §1.7).
const FinishReasonContentFilter = "content_filter"

// PromptFilteredMessage is the message of Azure's 400 content_filter error.
const PromptFilteredMessage = "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. " +
	"Please modify your prompt and retry. To learn more about our content filtering policies please read our " +
	"documentation: https://go.microsoft.com/fwlink/?linkid=2198766"

// AnnotationKey returns the content_filter_results key that findings of a
// filter of this kind are reported under at stage s. Kinds Groundgate does
// not know are reported under their own name, in the detected shape.
func AnnotationKey(kind string, s Stage) string {
	switch kind {
	case "prompt_injection":
		if s == StageContext {
			return KeyIndirectAttack
		}
		return KeyJailbreak
	case "blocklist", "regex":
		return KeyCustomBlocklists
	case "pii":
		return KeyPII
	}
	return kind
}

// AppendAnnotations appends to dst the members (`"key":{...}` separated by
// commas, without braces) that the chain's filters active at stage s add
// to a content_filter_results object, given the findings of that stage
// (Result.Findings or StreamScanner.Findings). Every active filter's key
// is present, "detected": false when it found nothing, so clients see that
// it ran. Keys are sorted. Nothing is appended when no filter is active.
func (c *Chain) AppendAnnotations(dst []byte, findings []Finding, s Stage) []byte {
	var keysArr [8]string
	keys := keysArr[:0]
	for _, f := range c.filters {
		if !f.Active(s) {
			continue
		}
		if k, ok := f.(Keyed); ok {
			keys = append(keys, k.AnnotationKeys(s)...)
			continue
		}
		keys = append(keys, AnnotationKey(f.Kind(), s))
	}
	for i := range findings {
		keys = append(keys, c.findingKey(&findings[i], s))
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = wire.AppendString(dst, k)
		dst = append(dst, ':')
		dst = c.appendAnnotation(dst, k, findings, s)
	}
	return dst
}

// Annotations returns AppendAnnotations as a JSON object: {...}.
func (c *Chain) Annotations(findings []Finding, s Stage) []byte {
	b := append(make([]byte, 0, 128), '{')
	b = c.AppendAnnotations(b, findings, s)
	return append(b, '}')
}

// detail is one custom_blocklists details entry.
type detail struct {
	id       string
	filtered bool
}

func (c *Chain) appendAnnotation(dst []byte, key string, findings []Finding, s Stage) []byte {
	detected, filtered := false, false
	score := 0.0
	var ids [8]detail
	details := ids[:0]
	for i := range findings {
		f := &findings[i]
		if c.findingKey(f, s) != key {
			continue
		}
		detected = true
		score = max(score, f.Score)
		ff := f.Action >= Redact
		filtered = filtered || ff
		if key != KeyCustomBlocklists {
			continue
		}
		j := slices.IndexFunc(details, func(d detail) bool {
			return d.id == f.Category
		})
		if j < 0 {
			details = append(details, detail{f.Category, ff})
		} else if ff {
			details[j].filtered = true
		}
	}
	dst = append(dst, `{"filtered":`...)
	dst = appendBool(dst, filtered)
	if severityKey(key) {
		dst = append(dst, `,"severity":"`...)
		dst = append(dst, SeverityName(score)...)
		return append(dst, `"}`...)
	}
	if key != KeyCustomBlocklists {
		dst = append(dst, `,"detected":`...)
		dst = appendBool(dst, detected)
		return append(dst, '}')
	}
	slices.SortFunc(details, func(a, b detail) int {
		switch {
		case a.id < b.id:
			return -1
		case a.id > b.id:
			return 1
		}
		return 0
	})
	dst = append(dst, `,"details":[`...)
	for i, d := range details {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"filtered":`...)
		dst = appendBool(dst, d.filtered)
		dst = append(dst, `,"id":`...)
		dst = wire.AppendString(dst, d.id)
		dst = append(dst, '}')
	}
	return append(dst, "]}"...)
}

func appendBool(dst []byte, b bool) []byte {
	if b {
		return append(dst, "true"...)
	}
	return append(dst, "false"...)
}

// AppendPromptFilteredError appends the body of Azure's HTTP 400 for a
// blocked prompt, in the observed wire shape (reference/wire-formats.md
// §2.2), with contentFilterResult (a JSON object, e.g. from Annotations,
// possibly merged with other filters' members) as
// error.innererror.content_filter_result:
//
//	{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy. ...",
//	 "type":null,"param":"prompt","code":"content_filter","status":400,
//	 "innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{...}}}}
func AppendPromptFilteredError(dst []byte, contentFilterResult []byte) []byte {
	dst = append(dst, `{"error":{"message":`...)
	dst = wire.AppendString(dst, PromptFilteredMessage)
	dst = append(dst, `,"type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":`...)
	if len(contentFilterResult) == 0 {
		dst = append(dst, "{}"...)
	} else {
		dst = append(dst, contentFilterResult...)
	}
	return append(dst, "}}}"...)
}

// PromptFilteredError returns the 400 body for an input the chain blocked,
// given the findings of StageInput. Send it with status 400 and
// Content-Type application/json.
func (c *Chain) PromptFilteredError(findings []Finding) []byte {
	return AppendPromptFilteredError(make([]byte, 0, 512), c.Annotations(findings, StageInput))
}
