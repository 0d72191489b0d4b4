package analytics

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/groundgate/groundgate/wire"
)

// TokenSource hands out bearer tokens for Dataverse (entra.Source).
type TokenSource interface {
	Token(ctx context.Context) (string, error)
	Invalidate(tok string)
}

// DataverseOptions locate the audit table the Dataverse audit sink writes
// (with its analytics columns on).
type DataverseOptions struct {
	// URL of the environment, e.g. "https://contoso.crm.dynamics.com".
	URL string
	// EntitySet of the audit table, e.g. "gg_audits".
	EntitySet string
	// ColumnPrefix of the columns; default "gg_".
	ColumnPrefix string
	// KeyColumn is the table's primary key column; default the entity
	// set name without its final "s", plus "id" ("gg_audits" → "gg_auditid").
	KeyColumn string
	// APIVersion of the Web API; default "v9.2".
	APIVersion string
	Client     *http.Client
	Token      TokenSource
}

// Dataverse reads the console's figures from the Dataverse audit table
// through the Web API: sums with OData $apply (groupby/aggregate), the log
// with $filter/$orderby/$top, feedback in columns of the interaction's
// row (PATCH by its key).
type Dataverse struct {
	o      DataverseOptions
	base   string // <url>/api/data/<version>/
	p      string // column prefix
	client *http.Client
	tok    TokenSource
	// feedbackWait bounds how long AddFeedback waits for the sink to
	// write the interaction's row.
	feedbackWait time.Duration
}

// OpenDataverse checks the options; it makes no request.
func OpenDataverse(o DataverseOptions) (*Dataverse, error) {
	o.URL = strings.TrimRight(o.URL, "/")
	if o.ColumnPrefix == "" {
		o.ColumnPrefix = "gg_"
	}
	if o.APIVersion == "" {
		o.APIVersion = "v9.2"
	}
	if o.KeyColumn == "" {
		o.KeyColumn = strings.TrimSuffix(o.EntitySet, "s") + "id"
	}
	for _, id := range []string{o.EntitySet, o.ColumnPrefix, o.KeyColumn} {
		if !identRe.MatchString(id) {
			return nil, fmt.Errorf("analytics: dataverse: %q: want letters, digits and underscores", id)
		}
	}
	if _, err := wire.ServiceURL(o.URL); err != nil {
		return nil, fmt.Errorf("analytics: dataverse: url: %v", err)
	}
	if o.Token == nil {
		return nil, errors.New("analytics: dataverse: a token source is required")
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 30 * time.Second}
	}
	return &Dataverse{o: o, base: o.URL + "/api/data/" + o.APIVersion + "/", p: o.ColumnPrefix, client: o.Client,
		tok: o.Token, feedbackWait: 5 * time.Second}, nil
}

// SetFeedbackWait sets how long AddFeedback waits for the interaction's
// row to appear (tests).
func (d *Dataverse) SetFeedbackWait(w time.Duration) { d.feedbackWait = w }

// AggregateLimit is the number of rows Dataverse aggregates at most in
// one $apply request.
const AggregateLimit = 50000

// ErrAggregateLimit: more rows of a single day match than Dataverse
// aggregates in one request.
var ErrAggregateLimit = errors.New("more than 50,000 interactions of one day match, more than Dataverse aggregates at once: narrow the figures to a team, feature or model")

// lit is an OData string literal.
func lit(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// dvTime formats an instant as an OData DateTimeOffset literal.
func dvTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

func dayStart(day string) string { return day + "T00:00:00Z" }

// eqs adds "col eq 'v'" for each non-empty value.
func (d *Dataverse) eqs(w []string, kv ...string) []string {
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			w = append(w, d.p+kv[i]+" eq "+lit(kv[i+1]))
		}
	}
	return w
}

// query encodes OData options with %20 for spaces.
func query(opts [][2]string) string {
	var b strings.Builder
	for i, kv := range opts {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(kv[0])
		b.WriteByte('=')
		b.WriteString(strings.ReplaceAll(url.QueryEscape(kv[1]), "+", "%20"))
	}
	return b.String()
}

// dvError is an error answer of the Web API.
type dvError struct {
	status  int
	code    string
	message string
}

func (e *dvError) Error() string {
	return fmt.Sprintf("dataverse: %d %s: %s", e.status, http.StatusText(e.status), e.message)
}

func (e *dvError) aggregateLimit() bool {
	return strings.EqualFold(e.code, "0x8004E023") || strings.Contains(e.message, "AggregateQueryRecordLimit")
}

