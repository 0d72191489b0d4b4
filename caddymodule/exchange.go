package caddymodule

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/groundgate/groundgate/filters"
	"github.com/groundgate/groundgate/grounding"
	"github.com/groundgate/groundgate/policies"
	"github.com/groundgate/groundgate/post"
	"github.com/groundgate/groundgate/wire"
)

// exchange is one client request on its way through the gateway.
type exchange struct {
	g     *Gateway
	w     http.ResponseWriter
	r     *http.Request
	repl  *caddy.Replacer
	start time.Time
	id    string
	route route
	api   apiAdapter // the request's API shape (nil for non-model routes)
	// upstreamQuery is the client's query passed to the upstream (stored
	// responses: include, after, limit...), api-version removed.
	upstreamQuery string
	// stored is the owner record of the response a request continues.
	stored    *storedResponse
	principal *principal
	model     *model
	policy    *policies.Policy // nil without policies
	feature   string

	packed        *grounding.Packed // the context that reached the model, for post-processing
	rt            *policyRuntime    // the policy's compiled sections (nil without policies)
	cacheKey      string            // response cache key ("" when the policy does not cache)
	cacheHit      bool
	responseID    string            // the answer's "id", for the audit record
	streamed      bool              // the answer was a stream
	structured    bool              // the client asked for a JSON answer
	filteredOut   bool              // an output filter ended the stream
	inputFindings []filters.Finding // what the input filters found
	inputAnn      []byte            // their Azure-shaped annotations (JSON object)
	annMerged     bool              // inputAnn was added to the stream
	postResult    *post.Result      // what the post-processors did
	denied        []string          // records withheld by scope, for the audit record
	dryRunAs      string            // an operator's explain: the principal explained ("" otherwise)
	streamCopy    []byte            // the stream as sent, for the cache
	held          []*heldBudget     // budgets reserved before the upstream call
	est           tokenEstimate
	promptCount   int // prompt tokens counted by the gateway (0: not counted)
	// choices and answerCap are n and the cap per answer the upstream
	// gets (0: none), read from the client's body before the policy made
	// it longer (choices 0: not read).
	choices, answerCap int64
	cachedTokens       int64 // prompt tokens the upstream served from its cache

	tr *reqTrace // nil: tracing off

	upstream *upstream // the upstream that answered
	attempts int
	status   int  // status sent to the client
	started  bool // headers sent: errors can no longer change the status

	rc            *http.ResponseController // made on first use (controller)
	noDeadline    bool                     // the writer refused a write deadline
	deadlineArmed bool                     // a write deadline is set

	promptTokens, completionTokens int64
	usageReported                  bool // the upstream reported usage
	ttft                           time.Duration
	finished                       bool // a stream chunk carried a finish_reason
	done                           bool // finish ran: the outcome is known
	costUSD                        float64
	// sent is the body sent upstream and answers the text of each choice
	// received, for counting tokens when an upstream reports no usage. A
	// started stream releases sent once its prompt is counted, keeping
	// the count and what post-processing reads of it (streamkeep.go).
	sent       []byte
	sentTokens int64
	answers    [][]byte
	// incomplete says why the answer did not reach its end ("": it did).
	incomplete string
	// abandoned: the client left while an upstream attempt was in flight;
	// unseenCompletion is what the budgets still charge for its answer.
	abandoned        bool
	unseenCompletion int64

	// rewrite is the query rewrite's outcome and tokens (nil: none).
	rewrite *grounding.Rewritten
}

// errClientGone means the client went away; nothing more is written.
var errClientGone = errors.New("client disconnected")

func (g *Gateway) newExchange(w http.ResponseWriter, r *http.Request) *exchange {
	ex := &exchange{g: g, w: w, r: r, start: time.Now(), id: newRequestID()}
	ex.repl, _ = r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if ex.repl == nil {
		ex.repl = caddy.NewReplacer()
	}
	ex.repl.Map(ex.placeholder)
	w.Header().Set("X-Request-Id", ex.id)
	ex.startTrace()
	return ex
}

// newRequestID returns 16 random bytes as a UUID-formatted string.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}

