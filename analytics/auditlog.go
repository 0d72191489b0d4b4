package analytics

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// LogQuery filters the audit log. Empty fields do not filter.
type LogQuery struct {
	Range                           Range
	Team, Feature, Principal, Model string
	// Outcome: "ok" (2xx), "refused" (403), "client_error" (4xx), "error" (5xx).
	Outcome string
	// ID finds one interaction by request id or response id.
	ID string
	// Before pages on: interactions older than this row (its Cursor).
	Before string
	Limit  int // default 50, at most 500
}

// LogRow is one interaction in the list.
type LogRow struct {
	ID               int64
	RequestID        string
	Time             string
	Principal, Team  string
	Feature, Model   string
	Policy           string
	Status           int
	PromptTokens     int64
	CompletionTokens int64
	Cost             float64
	LatencyMS        float64
	// Key, with the Dataverse backend, is the row's request id, the
	// tie-breaker of its cursor (ID is 0 there).
	Key string
}

// Cursor is the Before value of the page after this row.
func (r LogRow) Cursor() string {
	if r.Key != "" {
		return r.Time + "|" + r.Key
	}
	return fmt.Sprintf("%s|%d", r.Time, r.ID)
}

var outcomes = map[string]string{
	"ok":           "status >= 200 AND status < 300",
	"refused":      "status = 403",
	"client_error": "status >= 400 AND status < 500",
	"error":        "status >= 500",
}