// do sends one request with a token, once more with a fresh token after
// a 401.
func (d *Dataverse) do(ctx context.Context, method, target string, body []byte, hdr map[string]string) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		tok, err := d.tok.Token(ctx)
		if err != nil {
			return nil, fmt.Errorf("dataverse: token: %v", err)
		}
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, target, rd)
		if err != nil {
			return nil, err
		}
		h := req.Header
		h.Set("Authorization", "Bearer "+tok)
		h.Set("Accept", "application/json")
		h.Set("OData-MaxVersion", "4.0")
		h.Set("OData-Version", "4.0")
		if body != nil {
			h.Set("Content-Type", "application/json; charset=utf-8")
		}
		for k, v := range hdr {
			h.Set(k, v)
		}
		resp, err := d.client.Do(req)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return nil, fmt.Errorf("dataverse: %s %s: %v", method, d.o.EntitySet, err)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("dataverse: %v", err)
		}
		if resp.StatusCode/100 == 2 {
			return b, nil
		}
		if resp.StatusCode == http.StatusUnauthorized && attempt == 0 {
			d.tok.Invalidate(tok)
			continue
		}
		e := &dvError{status: resp.StatusCode, code: gjson.GetBytes(b, "error.code").String(), message: gjson.GetBytes(b, "error.message").String()}
		if e.message == "" {
			e.message = wire.OneLine(string(b), 200)
		}
		if resp.StatusCode == http.StatusTooManyRequests {
			e.message = "Dataverse is throttling requests (Retry-After " + resp.Header.Get("Retry-After") + " s): " + e.message
		}
		return nil, e
	}
}

// maxPages bounds the pages one read follows.
const maxPages = 50

// get reads rows, following @odata.nextLink (on the same base only).
func (d *Dataverse) get(ctx context.Context, opts [][2]string, paged bool) ([]gjson.Result, error) {
	target := d.base + d.o.EntitySet + "?" + query(opts)
	var hdr map[string]string
	if paged {
		hdr = map[string]string{"Prefer": "odata.maxpagesize=5000"}
	}
	var out []gjson.Result
	for page := 0; ; page++ {
		b, err := d.do(ctx, http.MethodGet, target, nil, hdr)
		if err != nil {
			return nil, err
		}
		if !gjson.ValidBytes(b) {
			return nil, errors.New("dataverse: the answer is not JSON")
		}
		out = append(out, gjson.GetBytes(b, "value").Array()...)
		next := gjson.GetBytes(b, "@odata\\.nextLink").String()
		if next == "" || !paged {
			return out, nil
		}
		if !strings.HasPrefix(next, d.base) {
			return nil, errors.New("dataverse: @odata.nextLink points elsewhere")
		}
		if page+1 >= maxPages {
			return nil, fmt.Errorf("dataverse: more than %d pages of results", maxPages)
		}
		target = next
	}
}

// aggregate runs $apply=filter(<day range and more>)/groupby(...) over the
// range; when Dataverse refuses because more than 50,000 rows match, it
// splits the range in two and adds the halves (the groups include the
// day, so halves never share one).
func (d *Dataverse) aggregate(ctx context.Context, r Range, more []string, groupby string) ([]gjson.Result, error) {
	w := append([]string{d.p + "day ge " + lit(r.From), d.p + "day le " + lit(r.To)}, more...)
	rows, err := d.get(ctx, [][2]string{{"$apply", "filter(" + strings.Join(w, " and ") + ")/" + groupby}}, true)
	var e *dvError
	if err == nil || !errors.As(err, &e) || !e.aggregateLimit() {
		return rows, err
	}
	from, _ := time.Parse(time.DateOnly, r.From)
	to, _ := time.Parse(time.DateOnly, r.To)
	days := int(to.Sub(from).Hours()/24) + 1
	if days <= 1 {
		return nil, fmt.Errorf("%s: %w", r.From, ErrAggregateLimit)
	}
	mid := from.AddDate(0, 0, days/2-1).Format(time.DateOnly)
	a, err := d.aggregate(ctx, Range{From: r.From, To: mid}, more, groupby)
	if err != nil {
		return nil, err
	}
	b, err := d.aggregate(ctx, Range{From: from.AddDate(0, 0, days/2).Format(time.DateOnly), To: r.To}, more, groupby)
	if err != nil {
		return nil, err
	}
	return append(a, b...), nil
}

func (d *Dataverse) dims(v gjson.Result) [4]string {
	return [4]string{v.Get(d.p + "day").String(), v.Get(d.p + "team").String(), v.Get(d.p + "feature").String(), v.Get(d.p + "model").String()}
}