// fail answers with err unless the response has begun.
func (ex *exchange) fail(err error) {
	if errors.Is(err, errClientGone) {
		ex.markIncomplete(incompleteClientGone)
		if ex.status == 0 {
			ex.status = 499 // nginx's "client closed request", for metrics only
		}
		return
	}
	var pf *promptFiltered
	if errors.As(err, &pf) {
		if !ex.started {
			ex.status, ex.started = http.StatusBadRequest, true
			ex.armWrite()
			pf.write(ex.w)
		}
		return
	}
	var we *wire.Error
	if !errors.As(err, &we) {
		ex.g.logger.Error("request failed", zap.String("request_id", ex.id), zap.Error(err))
		we = &wire.Error{Status: http.StatusInternalServerError, Type: wire.TypeServer,
			Message: "The gateway failed to process the request (request id " + ex.id + ")."}
	}
	if ex.started {
		return
	}
	ex.status = we.Status
	ex.started = true
	ex.armWrite()
	we.Write(ex.w)
}

// writeHeader sends status and headers once.
func (ex *exchange) writeHeader(status int) {
	ex.status = status
	ex.started = true
	ex.w.WriteHeader(status)
}

// finish records the outcome: placeholders for access logs, metrics, a
// debug log line.
func (ex *exchange) finish() {
	alias := ""
	if ex.model != nil {
		alias = ex.model.alias
	}
	up := ""
	if ex.upstream != nil {
		up = ex.upstream.name
	}
	// An upstream that answered, or had the request when the client
	// left, bills it even without reporting usage: count it.
	if !ex.usageReported && ex.sentKnown() && (ex.upstream != nil || ex.abandoned) {
		ex.countUsage()
	}
	ex.settle()
	ex.record()
	ex.done = true // the outcome's placeholders exist from now on
	if cost := ex.costMicroUSD(); cost > 0 {
		usd := float64(cost) / 1e6
		ex.costUSD = usd
		team := ""
		if ex.principal != nil {
			team = ex.principal.team
		}
		costTotal.WithLabelValues(alias, team).Add(usd)
	}
	requestsTotal.WithLabelValues(ex.route.name, alias, strconv.Itoa(ex.status)).Inc()
	if ex.promptTokens > 0 {
		tokensTotal.WithLabelValues(alias, "prompt").Add(float64(ex.promptTokens))
	}
	if ex.completionTokens > 0 {
		tokensTotal.WithLabelValues(alias, "completion").Add(float64(ex.completionTokens))
	}
	if ce := ex.g.logger.Check(zap.DebugLevel, "request"); ce != nil {
		ce.Write(zap.String("request_id", ex.id), zap.String("route", ex.route.name),
			zap.String("model", alias), zap.String("upstream", up), zap.Int("status", ex.status),
			zap.Int("attempts", ex.attempts), zap.Int64("prompt_tokens", ex.promptTokens),
			zap.Int64("completion_tokens", ex.completionTokens), zap.Duration("duration", time.Since(ex.start)))
	}
	ex.endTrace()
}

// readBody reads the request body within the configured limit.
func (ex *exchange) readBody() ([]byte, error) {
	limit := ex.g.MaxRequestBody
	if ex.r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	size := ex.r.ContentLength
	if size < 0 || size > limit {
		size = 512
	}
	buf := make([]byte, 0, size+1)
	body, err := readAllInto(buf, http.MaxBytesReader(ex.w, ex.r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge(limit)
		}
		if ex.r.Context().Err() != nil {
			return nil, errClientGone
		}
		return nil, wire.BadRequest("", "", "Could not read the request body: "+err.Error())
	}
	return body, nil
}

func readAllInto(b []byte, r io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			if err == io.EOF {
				return b, nil
			}
			return b, err
		}
	}
}

func tooLarge(limit int64) *wire.Error {
	return &wire.Error{Status: http.StatusRequestEntityTooLarge, Type: wire.TypeInvalidRequest, Code: "request_too_large",
		Message: "The request body exceeds the gateway's limit of " + strconv.FormatInt(limit, 10) + " bytes."}
}
