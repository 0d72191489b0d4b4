package grounding

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/tidwall/gjson"

	"github.com/groundgate/groundgate/policies"
	"github.com/groundgate/groundgate/tokens"
)

// ContextSpec is a policy's context section. Decode it with
// policies.RawSection.Decode (strict: unknown fields are errors naming
// file and line), then Compile it once per policy:
//
//	context:
//	  max_tokens: 1500          # budget of records + articles; default 2000
//	  records:
//	    source: crm             # records source name; default: the gateway's default
//	    entities: [incident, contact]
//	    include_notes: true
//	    max: 5
//	    keys:                   # default: see DefaultKeys
//	      - {header: x-groundgate-case, kind: case}
//	      - {metadata: customer_email, kind: email}
//	      - {message: true, kind: case}
//	  articles:
//	    index: knowledge        # index name; default: the gateway's default
//	    top: 3                  # chunks, [doc1]…[doc3]
//	    per_article: 2
//	    exclude_internal: false
//	    query:                  # see policies.ArticleQuery
//	      turns: 3
//	      entities: boost
type ContextSpec struct {
	MaxTokens int           `yaml:"max_tokens" json:"max_tokens,omitempty"`
	Records   *RecordsSpec  `yaml:"records" json:"records,omitempty"`
	Articles  *ArticlesSpec `yaml:"articles" json:"articles,omitempty"`
}

// RecordsSpec is context.records.
type RecordsSpec struct {
	// Source names the records source in the gateway's configuration;
	// "" is the default source.
	Source string `yaml:"source" json:"source,omitempty"`
	// Entities that may reach the model (default incident, contact,
	// account); related records of these entities are followed.
	Entities []string `yaml:"entities" json:"entities,omitempty"`
	// Keys say where record keys come from (default DefaultKeys).
	Keys []KeySpec `yaml:"keys" json:"keys,omitempty"`
	// IncludeNotes adds the notes (annotation) of the cases found.
	IncludeNotes bool `yaml:"include_notes" json:"include_notes,omitempty"`
	// Max caps the records in the context (default 5).
	Max int `yaml:"max" json:"max,omitempty"`
}

// ArticlesSpec is context.articles.
type ArticlesSpec struct {
	// Index names the index in the gateway's configuration; "" is the
	// default index.
	Index string `yaml:"index" json:"index,omitempty"`
	// Top is how many chunks reach the model (default 3).
	Top int `yaml:"top" json:"top,omitempty"`
	// PerArticle caps the chunks of one article (default 2).
	PerArticle int `yaml:"per_article" json:"per_article,omitempty"`
	// ExcludeInternal leaves out articles marked internal.
	ExcludeInternal bool `yaml:"exclude_internal" json:"exclude_internal,omitempty"`
	// Query says how the search query is built from the conversation
	// and what the records and entities in play filter or boost
	// (default: policies.ArticleQuery's defaults).
	Query *policies.ArticleQuery `yaml:"query" json:"query,omitempty"`
}

// Defaults of a context section.
const (
	DefaultMaxTokens  = 2000
	DefaultMaxRecords = 5
	DefaultTop        = 3
	DefaultPerArticle = 2
)

// DefaultKeys are the key specs of a records section that lists none: the
// case number from the x-groundgate-case header, from metadata.case_number
// and from the last user message.
var DefaultKeys = []KeySpec{
	{Header: "x-groundgate-case", Kind: "case"},
	{Metadata: "case_number", Kind: "case"},
	{Message: true, Kind: "case"},
}

// Plan is a compiled context section. Safe for concurrent use.
type Plan struct {
	Spec      ContextSpec // with defaults filled in
	extractor *Extractor
	query     RecordsQuery
	search    policies.ArticleQuery // the articles' query, defaults filled in
}