// Report sums usage from two $apply aggregations grouped by day, team,
// feature and model: the figures, and the count per latency bucket (the
// percentiles are read from these histograms, as with SQLite).
func (d *Dataverse) Report(ctx context.Context, q UsageQuery, groupings ...[]string) ([][]UsageRow, error) {
	if err := q.Range.Valid(); err != nil {
		return nil, err
	}
	if err := checkGroupings(groupings); err != nil {
		return nil, err
	}
	more := d.eqs(nil, "team", q.Team, "feature", q.Feature, "model", q.Model)
	p := d.p
	dims := "(" + p + "day," + p + "team," + p + "feature," + p + "model"
	sums, err := d.aggregate(ctx, q.Range, more, "groupby("+dims+"),aggregate($count as requests,"+
		p+"prompttokens with sum as prompt,"+p+"completiontokens with sum as completion,"+p+"cost with sum as cost,"+
		p+"cachehit with sum as cachehits,"+p+"filtercount with sum as filteractions,"+p+"refused with sum as refusals,"+
		p+"failed with sum as errors))")
	if err != nil {
		return nil, err
	}
	daily := make([]dailyRow, 0, len(sums))
	for _, v := range sums {
		daily = append(daily, dailyRow{dims: d.dims(v), row: UsageRow{
			Requests: v.Get("requests").Int(), PromptTokens: v.Get("prompt").Int(), CompletionTokens: v.Get("completion").Int(),
			Cost: v.Get("cost").Float(), CacheHits: v.Get("cachehits").Int(), FilterActions: v.Get("filteractions").Int(),
			Refusals: v.Get("refusals").Int(), Errors: v.Get("errors").Int(),
		}})
	}
	hist, err := d.aggregate(ctx, q.Range, more, "groupby("+dims+","+p+"latencybucket),aggregate($count as n))")
	if err != nil {
		return nil, err
	}
	lat := make([]latencyRow, 0, len(hist))
	for _, v := range hist {
		lat = append(lat, latencyRow{dims: d.dims(v), bucket: v.Get(p + "latencybucket").Int(), n: v.Get("n").Int()})
	}
	return group(groupings, daily, lat), nil
}

// Values lists the teams, features and models seen in the range.
func (d *Dataverse) Values(ctx context.Context, r Range) (map[string][]string, error) {
	if err := r.Valid(); err != nil {
		return nil, err
	}
	rows, err := d.aggregate(ctx, r, nil, "groupby(("+d.p+"team,"+d.p+"feature,"+d.p+"model))")
	if err != nil {
		return nil, err
	}
	seen := map[string]map[string]bool{"team": {}, "feature": {}, "model": {}}
	for _, v := range rows {
		for dim := range seen {
			if s := v.Get(d.p + dim).String(); s != "" {
				seen[dim][s] = true
			}
		}
	}
	return sortedValues(seen), nil
}

// dvOutcomes are the status conditions; P stands for the column prefix.
var dvOutcomes = map[string]string{
	"ok":           "Pstatus ge 200 and Pstatus lt 300",
	"refused":      "Pstatus eq 403",
	"client_error": "Pstatus ge 400 and Pstatus lt 500",
	"error":        "Pstatus ge 500",
}

