package post

import (
	"time"

	"github.com/groundgate/groundgate/grounding"
)

// Interaction is one audit record: one client request and its answer.
// The handler fills it when the response is complete (the stream ended)
// and passes it to every Recorder. Its JSON form is what the JSONL sink
// writes, one object a line, and what the SQLite and Dataverse sinks keep
// in their "record"/"details" column.
type Interaction struct {
	// RequestID is the gateway's request id (the X-Request-Id header).
	RequestID string `json:"request_id"`
	// ResponseID is the id of the answer the client got (the chat
	// completion's "id"), by which it may send feedback.
	ResponseID string `json:"response_id,omitempty"`
	// Time is when the request arrived.
	Time time.Time `json:"time"`
	// Principal is the client key's name; Team its team.
	Principal string `json:"principal,omitempty"`
	Team      string `json:"team,omitempty"`
	// DryRun marks an operator's /groundgate/explain: nothing was sent
	// upstream; Principal is the operator and OnBehalfOf the principal
	// whose request was explained.
	DryRun     bool   `json:"dry_run,omitempty"`
	OnBehalfOf string `json:"on_behalf_of,omitempty"`
	// Policy is the policy's name and PolicyVersion its content hash
	// (policies.Policy.Hash); Feature the copilot feature, if any.
	Policy        string `json:"policy,omitempty"`
	PolicyVersion string `json:"policy_version,omitempty"`
	Feature       string `json:"feature,omitempty"`
	// Route ("chat.completions", "embeddings"), Model (the alias the
	// client asked for) and Upstream (the deployment that answered).
	Route    string `json:"route,omitempty"`
	Model    string `json:"model,omitempty"`
	Upstream string `json:"upstream,omitempty"`
	Stream   bool   `json:"stream,omitempty"`
	// Records are the CRM records put in the context; Articles the
	// knowledge-article chunks ([doc1]…), with whether the answer cites
	// them. DeniedRecords are records the request asked for that the key's
	// scope does not allow (grounding's denial strings).
	Records       []RecordRef  `json:"records,omitempty"`
	Articles      []ArticleRef `json:"articles,omitempty"`
	DeniedRecords []string     `json:"denied_records,omitempty"`
	// Token counts and cost in US dollars.
	PromptTokens     int64   `json:"prompt_tokens"`
	CompletionTokens int64   `json:"completion_tokens"`
	Cost             float64 `json:"cost"`
	// QueryRewrite is the search query a small model wrote for the
	// knowledge index, and its tokens (charged to the budgets too).
	QueryRewrite *QueryRewrite `json:"query_rewrite,omitempty"`
	// FilterActions are what the content filters did.
	FilterActions []FilterAction `json:"filter_actions,omitempty"`
	// Citations summarises what the citations post-processor did.
	Citations *CitationSummary `json:"citations,omitempty"`
	// LatencyMS is the time from the request's arrival to the end of the
	// response, in milliseconds.
	LatencyMS float64 `json:"latency_ms"`
	// Status is the HTTP status sent to the client; Error the error code
	// or message when the request failed.
	Status int    `json:"status"`
	Error  string `json:"error,omitempty"`
	// CacheHit is true when the answer came from the response cache.
	CacheHit bool `json:"cache_hit,omitempty"`
	// Incomplete marks an answer that did not reach its end, and
	// IncompleteReason says why: client_disconnected (the client left or
	// stopped reading), upstream_error (the upstream stream broke),
	// upstream_timeout (it stalled past stream_idle_timeout) or
	// content_filter (a filter ended it). Its tokens are what the gateway
	// counted of the prompt it sent and the answer it received.
	Incomplete       bool   `json:"incomplete,omitempty"`
	IncompleteReason string `json:"incomplete_reason,omitempty"`
}

// RecordRef names a CRM record.
type RecordRef struct {
	Entity string `json:"entity"`
	ID     string `json:"id"`
	Number string `json:"number,omitempty"`
}

// ArticleRef names a knowledge-article chunk injected as [docN].
type ArticleRef struct {
	Ref     string `json:"ref"` // "doc1"
	ID      string `json:"id"`
	Number  string `json:"number,omitempty"`
	ChunkID string `json:"chunk_id,omitempty"`
	Cited   bool   `json:"cited"`
}

// FilterAction is one thing a content filter did.
type FilterAction struct {
	Filter   string `json:"filter"`             // "blocklist", "pii"…
	Category string `json:"category,omitempty"` // "email", a list name…
	Stage    string `json:"stage"`              // input, context, output
	Action   string `json:"action"`             // annotate, redact, block
}

// CitationSummary is the citation part of a Result.
type CitationSummary struct {
	Cited      int  `json:"cited"`
	Invented   int  `json:"invented,omitempty"`
	Duplicates int  `json:"duplicates,omitempty"`
	Ungrounded bool `json:"ungrounded,omitempty"`
	Refused    bool `json:"refused,omitempty"`
}

// SetContext fills Records and Articles from the packed context and, when
// res is not nil, marks the cited articles and sets Citations.
func (in *Interaction) SetContext(p *grounding.Packed, res *Result) {
	if p != nil {
		in.Records = in.Records[:0]
		for _, r := range p.Records {
			in.Records = append(in.Records, RecordRef{Entity: r.Entity, ID: r.ID, Number: r.Number})
		}
		in.Articles = in.Articles[:0]
		for _, d := range p.Docs {
			in.Articles = append(in.Articles, ArticleRef{Ref: d.Ref, ID: d.ArticleID, Number: d.Number, ChunkID: d.ChunkID})
		}
	}
	if res == nil {
		return
	}
	for _, i := range res.Cited {
		if i >= 0 && i < len(in.Articles) {
			in.Articles[i].Cited = true
		}
	}
	in.Citations = &CitationSummary{
		Cited: len(res.Cited), Invented: res.Invented, Duplicates: res.Duplicates,
		Ungrounded: res.Ungrounded, Refused: res.Refused,
	}
}

// QueryRewrite is a query rewrite of grounding, for the audit record.
type QueryRewrite struct {
	Query            string `json:"query"`
	Model            string `json:"model,omitempty"`
	PromptTokens     int    `json:"prompt_tokens"`
	CompletionTokens int    `json:"completion_tokens"`
}
