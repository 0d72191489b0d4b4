package analytics_test

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/groundgate/groundgate/analytics"
	"github.com/groundgate/groundgate/analytics/auditgen"
	"github.com/groundgate/groundgate/analytics/dvfake"
	"github.com/groundgate/groundgate/entra"
	"github.com/groundgate/groundgate/plugins/post/audit"
	"github.com/groundgate/groundgate/post"
)

// dvColumns are the audit table's columns with the analytics ones and
// the feedback ones.
var dvColumns = func() []string {
	var out []string
	for _, c := range strings.Fields(`name time principal team policy policyversion feature model upstream error status
		prompttokens completiontokens cost latencyms records articles deniedrecords filteractions details
		day responseid latencybucket cachehit refused failed filtercount
		feedbackrating feedbackscore feedbackcomment feedbackby feedbackon`) {
		out = append(out, "gg_"+c)
	}
	return out
}()

func newFake(t *testing.T) *dvfake.Server {
	return dvfake.New(t, "gg_audits", "gg_auditid", dvColumns)
}

func dvBackend(t *testing.T, f *dvfake.Server) *analytics.Dataverse {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	d, err := analytics.OpenDataverse(analytics.DataverseOptions{URL: f.URL, EntitySet: "gg_audits", Client: client,
		Token: entra.New(f.TokenURL(), dvfake.ClientID, dvfake.Secret, f.URL+"/.default", client)})
	if err != nil {
		t.Fatal(err)
	}
	d.SetFeedbackWait(300 * time.Millisecond)
	return d
}

// writeThroughSink sends the interactions through the real Dataverse
// audit sink (analytics columns on) into the fake.
func writeThroughSink(t *testing.T, f *dvfake.Server, ins []*post.Interaction) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	a := &audit.Audit{Dataverse: &audit.Dataverse{URL: f.URL, EntitySet: "gg_audits", ClientID: dvfake.ClientID,
		ClientSecret: dvfake.Secret, TokenURL: f.TokenURL(), Analytics: true}, RetryMin: caddy.Duration(time.Millisecond)}
	if err := a.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	for _, in := range ins {
		a.Record(in)
	}
	if err := a.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if st := a.Stats(); st.Written != int64(len(ins)) {
		t.Fatalf("sink stats %+v, want %d written", st, len(ins))
	}
}