// Log lists interactions newest first: $filter, $orderby time and request
// id, $top; the cursor is the last row's time and request id.
func (d *Dataverse) Log(ctx context.Context, q LogQuery) ([]LogRow, error) {
	if err := q.Range.Valid(); err != nil {
		return nil, err
	}
	if q.Limit <= 0 {
		q.Limit = 50
	}
	q.Limit = min(q.Limit, 500)
	p := d.p
	w := []string{p + "time ge " + dayStart(q.Range.From), p + "time lt " + dayStart(q.Range.end())}
	w = d.eqs(w, "team", q.Team, "feature", q.Feature, "principal", q.Principal, "model", q.Model)
	if q.Outcome != "" {
		cond, ok := dvOutcomes[q.Outcome]
		if !ok {
			return nil, fmt.Errorf("outcome %q: want ok, refused, client_error or error", q.Outcome)
		}
		w = append(w, strings.ReplaceAll(cond, "P", p))
	}
	if q.ID != "" {
		w = append(w, "("+p+"name eq "+lit(q.ID)+" or "+p+"responseid eq "+lit(q.ID)+")")
	}
	if q.Before != "" {
		ts, key, ok := strings.Cut(q.Before, "|")
		t, err := time.Parse(time.RFC3339, ts)
		if !ok || err != nil {
			return nil, errors.New("before: not a cursor this page made")
		}
		w = append(w, "("+p+"time lt "+dvTime(t)+" or ("+p+"time eq "+dvTime(t)+" and "+p+"name lt "+lit(key)+"))")
	}
	cols := []string{"name", "time", "principal", "team", "feature", "model", "policy", "status", "prompttokens", "completiontokens", "cost", "latencyms"}
	sel := make([]string, len(cols))
	for i, c := range cols {
		sel[i] = p + c
	}
	rows, err := d.get(ctx, [][2]string{{"$select", strings.Join(sel, ",")}, {"$filter", strings.Join(w, " and ")},
		{"$orderby", p + "time desc," + p + "name desc"}, {"$top", strconv.Itoa(q.Limit)}}, false)
	if err != nil {
		return nil, err
	}
	out := make([]LogRow, 0, len(rows))
	for _, v := range rows {
		t, _ := time.Parse(time.RFC3339, v.Get(p+"time").String())
		out = append(out, LogRow{
			RequestID: v.Get(p + "name").String(), Key: v.Get(p + "name").String(), Time: dvTime(t),
			Principal: v.Get(p + "principal").String(), Team: v.Get(p + "team").String(), Feature: v.Get(p + "feature").String(),
			Model: v.Get(p + "model").String(), Policy: v.Get(p + "policy").String(), Status: int(v.Get(p + "status").Int()),
			PromptTokens: v.Get(p + "prompttokens").Int(), CompletionTokens: v.Get(p + "completiontokens").Int(),
			Cost: v.Get(p + "cost").Float(), LatencyMS: v.Get(p + "latencyms").Float(),
		})
	}
	return out, nil
}

// Find looks an interaction up by request id or response id (the newest
// row when a request id was written twice).
func (d *Dataverse) Find(ctx context.Context, id string) (*Interaction, error) {
	p := d.p
	rows, err := d.get(ctx, [][2]string{
		{"$select", strings.Join([]string{d.o.KeyColumn, p + "name", p + "principal", p + "team", p + "feature", p + "model", p + "details"}, ",")},
		{"$filter", p + "name eq " + lit(id) + " or " + p + "responseid eq " + lit(id)},
		{"$orderby", p + "time desc"}, {"$top", "1"}}, false)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, ErrNotFound
	}
	v := rows[0]
	in := &Interaction{Key: v.Get(d.o.KeyColumn).String(), RequestID: v.Get(p + "name").String(), Principal: v.Get(p + "principal").String(),
		Team: v.Get(p + "team").String(), Feature: v.Get(p + "feature").String(), Model: v.Get(p + "model").String(),
		Record: v.Get(p + "details").String()}
	if in.Key == "" {
		return nil, fmt.Errorf("dataverse: the row has no %s column (set the key column)", d.o.KeyColumn)
	}
	return in, nil
}