// Compile validates a context section and fills in its defaults.
func Compile(spec ContextSpec) (*Plan, error) {
	p := &Plan{Spec: spec}
	var errs []error
	if p.Spec.MaxTokens < 0 {
		errs = append(errs, fmt.Errorf("max_tokens must not be negative, got %d", spec.MaxTokens))
	}
	if p.Spec.MaxTokens == 0 {
		p.Spec.MaxTokens = DefaultMaxTokens
	}
	if r := spec.Records; r != nil {
		rs := *r
		if rs.Max < 0 {
			errs = append(errs, fmt.Errorf("records.max must not be negative, got %d", rs.Max))
		}
		if rs.Max == 0 {
			rs.Max = DefaultMaxRecords
		}
		if len(rs.Entities) == 0 {
			rs.Entities = append([]string(nil), DefaultEntities...)
		}
		for i, e := range rs.Entities {
			if !knownEntity(e) {
				errs = append(errs, fmt.Errorf("records.entities[%d]: unknown entity %q (known: %s)", i, e, strings.Join(KnownEntities, ", ")))
			}
		}
		if len(rs.Keys) == 0 {
			rs.Keys = append([]KeySpec(nil), DefaultKeys...)
		}
		x, err := NewExtractor(rs.Keys)
		if err != nil {
			errs = append(errs, fmt.Errorf("records.%w", err))
		}
		p.extractor = x
		p.query = RecordsQuery{Entities: rs.Entities, Notes: rs.IncludeNotes, Max: rs.Max}
		p.Spec.Records = &rs
	}
	if a := spec.Articles; a != nil {
		as := *a
		if as.Top < 0 || as.PerArticle < 0 {
			errs = append(errs, fmt.Errorf("articles.top and articles.per_article must not be negative"))
		}
		if as.Top == 0 {
			as.Top = DefaultTop
		}
		if as.PerArticle == 0 {
			as.PerArticle = DefaultPerArticle
		}
		if err := as.Query.Validate(); err != nil {
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				errs = append(errs, fmt.Errorf("articles.%w", e))
			}
		}
		p.search = as.Query.WithDefaults()
		as.Query = &p.search
		p.Spec.Articles = &as
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if p.extractor != nil && p.Spec.Articles != nil {
		// The conversation the query reads back is the one record keys
		// are looked for in.
		p.extractor.lookback = p.search.Lookback
	}
	return p, nil
}

// Keys returns the record keys a request names (nil when the policy has
// no records section).
func (p *Plan) Keys(header http.Header, body []byte) []RecordKey {
	if p.extractor == nil {
		return nil
	}
	return p.extractor.Extract(header, body)
}

// Sources are the record source, index and query rewriter a plan reads.
type Sources struct {
	Records  RecordSource // nil: no records
	Index    Index        // nil: no articles
	Rewriter Rewriter     // nil: no query rewrite (a policy that asks for one fails to compile in the gateway)
}

// Request is what grounding reads from a chat request.
type Request struct {
	Header http.Header
	Body   []byte // the chat completions JSON
}

// Result is the outcome of Ground.
type Result struct {
	Packed Packed
	Keys   []RecordKey // the keys the request named
	Denied []Denied    // records refused by scope: log them (audit)
	Query  string      // the text searched (Query.Text, or the rewrite)
	Hits   int         // chunks the index returned before packing
	// Rewrite is the query rewrite's outcome when the policy asked for
	// one (nil otherwise): its tokens count against the budgets and go
	// to the audit log.
	Rewrite *Rewritten
}

