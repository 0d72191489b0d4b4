package analytics

import (
	"context"
	"encoding/json"
	"math"
	"strings"
)

// Backend is what the admin console reads: the SQLite audit database (DB)
// or the Dataverse audit table (Dataverse).
type Backend interface {
	// Report sums usage per group, for several groupings at once.
	Report(ctx context.Context, q UsageQuery, groupings ...[]string) ([][]UsageRow, error)
	// Values lists the teams, features and models seen in the range.
	Values(ctx context.Context, r Range) (map[string][]string, error)
	// Log lists interactions newest first, one page.
	Log(ctx context.Context, q LogQuery) ([]LogRow, error)
	// Find looks an interaction up by request id or response id.
	Find(ctx context.Context, id string) (*Interaction, error)
	// AddFeedback stores a rating joined to its interaction.
	AddFeedback(ctx context.Context, f Feedback) (int64, error)
	// FeedbackFor lists an interaction's feedback.
	FeedbackFor(ctx context.Context, auditID int64, requestID string) ([]Feedback, error)
	// FeedbackSummary sums feedback by feature and team.
	FeedbackSummary(ctx context.Context, r Range, filters ...string) ([]FeedbackRow, error)
}

var (
	_ Backend = (*DB)(nil)
	_ Backend = (*Dataverse)(nil)
)

// LatencyBucket is the latency histogram bucket of ms (0 to 100), as the
// SQLite rollup computes it: bucket b ≥ 1 holds (1.25^(b-1), 1.25^b] ms.
func LatencyBucket(ms float64) int {
	if math.IsNaN(ms) || ms <= 1 {
		return 0
	}
	return min(int(math.Log(ms)/math.Log(latencyBase))+1, 100)
}

// Refused reports whether an interaction counts as refused: the gateway
// refused it (403: policy, feature switch, budget) or a filter blocked it
// (status 400 or 200 with a "block" filter action). filterActions is the
// interaction's filter_actions JSON ("" for none).
func Refused(status int, filterActions string) bool {
	return status == 403 || ((status == 400 || status == 200) && strings.Contains(filterActions, `"action":"block"`))
}

// FilterActionCount counts the entries of a filter_actions JSON array.
func FilterActionCount(filterActions string) int {
	if filterActions == "" {
		return 0
	}
	var a []json.RawMessage
	if json.Unmarshal([]byte(filterActions), &a) != nil {
		return 0
	}
	return len(a)
}
