package analytics_test

import (
	"context"
	"math"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/groundgate/groundgate/analytics"
	"github.com/groundgate/groundgate/analytics/auditgen"
)

var end = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// open makes a database of n interactions over days, half of them written
// before Open (the backfill) and half after (the trigger).
func open(t *testing.T, n, days int) *analytics.DB {
	t.Helper()
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "audit.db")
	if err := auditgen.Generate(ctx, auditgen.Options{Path: p, Rows: n / 2, Days: days, End: end.Add(-time.Duration(days) * 12 * time.Hour), Seed: 1}); err != nil {
		t.Fatal(err)
	}
	a, err := analytics.Open(ctx, p, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if err := auditgen.Generate(ctx, auditgen.Options{Path: p, Rows: n - n/2, Days: days, End: end, Seed: 2}); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestUsageMatchesRawRows(t *testing.T) {
	a := open(t, 4000, 10)
	ctx := context.Background()
	r := analytics.Range{From: "2026-11-15", To: "2026-11-30"}
	got, err := a.Usage(ctx, analytics.UsageQuery{Range: r, GroupBy: []string{"team", "feature"}})
	if err != nil {
		t.Fatal(err)
	}
	rows, err := a.SQL().QueryContext(ctx, `SELECT team, coalesce(feature, ''), count(*), sum(prompt_tokens), sum(completion_tokens), sum(cost),
		sum(coalesce(json_extract(record, '$.cache_hit'), 0)), sum(coalesce(json_array_length(filter_actions), 0)),
		sum(status = 403 OR (status = 400 AND filter_actions LIKE '%block%')), sum(status >= 500)
		FROM audit WHERE time >= '2026-11-15' AND time < '2026-12-01' GROUP BY 1, 2`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	want := map[[2]string][8]float64{}
	for rows.Next() {
		var team, feature string
		var v [8]float64
		if err := rows.Scan(&team, &feature, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]); err != nil {
			t.Fatal(err)
		}
		want[[2]string{team, feature}] = v
	}
	if len(got) != len(want) || len(got) == 0 {
		t.Fatalf("got %d groups, want %d", len(got), len(want))
	}
	var total int64
	for _, g := range got {
		w := want[[2]string{g.Key["team"], g.Key["feature"]}]
		have := [8]float64{float64(g.Requests), float64(g.PromptTokens), float64(g.CompletionTokens), g.Cost,
			float64(g.CacheHits), float64(g.FilterActions), float64(g.Refusals), float64(g.Errors)}
		for i := range have {
			if math.Abs(have[i]-w[i]) > 1e-6 {
				t.Errorf("%v field %d: rollup %v, rows %v", g.Key, i, have[i], w[i])
			}
		}
		total += g.Requests
	}
	vals, err := a.Values(ctx, r)
	if err != nil || len(vals["team"]) != 5 || len(vals["model"]) != 2 || len(vals["feature"]) != 5 {
		t.Errorf("values: %v %v", vals, err)
	}
	if total != 4000 {
		t.Errorf("%d requests in the rollups, want 4000", total)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Cost > got[i-1].Cost {
			t.Fatal("not sorted by cost")
		}
	}
}

func TestPercentilesWithinBucketError(t *testing.T) {
	a := open(t, 3000, 5)
	ctx := context.Background()
	r := analytics.Range{From: "2026-11-01", To: "2026-11-30"}
	got, err := a.Usage(ctx, analytics.UsageQuery{Range: r, Team: "support"})
	if err != nil || len(got) != 1 {
		t.Fatalf("%v %v", got, err)
	}
	rows, err := a.SQL().QueryContext(ctx, `SELECT latency_ms FROM audit WHERE team = 'support' ORDER BY latency_ms`)
	if err != nil {
		t.Fatal(err)
	}
	var lat []float64
	for rows.Next() {
		var v float64
		rows.Scan(&v)
		lat = append(lat, v)
	}
	rows.Close()
	sort.Float64s(lat)
	for _, c := range []struct {
		q   float64
		got float64
	}{{0.5, got[0].P50}, {0.95, got[0].P95}, {0.99, got[0].P99}} {
		exact := lat[int(math.Ceil(c.q*float64(len(lat))))-1]
		if c.got < exact/1.12 || c.got > exact*1.12 {
			t.Errorf("p%v: %v, exact %v", c.q*100, c.got, exact)
		}
	}
}

func TestLogFiltersAndPages(t *testing.T) {
	a := open(t, 3000, 5)
	ctx := context.Background()
	r := analytics.Range{From: "2026-11-01", To: "2026-11-30"}
	seen := map[int64]bool{}
	q := analytics.LogQuery{Range: r, Team: "billing", Outcome: "refused", Limit: 7}
	var n int
	for page := 0; page < 100; page++ {
		rows, err := a.Log(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for i, row := range rows {
			if row.Team != "billing" || row.Status != 403 {
				t.Fatalf("row does not match the filter: %+v", row)
			}
			if seen[row.ID] {
				t.Fatalf("row %d on two pages", row.ID)
			}
			seen[row.ID] = true
			if i > 0 && row.Time > rows[i-1].Time {
				t.Fatal("not newest first")
			}
		}
		n += len(rows)
		if len(rows) < q.Limit {
			break
		}
		q.Before = rows[len(rows)-1].Cursor()
	}
	var want int
	a.SQL().QueryRow(`SELECT count(*) FROM audit WHERE team = 'billing' AND status = 403`).Scan(&want)
	if n != want || n == 0 {
		t.Fatalf("paged %d rows, want %d", n, want)
	}
	// By response id and by request id.
	var reqID, respID string
	a.SQL().QueryRow(`SELECT request_id, json_extract(record, '$.response_id') FROM audit WHERE status = 200 LIMIT 1 OFFSET 2500`).Scan(&reqID, &respID)
	for _, id := range []string{reqID, respID} {
		rows, err := a.Log(ctx, analytics.LogQuery{Range: r, ID: id})
		if err != nil || len(rows) != 1 || rows[0].RequestID != reqID {
			t.Fatalf("by id %s: %+v %v", id, rows, err)
		}
		in, err := a.Find(ctx, id)
		if err != nil || in.RequestID != reqID {
			t.Fatalf("find %s: %+v %v", id, in, err)
		}
	}
	if _, err := a.Find(ctx, "chatcmpl-nope"); err != analytics.ErrNotFound {
		t.Fatalf("find unknown: %v", err)
	}
	if _, err := a.Log(ctx, analytics.LogQuery{Range: analytics.Range{From: "2026-13-01", To: "2026-11-30"}}); err == nil {
		t.Fatal("bad date accepted")
	}
}

func TestFeedbackSummary(t *testing.T) {
	a := open(t, 200, 2)
	ctx := context.Background()
	in, err := a.Find(ctx, firstRequestID(t, a))
	if err != nil {
		t.Fatal(err)
	}
	half := 0.5
	for i, f := range []analytics.Feedback{{Rating: 1}, {Rating: -1, Comment: "wrong warranty"}, {Score: &half}} {
		f.AuditID, f.RequestID, f.Principal, f.Team, f.Feature = in.ID, in.RequestID, in.Principal, in.Team, in.Feature
		f.Time = end.Add(-time.Duration(i) * time.Minute)
		if _, err := a.AddFeedback(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := a.FeedbackSummary(ctx, analytics.Range{From: "2026-11-30", To: "2026-11-30"})
	if err != nil || len(sum) != 1 {
		t.Fatalf("%+v %v", sum, err)
	}
	s := sum[0]
	if s.Feature != in.Feature || s.Team != in.Team || s.Count != 3 || s.Up != 1 || s.Down != 1 || s.Comments != 1 || s.AvgScore == nil || *s.AvgScore != 0.5 {
		t.Fatalf("%+v", s)
	}
	if other, err := a.FeedbackSummary(ctx, analytics.Range{From: "2026-11-30", To: "2026-11-30"}, "no-such-team"); err != nil || len(other) != 0 {
		t.Fatalf("filtered by team: %+v %v", other, err)
	}
	if same, err := a.FeedbackSummary(ctx, analytics.Range{From: "2026-11-30", To: "2026-11-30"}, in.Team, in.Feature); err != nil || len(same) != 1 {
		t.Fatalf("filtered by team and feature: %+v %v", same, err)
	}
	fb, err := a.FeedbackFor(ctx, in.ID, in.RequestID)
	if err != nil || len(fb) != 3 || fb[1].Comment != "wrong warranty" {
		t.Fatalf("%+v %v", fb, err)
	}
}

func firstRequestID(t *testing.T, a *analytics.DB) string {
	var id string
	if err := a.SQL().QueryRow(`SELECT request_id FROM audit ORDER BY id LIMIT 1`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}