// Ground runs the plan for one request: extracts record keys, resolves
// them in src.Records under scope, builds the search query from the
// conversation (and has it rewritten when the policy says so), searches
// src.Index, and packs both into the budget. The lookup and the search
// run concurrently unless the query needs the records in play. When a
// source fails, the other's context is still packed and the error is
// returned alongside: the caller decides whether to answer without that
// context or fail. A failed rewrite falls back to the conversation's own
// query and is reported the same way.
func (p *Plan) Ground(ctx context.Context, src Sources, req Request, scope *Scope, enc *tokens.Encoder) (Result, error) {
	var res Result
	var root gjson.Result
	if gjson.ValidBytes(req.Body) {
		root = gjson.ParseBytes(req.Body)
	}
	var (
		records                []Record
		hits                   []Hit
		recErr, hitErr, rwErr  error
		wg                     sync.WaitGroup
		doRecs, doIndex, after bool
		q                      Query
	)
	if p.Spec.Records != nil && src.Records != nil {
		res.Keys = p.extractor.Extract(req.Header, req.Body)
		doRecs = len(res.Keys) > 0
	}
	if a := p.Spec.Articles; a != nil && src.Index != nil {
		conv := Conversation(root, 0)
		q = BuildQuery(conv, p.search)
		if r := p.search.Rewrite; r != nil && src.Rewriter != nil && q.Text != "" {
			rw, err := rewrite(ctx, src.Rewriter, conv, *r, enc)
			if err != nil {
				rwErr = fmt.Errorf("query rewrite: %w", err)
			} else {
				res.Rewrite = &rw
				q = withRewrite(q, rw.Query, *r.Keep)
			}
		}
		res.Query = q.Text
		doIndex = q.Text != ""
		after = doRecs && needsRecords(p.search.Match)
	}
	search := func(inPlay []Record) {
		a := p.Spec.Articles
		q.Match = matchValues(p.search.Match, root, req.Header, inPlay)
		// Ask for more than Top: packing drops duplicates and chunks that
		// do not fit.
		hits, hitErr = p.SearchQuery(ctx, src.Index, q, a.Top*3)
		if hitErr != nil {
			hits = nil
		}
	}
	if doRecs && doIndex && !after {
		wg.Add(1)
		go func() { defer wg.Done(); search(nil) }()
	} else if doIndex && !after {
		search(nil)
	}
	if doRecs {
		records, res.Denied, recErr = Resolve(ctx, src.Records, res.Keys, scope, p.query)
		if recErr != nil {
			records = nil
		}
	}
	if doIndex && after {
		search(records)
	}
	wg.Wait()
	res.Hits = len(hits)
	lim := Limits{Tokens: p.Spec.MaxTokens}
	if r := p.Spec.Records; r != nil {
		lim.Records = r.Max
	}
	if a := p.Spec.Articles; a != nil {
		lim.Docs, lim.PerArticle = a.Top, a.PerArticle
	}
	packed, err := PackLimits(records, hits, lim, enc)
	if err != nil {
		return res, err
	}
	res.Packed = packed
	if recErr != nil {
		recErr = fmt.Errorf("records: %w", recErr)
	}
	if hitErr != nil {
		hitErr = fmt.Errorf("articles: %w", hitErr)
	}
	return res, errors.Join(recErr, hitErr, rwErr)
}

// Query builds the search query of a request as the plan says (without
// rewrite and record matches): what Ground searches for the request's
// conversation.
func (p *Plan) Query(body []byte) Query {
	if !gjson.ValidBytes(body) {
		return Query{}
	}
	root := gjson.ParseBytes(body)
	q := BuildQuery(Conversation(root, 0), p.search)
	q.Match = matchValues(p.search.Match, root, nil, nil)
	return q
}

// SearchQuery searches idx for q the way Ground does: with the whole
// query when idx is a QueryIndex, else with q.Text; at most k chunks,
// under the plan's filter.
func (p *Plan) SearchQuery(ctx context.Context, idx Index, q Query, k int) ([]Hit, error) {
	a := p.Spec.Articles
	if a == nil || idx == nil || q.Text == "" {
		return nil, nil
	}
	f := Filter{ExcludeInternal: a.ExcludeInternal, PerArticle: a.PerArticle}
	if qi, ok := idx.(QueryIndex); ok {
		return qi.SearchQuery(ctx, q, k, f)
	}
	return idx.Search(ctx, q.Text, k, f)
}
