// Package post is the host side of Groundgate's post-processors, the
// llm_gateway.post.* Caddy modules that act on the model's answer before
// the client sees it (citations, append) and record the interaction
// afterwards (audit).
//
// A post-processor that changes answers implements Processor: for each
// answer (each choice of a response) it makes a Rewriter, which is fed the
// answer's text as it arrives and returns the text to emit. The same
// Rewriter serves both shapes of a response:
//
//   - non-streamed: Chain.Body feeds every choices[i].message.content in
//     one Delta, then Finish, and splices the result back in at the
//     offsets gjson found (the body is never unmarshalled);
//   - streamed: Stream.Chunk feeds each chunk's choices[i].delta.content
//     and, at the chunk carrying finish_reason (or at End), calls Finish
//     and sends what it returns in a chunk of its own just before the
//     finish chunk.
//
// Because one state machine does both, the concatenation of everything
// a Rewriter emits for a stream is the non-streamed rewrite of the
// concatenated answer, however the stream was split; the processors'
// tests check this at every byte boundary.
//
// Rewriters may also return members of the message's "context" object,
// the way Azure OpenAI "On Your Data" returns message.context.citations:
// a JSON object whose members are merged into choices[i].message.context
// (non-streamed) or choices[i].delta.context of the chunk that carries the
// text (streamed).
//
// The audit module implements Recorder: the handler fills an Interaction
// once the response is complete and hands it over; Record never blocks.
package post

import (
	"github.com/groundgate/groundgate/grounding"
)

// Request is what post-processors know about the exchange.
type Request struct {
	// Packed is the context that reached the model: Packed.Docs maps
	// [doc1]…[docN] to articles. nil when nothing was injected.
	Packed *grounding.Packed
	// Stream reports whether the client asked for a stream.
	Stream bool
	// Policy and Feature name the policy that served the request ("" when
	// none), for processors that log.
	Policy, Feature string
	// Scope is the principal's record scope: a processor that looks
	// records up (records) sees only what the principal may see. Lookups
	// are unrestricted only when AllRecords is set (a key whose scope is
	// "all"); a nil Scope without it sees public records only.
	Scope      *grounding.Scope
	AllRecords bool
	// Structured: the client asked for a JSON answer (response_format
	// json_object or json_schema). The chain then leaves the answer's text
	// as the model wrote it and returns only context members (citations),
	// so the JSON stays valid against the schema.
	Structured bool
}

// RecordScope is the scope record lookups for req must use: nil
// (unrestricted) only for AllRecords, else req's Scope or, when there is
// none, an empty one (public records only).
func (r *Request) RecordScope() *grounding.Scope {
	switch {
	case r == nil:
		return &grounding.Scope{}
	case r.AllRecords:
		return nil
	case r.Scope == nil:
		return &grounding.Scope{}
	}
	return r.Scope
}

// Docs returns the injected docs (nil without a Packed context).
func (r *Request) Docs() []grounding.Doc {
	if r == nil || r.Packed == nil {
		return nil
	}
	return r.Packed.Docs
}

// Result collects what the processors did to the answers of one response,
// for response headers and the audit record. It is filled as the answer
// is processed and complete once every Rewriter has finished. It is not
// safe for concurrent use (one per exchange).
type Result struct {
	// Cited lists the docs the answers cite, as indexes into
	// Request.Packed.Docs (0 for [doc1]), in order of first citation.
	Cited []int
	// Invented counts [docN] markers dropped because no doc N was
	// injected; Duplicates counts markers dropped because they repeated
	// the marker just before them.
	Invented, Duplicates int
	// Ungrounded: grounding is required and an answer cites nothing.
	Ungrounded bool
	// Refused: an ungrounded answer was replaced by the refusal text.
	Refused bool
	// Appended counts the answers a disclaimer was appended to.
	Appended int
}

// AddCited records that doc i (an index into Packed.Docs) is cited.
func (r *Result) AddCited(i int) {
	for _, c := range r.Cited {
		if c == i {
			return
		}
	}
	r.Cited = append(r.Cited, i)
}

// GroundingHeader is the response header a handler sets on a non-streamed
// response whose Result is Ungrounded (value "ungrounded"; "refused" when
// the answer was replaced). Streamed responses carry the flag in the
// message context instead ("ungrounded": true), headers being gone by then.
const GroundingHeader = "X-Groundgate-Grounding"

// HeaderValue returns the GroundingHeader value for r, "" when none is due.
func (r *Result) HeaderValue() string {
	switch {
	case r.Refused:
		return "refused"
	case r.Ungrounded:
		return "ungrounded"
	}
	return ""
}

// Rewriter rewrites one answer as it arrives. It is not safe for
// concurrent use.
type Rewriter interface {
	// Delta takes the next piece of the answer and returns the text to
	// emit now (possibly "", when text is held back) and members for the
	// message's context, as a JSON object, or nil. The returned slice is
	// only valid until the next call. text is only valid during the call
	// (it may point into the caller's buffer): a Rewriter copies what it
	// keeps.
	Delta(text string) (emit string, context []byte)
	// Finish is called once, when the answer is complete. It returns the
	// text still to emit (held-back text, additions, or a replacement
	// answer) and context members, as Delta does.
	Finish() (emit string, context []byte)
}

// Processor is implemented by the post-processors that change answers
// (llm_gateway.post.citations, llm_gateway.post.append).
type Processor interface {
	// NewRewriter returns a Rewriter for one answer of the exchange
	// described by req, recording what it does in res; nil when the
	// processor has nothing to do for this exchange.
	NewRewriter(req *Request, res *Result) Rewriter
}

// Recorder is implemented by post-processors that record interactions
// (llm_gateway.post.audit).
type Recorder interface {
	// Record hands the interaction over. It never blocks and never fails
	// the response: a record that cannot be queued is counted and logged.
	// The caller must not modify in afterwards.
	Record(in *Interaction)
}
