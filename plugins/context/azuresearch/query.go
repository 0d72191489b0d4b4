package azuresearch

import (
	"encoding/json"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/groundgate/groundgate/grounding"
)

// Query types.
const (
	Keyword  = "keyword"  // full-text (BM25), queryType simple
	Semantic = "semantic" // full-text reranked by the semantic ranker
	Vector   = "vector"   // vector similarity only
	Hybrid   = "hybrid"   // full-text and vector fused (RRF); semantic reranking with semantic_configuration
)

// Vector query kinds.
const (
	VectorQueryVector = "vector" // embed the query with the embeddings deployment
	VectorQueryText   = "text"   // let the index's vectorizer embed it
)

const (
	// maxTop is the service's limit on top.
	maxTop = 1000
	// maxQueryText bounds the search text sent.
	maxQueryText = 1000
)

// searchBody is the body of POST /indexes/<index>/docs/search, in the
// 2024-07-01 shape. Field order is the order of the docs' examples.
type searchBody struct {
	Search                string        `json:"search,omitempty"`
	QueryType             string        `json:"queryType,omitempty"`
	SemanticConfiguration string        `json:"semanticConfiguration,omitempty"`
	Captions              string        `json:"captions,omitempty"`
	Answers               string        `json:"answers,omitempty"`
	VectorQueries         []vectorQuery `json:"vectorQueries,omitempty"`
	Filter                string        `json:"filter,omitempty"`
	ScoringProfile        string        `json:"scoringProfile,omitempty"`
	ScoringParameters     []string      `json:"scoringParameters,omitempty"`
	Select                string        `json:"select,omitempty"`
	Top                   int           `json:"top"`
}

// vectorQuery is a vector ("kind":"vector") or text-to-vectorize
// ("kind":"text") subquery.
type vectorQuery struct {
	Kind   string    `json:"kind"`
	Vector []float32 `json:"vector,omitempty"`
	Text   string    `json:"text,omitempty"`
	Fields string    `json:"fields"`
	K      int       `json:"k"`
}

// plan is the query shape decided at provision time.
type plan struct {
	queryType     string // Keyword, Semantic, Vector or Hybrid
	semanticConf  string
	captions      string
	answers       string
	reranked      bool // the semantic ranker orders the results
	vectorField   string
	vectorKind    string // VectorQueryVector or VectorQueryText
	k             int    // vector k; 0: top
	selectList    string
	internalField string
	numberField   string
}

// body builds the request body for text; vec is the query's vector
// (nil for keyword and semantic queries and for text vector queries).
func (p *plan) body(text string, top int, vec []float32, f grounding.Filter) ([]byte, bool) {
	return p.bodyWith(text, top, vec, f, extras{})
}

// extras are what a conversation-aware query adds to a search: OData
// clauses from the policy's filters, and a scoring profile's tag
// parameters from its boosts.
type extras struct {
	clauses []string
	profile string
	params  []string
}

func (p *plan) bodyWith(text string, top int, vec []float32, f grounding.Filter, x extras) ([]byte, bool) {
	b := searchBody{Top: top, Select: p.selectList, ScoringProfile: x.profile, ScoringParameters: x.params}
	if p.queryType != Vector {
		b.Search = text
		b.QueryType = "simple"
	}
	if p.reranked {
		b.QueryType, b.SemanticConfiguration, b.Captions, b.Answers = "semantic", p.semanticConf, p.captions, p.answers
	}
	if p.queryType == Vector || p.queryType == Hybrid {
		k := p.k
		if k == 0 {
			k = top
		}
		vq := vectorQuery{Kind: p.vectorKind, Fields: p.vectorField, K: k}
		if p.vectorKind == VectorQueryText {
			vq.Text = text
		} else {
			vq.Vector = vec
		}
		b.VectorQueries = []vectorQuery{vq}
	}
	filter, ok := p.filter(f)
	if !ok {
		return nil, false
	}
	if len(x.clauses) > 0 {
		if filter != "" {
			x.clauses = append([]string{filter}, x.clauses...)
		}
		filter = strings.Join(x.clauses, " and ")
	}
	b.Filter = filter
	out, err := json.Marshal(b)
	if err != nil { // only plain types: cannot happen
		return nil, false
	}
	return out, true
}

// filter is the OData $filter of a search: internal articles left out
// when asked (internal ne true keeps documents without the field), only
// the given article numbers when asked. Values are OData string literals
// with quotes doubled; field names come from the config. ok is false when
// numbers were asked for but none can be a literal (nothing can match).
func (p *plan) filter(f grounding.Filter) (string, bool) {
	var parts []string
	if f.ExcludeInternal && p.internalField != "" {
		parts = append(parts, p.internalField+" ne true")
	}
	if len(f.Numbers) > 0 && p.numberField != "" {
		var or []string
		for _, n := range f.Numbers {
			if lit, ok := literal(n); ok && len(or) < 50 {
				or = append(or, p.numberField+" eq "+lit)
			}
		}
		if len(or) == 0 {
			return "", false
		}
		parts = append(parts, "("+strings.Join(or, " or ")+")")
	}
	return strings.Join(parts, " and "), true
}

// literal writes v as an OData string literal: in single quotes, every
// quote doubled. ok is false for values that cannot be article numbers
// (empty, long, control characters).
func literal(v string) (string, bool) {
	if v == "" || len(v) > 256 || !utf8.ValidString(v) {
		return "", false
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return "", false
		}
	}
	return "'" + strings.ReplaceAll(v, "'", "''") + "'", true
}

// queryText makes a search text of a user message: control characters
// become spaces, runs of space collapse, at most maxQueryText characters.
func queryText(q string) string {
	q = strings.Join(strings.FieldsFunc(q, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }), " ")
	if r := []rune(q); len(r) > maxQueryText {
		q = string(r[:maxQueryText])
	}
	return q
}