// twin makes the same interactions in a SQLite audit database and, through
// the Dataverse sink, in the fake Dataverse table.
func twin(t *testing.T, n, days int) (*analytics.DB, *analytics.Dataverse, *dvfake.Server, []*post.Interaction) {
	t.Helper()
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "audit.db")
	if err := auditgen.Generate(ctx, auditgen.Options{Path: p, Rows: n, Days: days, End: end, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	db, err := analytics.Open(ctx, p, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	rows, err := db.SQL().QueryContext(ctx, `SELECT record FROM audit ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var ins []*post.Interaction
	for rows.Next() {
		var rec string
		in := new(post.Interaction)
		if err := rows.Scan(&rec); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(rec), in); err != nil {
			t.Fatal(err)
		}
		ins = append(ins, in)
	}
	rows.Close()
	f := newFake(t)
	writeThroughSink(t, f, ins)
	return db, dvBackend(t, f), f, ins
}

func sameUsage(t *testing.T, what string, sq, dv []analytics.UsageRow) {
	t.Helper()
	if len(sq) != len(dv) || len(sq) == 0 {
		t.Fatalf("%s: %d rows from SQLite, %d from Dataverse", what, len(sq), len(dv))
	}
	for i := range sq {
		a, b := sq[i], dv[i]
		if math.Abs(a.Cost-b.Cost) > 1e-9 {
			t.Errorf("%s %v: cost %v vs %v", what, a.Key, a.Cost, b.Cost)
		}
		a.Cost, b.Cost = 0, 0
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s row %d:\n sqlite    %+v\n dataverse %+v", what, i, a, b)
		}
	}
}

// The Dataverse backend's figures equal the SQLite rollups' for the same
// interactions: sums, refusals, cache hits, filter actions, errors and
// latency percentiles, by day, team, feature and model, filtered or not.
func TestDataverseUsageMatchesSQLite(t *testing.T) {
	db, dv, f, _ := twin(t, 1500, 6)
	ctx := context.Background()
	r := analytics.Range{From: "2026-11-25", To: "2026-11-30"}
	for _, q := range []analytics.UsageQuery{{Range: r}, {Range: r, Team: "billing"}, {Range: r, Feature: "draft_email", Model: "gpt-4o"},
		{Range: analytics.Range{From: "2026-11-27", To: "2026-11-28"}}} {
		groupings := [][]string{nil, {"day"}, {"team"}, {"feature"}, {"model"}, {"team", "feature"}}
		want, err := db.Report(ctx, q, groupings...)
		if err != nil {
			t.Fatal(err)
		}
		got, err := dv.Report(ctx, q, groupings...)
		if err != nil {
			t.Fatal(err)
		}
		for i := range groupings {
			sameUsage(t, q.Range.From+" "+q.Team+q.Feature+" by "+strings.Join(groupings[i], ","), want[i], got[i])
		}
	}
	wv, _ := db.Values(ctx, r)
	gv, err := dv.Values(ctx, r)
	if err != nil || !reflect.DeepEqual(wv, gv) {
		t.Errorf("values: %v %v, want %v", gv, err, wv)
	}
	// The aggregation is Dataverse's own ($apply), not rows fetched and
	// summed here.
	var applies int
	for _, q := range f.Requests() {
		if strings.Contains(q, "$apply=filter") {
			applies++
		}
		if strings.Contains(q, "GET") && !strings.Contains(q, "$apply") {
			t.Errorf("usage read rows: %s", dvfake.Decode(q))
		}
	}
	if applies == 0 {
		t.Error("no $apply request")
	}
	if _, err := dv.Report(ctx, analytics.UsageQuery{Range: r}, []string{"week"}); err == nil {
		t.Error("grouping by week accepted")
	}
}

// More rows than Dataverse aggregates at once: the range is split by
// days, and the sums still add up; one day over the limit is an error
// that says what to do.
func TestDataverseAggregateLimit(t *testing.T) {
	db, dv, f, _ := twin(t, 800, 4)
	ctx := context.Background()
	r := analytics.Range{From: "2026-11-27", To: "2026-11-30"}
	want, err := db.Report(ctx, analytics.UsageQuery{Range: r}, nil, []string{"day"})
	if err != nil {
		t.Fatal(err)
	}
	f.AggregateLimit = 300 // a day has about 200
	got, err := dv.Report(ctx, analytics.UsageQuery{Range: r}, nil, []string{"day"})
	if err != nil {
		t.Fatal(err)
	}
	sameUsage(t, "total", want[0], got[0])
	sameUsage(t, "by day", want[1], got[1])
	f.AggregateLimit = 100
	_, err = dv.Report(ctx, analytics.UsageQuery{Range: r}, nil)
	if err == nil || !strings.Contains(err.Error(), "50,000") {
		t.Fatalf("over the limit: %v", err)
	}
}

// The audit log: filters, newest first, pages by cursor with no row lost
// or repeated, and one interaction by request id or response id.
func TestDataverseLogAndFind(t *testing.T) {
	db, dv, _, ins := twin(t, 600, 3)
	ctx := context.Background()
	r := analytics.Range{From: "2026-11-28", To: "2026-11-30"}
	for _, q := range []analytics.LogQuery{{Range: r, Team: "support"}, {Range: r, Outcome: "refused"}, {Range: r, Outcome: "ok", Model: "gpt-4o-mini"},
		{Range: r, Outcome: "client_error"}, {Range: r, Outcome: "error"}} {
		q.Limit = 500
		want, err := db.Log(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var got []analytics.LogRow
		q.Limit = 7
		for range 200 {
			page, err := dv.Log(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, page...)
			if len(page) < q.Limit {
				break
			}
			q.Before = page[len(page)-1].Cursor()
		}
		if len(got) != len(want) || len(want) == 0 {
			t.Fatalf("%+v: %d rows, want %d", q, len(got), len(want))
		}
		seen := map[string]bool{}
		for i, g := range got {
			if seen[g.RequestID] {
				t.Fatalf("%s twice", g.RequestID)
			}
			seen[g.RequestID] = true
			if i > 0 && got[i-1].Time < g.Time {
				t.Fatalf("not newest first at %d", i)
			}
		}
		for _, w := range want {
			if !seen[w.RequestID] {
				t.Errorf("%+v: %s missing", q, w.RequestID)
			}
		}
	}
	if _, err := dv.Log(ctx, analytics.LogQuery{Range: r, Outcome: "maybe"}); err == nil {
		t.Error("unknown outcome accepted")
	}
	if _, err := dv.Log(ctx, analytics.LogQuery{Range: r, Before: "garbage"}); err == nil {
		t.Error("bad cursor accepted")
	}
	var in *post.Interaction
	for _, x := range ins {
		if x.ResponseID != "" && strings.Contains(x.Principal, "") {
			in = x
			break
		}
	}
	for _, id := range []string{in.RequestID, in.ResponseID} {
		got, err := dv.Find(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.RequestID != in.RequestID || got.Principal != in.Principal || got.Key == "" {
			t.Errorf("find %s: %+v", id, got)
		}
		var rec post.Interaction
		if err := json.Unmarshal([]byte(got.Record), &rec); err != nil || rec.RequestID != in.RequestID {
			t.Errorf("record %v %q", err, got.Record[:min(80, len(got.Record))])
		}
		rows, err := dv.Log(ctx, analytics.LogQuery{Range: analytics.Range{From: "2026-11-01", To: "2026-11-30"}, ID: id})
		if err != nil || len(rows) != 1 || rows[0].RequestID != in.RequestID {
			t.Errorf("log by id %s: %v %v", id, rows, err)
		}
	}
	if _, err := dv.Find(ctx, "it's-not-there"); err != analytics.ErrNotFound {
		t.Errorf("missing id: %v", err)
	}
}

// Feedback is written into the interaction's row by its key, read back,
// replaced by a later rating, and summed by feature and team.
func TestDataverseFeedback(t *testing.T) {
	f := newFake(t)
	dv := dvBackend(t, f)
	ctx := context.Background()
	day := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	var ins []*post.Interaction
	for i, team := range []string{"support", "support", "billing", "support"} {
		ins = append(ins, &post.Interaction{RequestID: "req-" + string(rune('a'+i)), ResponseID: "chatcmpl-" + string(rune('a'+i)),
			Time: day, Principal: "agent-" + team, Team: team, Feature: "ask_question", Model: "gpt-4o", Status: 200, LatencyMS: 40})
	}
	writeThroughSink(t, f, ins)
	score := 0.8
	add := func(i, rating int, score *float64, comment string) {
		t.Helper()
		in, err := dv.Find(ctx, ins[i].ResponseID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dv.AddFeedback(ctx, analytics.Feedback{RequestID: in.RequestID, ResponseID: ins[i].ResponseID, Time: day.Add(time.Hour),
			Principal: in.Principal, Team: in.Team, Feature: in.Feature, Model: in.Model, Rating: rating, Score: score, Comment: comment}); err != nil {
			t.Fatal(err)
		}
	}
	add(0, -1, nil, "wrong case")
	add(0, 1, &score, "it's right after all") // replaces the first
	add(1, -1, nil, "")
	add(2, 1, nil, "")
	fb, err := dv.FeedbackFor(ctx, 0, "req-a")
	if err != nil || len(fb) != 1 || fb[0].Rating != 1 || fb[0].Score == nil || *fb[0].Score != 0.8 ||
		fb[0].Comment != "it's right after all" || fb[0].Principal != "agent-support" || !fb[0].Time.Equal(day.Add(time.Hour)) {
		t.Fatalf("feedback for req-a: %+v %v", fb, err)
	}
	if fb, err := dv.FeedbackFor(ctx, 0, "req-d"); err != nil || len(fb) != 0 {
		t.Errorf("unrated: %+v %v", fb, err)
	}
	sum, err := dv.FeedbackSummary(ctx, analytics.Range{From: "2026-11-29", To: "2026-11-29"})
	if err != nil {
		t.Fatal(err)
	}
	want := []analytics.FeedbackRow{{Feature: "ask_question", Team: "billing", Count: 1, Up: 1}, {Feature: "ask_question", Team: "support", Count: 2, Up: 1, Down: 1, AvgScore: &score, Comments: 1}}
	if !reflect.DeepEqual(sum, want) {
		t.Errorf("summary %+v, want %+v", sum, want)
	}
	if sum, err := dv.FeedbackSummary(ctx, analytics.Range{From: "2026-11-29", To: "2026-11-29"}, "billing"); err != nil || len(sum) != 1 || sum[0].Team != "billing" {
		t.Errorf("billing only: %+v %v", sum, err)
	}
	if sum, err := dv.FeedbackSummary(ctx, analytics.Range{From: "2026-11-30", To: "2026-11-30"}); err != nil || len(sum) != 0 {
		t.Errorf("next day: %+v %v", sum, err)
	}
	// The PATCH names the row by key and never creates one.
	var patches int
	for _, q := range f.Requests() {
		if strings.HasPrefix(q, "PATCH /api/data/v9.2/gg_audits(") {
			patches++
		}
	}
	if patches != 4 || len(f.Rows()) != 4 {
		t.Errorf("%d PATCH requests, %d rows", patches, len(f.Rows()))
	}
	// An interaction not in Dataverse (yet): a 503 to try again.
	_, err = dv.AddFeedback(ctx, analytics.Feedback{RequestID: "req-unknown", Time: day, Principal: "x", Rating: 1})
	if err == nil || !strings.Contains(err.Error(), "not in Dataverse yet") {
		t.Errorf("missing row: %v", err)
	}
}

func TestOpenDataverseChecks(t *testing.T) {
	f := newFake(t)
	tok := entra.New(f.TokenURL(), dvfake.ClientID, dvfake.Secret, "s", nil)
	for _, o := range []analytics.DataverseOptions{
		{URL: "http://example.com", EntitySet: "gg_audits", Token: tok},
		{URL: f.URL, EntitySet: "gg audits", Token: tok},
		{URL: f.URL, EntitySet: "gg_audits"},
	} {
		if _, err := analytics.OpenDataverse(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	// A wrong secret: the error says so and names no secret.
	client := &http.Client{}
	d, err := analytics.OpenDataverse(analytics.DataverseOptions{URL: f.URL, EntitySet: "gg_audits", Client: client,
		Token: entra.New(f.TokenURL(), dvfake.ClientID, "wrong-secret", "s", client)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.Values(context.Background(), analytics.LastDays(1, time.Now()))
	if err == nil || strings.Contains(err.Error(), "wrong-secret") {
		t.Errorf("bad credentials: %v", err)
	}
}

// A token Dataverse no longer accepts is dropped and a fresh one fetched
// once; throttling (429) is an error saying when to come back.
func TestDataverseTokenAndThrottling(t *testing.T) {
	f := newFake(t)
	dv := dvBackend(t, f)
	ctx := context.Background()
	r := analytics.LastDays(1, time.Now())
	if _, err := dv.Values(ctx, r); err != nil {
		t.Fatal(err)
	}
	f.RotateToken()
	if _, err := dv.Values(ctx, r); err != nil {
		t.Fatalf("after the token changed: %v", err)
	}
	f.Throttle(1)
	_, err := dv.Log(ctx, analytics.LogQuery{Range: r})
	if err == nil || !strings.Contains(err.Error(), "429") || !strings.Contains(err.Error(), "Retry-After 7") {
		t.Fatalf("throttled: %v", err)
	}
	if _, err := dv.Log(ctx, analytics.LogQuery{Range: r}); err != nil {
		t.Fatalf("after throttling: %v", err)
	}
}