// Log lists interactions newest first, one page.
func (a *DB) Log(ctx context.Context, q LogQuery) ([]LogRow, error) {
	if err := q.Range.Valid(); err != nil {
		return nil, err
	}
	if q.Limit <= 0 {
		q.Limit = 50
	}
	q.Limit = min(q.Limit, 500)
	w := []string{"time >= ?", "time < ?"}
	args := []any{q.Range.From, q.Range.end()}
	for _, f := range []struct{ col, v string }{{"team", q.Team}, {"feature", q.Feature}, {"principal", q.Principal}, {"model", q.Model}} {
		if f.v != "" {
			w = append(w, f.col+" = ?")
			args = append(args, f.v)
		}
	}
	if q.Outcome != "" {
		cond, ok := outcomes[q.Outcome]
		if !ok {
			return nil, fmt.Errorf("outcome %q: want ok, refused, client_error or error", q.Outcome)
		}
		w = append(w, cond)
	}
	if q.ID != "" {
		w = append(w, `(request_id = ? OR id = (SELECT audit_id FROM `+a.table+`_response_ids WHERE response_id = ?))`)
		args = append(args, q.ID, q.ID)
	}
	if q.Before != "" {
		ts, id, ok := strings.Cut(q.Before, "|")
		if !ok {
			return nil, errors.New("before: not a cursor this page made")
		}
		w = append(w, "(time < ? OR (time = ? AND id < ?))")
		args = append(args, ts, ts, id)
	}
	args = append(args, q.Limit)
	rows, err := a.db.QueryContext(ctx, `SELECT id, request_id, time, coalesce(principal, ''), coalesce(team, ''),
		coalesce(feature, ''), coalesce(model, ''), coalesce(policy, ''), coalesce(status, 0),
		coalesce(prompt_tokens, 0), coalesce(completion_tokens, 0), coalesce(cost, 0), coalesce(latency_ms, 0)
		FROM `+a.table+` WHERE `+strings.Join(w, " AND ")+` ORDER BY time DESC, id DESC LIMIT ?`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []LogRow
	for rows.Next() {
		var r LogRow
		if err := rows.Scan(&r.ID, &r.RequestID, &r.Time, &r.Principal, &r.Team, &r.Feature, &r.Model, &r.Policy, &r.Status,
			&r.PromptTokens, &r.CompletionTokens, &r.Cost, &r.LatencyMS); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// ErrNotFound means no interaction has the id.
var ErrNotFound = errors.New("no interaction has this id")

// Interaction is one interaction as the audit sink recorded it.
type Interaction struct {
	ID        int64
	RequestID string
	Principal string
	Team      string
	Feature   string
	Model     string
	// Key, with the Dataverse backend, is the row's primary key (a GUID;
	// ID is 0 there).
	Key string
	// Record is the whole post.Interaction, JSON.
	Record string
}

// Find looks an interaction up by request id or response id.
func (a *DB) Find(ctx context.Context, id string) (*Interaction, error) {
	var in Interaction
	err := a.db.QueryRowContext(ctx, `SELECT id, request_id, coalesce(principal, ''), coalesce(team, ''), coalesce(feature, ''),
		coalesce(model, ''), record FROM `+a.table+`
		WHERE id = (SELECT audit_id FROM `+a.table+`_response_ids WHERE response_id = ?)
		   OR id = (SELECT max(id) FROM `+a.table+` WHERE request_id = ?)`, id, id).
		Scan(&in.ID, &in.RequestID, &in.Principal, &in.Team, &in.Feature, &in.Model, &in.Record)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return &in, nil
}

// Feedback is one rating of an answer.
type Feedback struct {
	AuditID    int64
	RequestID  string
	ResponseID string
	Time       time.Time
	Principal  string
	Team       string
	Feature    string
	Model      string
	// Rating is +1 (thumbs up), -1 (thumbs down) or 0 (a score only).
	Rating int
	// Score, when given, is in [0, 1]; nil when absent.
	Score   *float64
	Comment string
}

// AddFeedback stores a rating joined to its interaction.
func (a *DB) AddFeedback(ctx context.Context, f Feedback) (int64, error) {
	res, err := a.db.ExecContext(ctx, `INSERT INTO `+a.table+`_feedback
		(audit_id, request_id, response_id, time, principal, team, feature, model, rating, score, comment)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		f.AuditID, f.RequestID, nullable(f.ResponseID), f.Time.UTC().Format(time.RFC3339Nano), f.Principal, f.Team, f.Feature, f.Model,
		f.Rating, f.Score, nullable(f.Comment))
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// FeedbackFor lists an interaction's feedback, oldest first.
func (a *DB) FeedbackFor(ctx context.Context, auditID int64, requestID string) ([]Feedback, error) {
	rows, err := a.db.QueryContext(ctx, `SELECT audit_id, request_id, coalesce(response_id, ''), time, principal, coalesce(team, ''),
		coalesce(feature, ''), coalesce(model, ''), coalesce(rating, 0), score, coalesce(comment, '')
		FROM `+a.table+`_feedback WHERE audit_id = ? OR (audit_id = 0 AND request_id = ?) ORDER BY id`, auditID, requestID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Feedback
	for rows.Next() {
		var f Feedback
		var ts string
		if err := rows.Scan(&f.AuditID, &f.RequestID, &f.ResponseID, &ts, &f.Principal, &f.Team, &f.Feature, &f.Model, &f.Rating, &f.Score, &f.Comment); err != nil {
			return nil, err
		}
		f.Time, _ = time.Parse(time.RFC3339Nano, ts)
		out = append(out, f)
	}
	return out, rows.Err()
}

// FeedbackRow sums the feedback of one feature and team.
type FeedbackRow struct {
	Feature, Team string
	Count         int64
	Up, Down      int64
	// AvgScore is the mean score of the ratings that gave one (NaN: none).
	AvgScore *float64
	// Comments counts ratings with a comment.
	Comments int64
}

// FeedbackSummary sums feedback by feature and team over the range; the
// optional filters (team, feature, model; "" for all) narrow it.
func (a *DB) FeedbackSummary(ctx context.Context, r Range, filters ...string) ([]FeedbackRow, error) {
	if err := r.Valid(); err != nil {
		return nil, err
	}
	where, args := "time >= ? AND time < ?", []any{r.From, r.end()}
	for i, col := range []string{"team", "feature", "model"} {
		if i < len(filters) && filters[i] != "" {
			where += " AND " + col + " = ?"
			args = append(args, filters[i])
		}
	}
	rows, err := a.db.QueryContext(ctx, `SELECT coalesce(feature, ''), coalesce(team, ''), count(*), sum(rating > 0), sum(rating < 0),
		avg(score), count(comment) FROM `+a.table+`_feedback WHERE `+where+`
		GROUP BY 1, 2 ORDER BY 1, 2`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []FeedbackRow
	for rows.Next() {
		var f FeedbackRow
		if err := rows.Scan(&f.Feature, &f.Team, &f.Count, &f.Up, &f.Down, &f.AvgScore, &f.Comments); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}