// AddFeedback writes the rating into the feedback columns of the
// interaction's row (PATCH by its key, If-Match: * so that a missing row
// is not created). A later rating of the same answer replaces it. The
// row may not be written yet (the sink writes off the hot path): it
// waits for it a few seconds. The id it returns is always 0.
func (d *Dataverse) AddFeedback(ctx context.Context, f Feedback) (int64, error) {
	if f.RequestID == "" {
		return 0, errors.New("dataverse: feedback without a request id")
	}
	var key string
	deadline := time.Now().Add(d.feedbackWait)
	for {
		rows, err := d.get(ctx, [][2]string{{"$select", d.o.KeyColumn}, {"$filter", d.p + "name eq " + lit(f.RequestID)},
			{"$orderby", d.p + "time desc"}, {"$top", "1"}}, false)
		if err != nil {
			return 0, err
		}
		if len(rows) > 0 {
			key = rows[0].Get(d.o.KeyColumn).String()
			break
		}
		if time.Now().After(deadline) {
			return 0, &wire.Error{Status: http.StatusServiceUnavailable, Type: wire.TypeServer, Code: "feedback_unavailable",
				Message: "The answer's audit record is not in Dataverse yet; try again in a minute."}
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	if !guidRe.MatchString(key) {
		return 0, fmt.Errorf("dataverse: row key %q is not a GUID", wire.OneLine(key, 60))
	}
	p := d.p
	b := []byte{'{'}
	b = wire.AppendString(b, p+"feedbackrating")
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(f.Rating), 10)
	b = append(b, ',')
	b = wire.AppendString(b, p+"feedbackscore")
	b = append(b, ':')
	if f.Score != nil {
		b = strconv.AppendFloat(b, *f.Score, 'f', -1, 64)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, ',')
	b = wire.AppendString(b, p+"feedbackcomment")
	b = append(b, ':')
	if f.Comment != "" {
		b = wire.AppendString(b, f.Comment)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, ',')
	b = wire.AppendString(b, p+"feedbackby")
	b = append(b, ':')
	b = wire.AppendString(b, f.Principal)
	b = append(b, ',')
	b = wire.AppendString(b, p+"feedbackon")
	b = append(b, ':')
	b = wire.AppendString(b, dvTime(f.Time))
	b = append(b, '}')
	_, err := d.do(ctx, http.MethodPatch, d.base+d.o.EntitySet+"("+key+")", b, map[string]string{"If-Match": "*"})
	if err != nil {
		return 0, err
	}
	return 0, nil
}

// FeedbackFor returns the rating stored on the interaction's row, if any.
func (d *Dataverse) FeedbackFor(ctx context.Context, _ int64, requestID string) ([]Feedback, error) {
	p := d.p
	rows, err := d.get(ctx, [][2]string{
		{"$select", strings.Join([]string{p + "name", p + "responseid", p + "team", p + "feature", p + "model", p + "feedbackrating",
			p + "feedbackscore", p + "feedbackcomment", p + "feedbackby", p + "feedbackon"}, ",")},
		{"$filter", p + "name eq " + lit(requestID) + " and " + p + "feedbackon ne null"},
		{"$orderby", p + "time desc"}, {"$top", "1"}}, false)
	if err != nil {
		return nil, err
	}
	var out []Feedback
	for _, v := range rows {
		t, _ := time.Parse(time.RFC3339, v.Get(p+"feedbackon").String())
		f := Feedback{RequestID: v.Get(p + "name").String(), ResponseID: v.Get(p + "responseid").String(), Time: t,
			Principal: v.Get(p + "feedbackby").String(), Team: v.Get(p + "team").String(), Feature: v.Get(p + "feature").String(),
			Model: v.Get(p + "model").String(), Rating: int(v.Get(p + "feedbackrating").Int()), Comment: v.Get(p + "feedbackcomment").String()}
		if s := v.Get(p + "feedbackscore"); s.Type == gjson.Number {
			x := s.Float()
			f.Score = &x
		}
		out = append(out, f)
	}
	return out, nil
}

// FeedbackSummary sums the rated interactions by feature and team, from
// three aggregations: counts per rating, the mean score of the ratings
// with one, and the count of those with a comment.
func (d *Dataverse) FeedbackSummary(ctx context.Context, r Range, filters ...string) ([]FeedbackRow, error) {
	if err := r.Valid(); err != nil {
		return nil, err
	}
	p := d.p
	w := []string{p + "feedbackon ge " + dayStart(r.From), p + "feedbackon lt " + dayStart(r.end())}
	var f [3]string
	copy(f[:], filters)
	w = d.eqs(w, "team", f[0], "feature", f[1], "model", f[2])
	gb := "groupby((" + p + "feature," + p + "team"
	apply := func(extra, group string) ([]gjson.Result, error) {
		ww := w
		if extra != "" {
			ww = append(append([]string(nil), w...), extra)
		}
		return d.get(ctx, [][2]string{{"$apply", "filter(" + strings.Join(ww, " and ") + ")/" + group}}, true)
	}
	byRating, err := apply("", gb+","+p+"feedbackrating),aggregate($count as n))")
	if err != nil {
		return nil, err
	}
	scores, err := apply(p+"feedbackscore ne null", gb+"),aggregate("+p+"feedbackscore with average as avg))")
	if err != nil {
		return nil, err
	}
	comments, err := apply(p+"feedbackcomment ne null", gb+"),aggregate($count as n))")
	if err != nil {
		return nil, err
	}
	rows := map[[2]string]*FeedbackRow{}
	at := func(v gjson.Result) *FeedbackRow {
		k := [2]string{v.Get(p + "feature").String(), v.Get(p + "team").String()}
		if rows[k] == nil {
			rows[k] = &FeedbackRow{Feature: k[0], Team: k[1]}
		}
		return rows[k]
	}
	for _, v := range byRating {
		fr, n := at(v), v.Get("n").Int()
		fr.Count += n
		switch rt := v.Get(p + "feedbackrating").Int(); {
		case rt > 0:
			fr.Up += n
		case rt < 0:
			fr.Down += n
		}
	}
	for _, v := range scores {
		if a := v.Get("avg"); a.Type == gjson.Number {
			x := a.Float()
			at(v).AvgScore = &x
		}
	}
	for _, v := range comments {
		at(v).Comments += v.Get("n").Int()
	}
	out := make([]FeedbackRow, 0, len(rows))
	for _, fr := range rows {
		out = append(out, *fr)
	}
	sortFeedback(out)
	return out, nil
}
