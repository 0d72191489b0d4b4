package analytics_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/groundgate/groundgate/analytics"
	"github.com/groundgate/groundgate/analytics/auditgen"
)

// benchDB opens the benchmark's audit database: GG_ANALYTICS_DB if set,
// else one of GG_ANALYTICS_ROWS interactions (default 1,000,000 over 90
// days) made once by auditgen and kept in the user cache directory (it
// takes a few minutes to make; about 1.6 GB).
func benchDB(b *testing.B) (*analytics.DB, time.Time) {
	b.Helper()
	ctx := context.Background()
	path := os.Getenv("GG_ANALYTICS_DB")
	rows := 1000000
	if v := os.Getenv("GG_ANALYTICS_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatalf("GG_ANALYTICS_ROWS: %v", err)
		}
		rows = n
	}
	if path == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			dir = os.TempDir()
		}
		path = filepath.Join(dir, "groundgate", fmt.Sprintf("analytics-bench-%d.db", rows))
		if _, err := os.Stat(path); err != nil {
			b.Logf("making %d interactions in %s (once)", rows, path)
			tmp := path + ".tmp"
			os.Remove(tmp)
			if err := auditgen.Generate(ctx, auditgen.Options{Path: tmp, Rows: rows, Days: 90, End: end, Seed: 1}); err != nil {
				b.Fatal(err)
			}
			a, err := analytics.Open(ctx, tmp, "")
			if err != nil {
				b.Fatal(err)
			}
			a.Close()
			if err := os.Rename(tmp, path); err != nil {
				b.Fatal(err)
			}
			os.Remove(tmp + "-wal")
			os.Remove(tmp + "-shm")
		}
	}
	a, err := analytics.Open(ctx, path, "")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.Close() })
	var n int64
	var last string
	if err := a.SQL().QueryRow(`SELECT count(*), max(time) FROM audit`).Scan(&n, &last); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d interactions", n)
	lt, _ := time.Parse(time.RFC3339Nano, last)
	return a, lt
}

// BenchmarkCostPage runs the usage page's queries for 30 days: the
// totals, and figures by day, team, feature and model.
func BenchmarkCostPage(b *testing.B) {
	a, last := benchDB(b)
	ctx := context.Background()
	r := analytics.LastDays(30, last)
	b.ResetTimer()
	for b.Loop() {
		if _, err := a.Report(ctx, analytics.UsageQuery{Range: r}, nil, []string{"day"}, []string{"team"}, []string{"feature"}, []string{"model"}); err != nil {
			b.Fatal(err)
		}
		if _, err := a.Values(ctx, analytics.LastDays(90, last)); err != nil { // the filter choices
			b.Fatal(err)
		}
	}
}

// BenchmarkCostPageFiltered is the same for one team and the whole 90 days.
func BenchmarkCostPageFiltered(b *testing.B) {
	a, last := benchDB(b)
	ctx := context.Background()
	r := analytics.LastDays(90, last)
	b.ResetTimer()
	for b.Loop() {
		if _, err := a.Report(ctx, analytics.UsageQuery{Range: r, Team: "billing"}, nil, []string{"day"}, []string{"feature"}, []string{"model"}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuditLogPage lists a page of the audit log, unfiltered and
// filtered as the console's form allows.
func BenchmarkAuditLogPage(b *testing.B) {
	a, last := benchDB(b)
	ctx := context.Background()
	r := analytics.LastDays(30, last)
	for _, q := range []struct {
		name string
		q    analytics.LogQuery
	}{
		{"all", analytics.LogQuery{Range: r}},
		{"team", analytics.LogQuery{Range: r, Team: "field-service"}},
		{"team+feature+refused", analytics.LogQuery{Range: r, Team: "sales", Feature: "draft_email", Outcome: "refused"}},
		{"principal", analytics.LogQuery{Range: r, Principal: "billing-agent-2"}},
		{"model+error", analytics.LogQuery{Range: analytics.LastDays(90, last), Model: "gpt-4o", Outcome: "error"}},
		{"id", analytics.LogQuery{Range: analytics.LastDays(90, last), ID: "chatcmpl-0000000000000000"}},
	} {
		b.Run(q.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := a.Log(ctx, q.q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkStory loads one interaction's record and feedback by response id.
func BenchmarkStory(b *testing.B) {
	a, _ := benchDB(b)
	ctx := context.Background()
	var id string
	if err := a.SQL().QueryRow(`SELECT response_id FROM audit_response_ids LIMIT 1 OFFSET 500000`).Scan(&id); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		in, err := a.Find(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := a.FeedbackFor(ctx, in.ID, in.RequestID); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFeedbackPage sums feedback by feature and team over 30 days.
func BenchmarkFeedbackPage(b *testing.B) {
	a, last := benchDB(b)
	ctx := context.Background()
	r := analytics.LastDays(30, last)
	b.ResetTimer()
	for b.Loop() {
		if _, err := a.FeedbackSummary(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
}
