// Package analytics answers the admin console's questions from the audit
// table the audit sink writes, SQLite (DB) or Dataverse (Dataverse), both
// behind Backend: usage and cost by team, feature, model and day, latency
// percentiles, the audit log with each interaction's story, and agent
// feedback joined to the interactions.
//
// What follows is the SQLite backend; dataverse.go says how the Dataverse
// one reads the same figures with OData aggregations.
//
// Aggregates come from rollup tables kept by a trigger on the audit table
// (one row per day, team, feature and model; a latency histogram beside
// it), so a month's figures read a few thousand rows whatever the number
// of interactions. The audit log pages use indexes on (dimension, time).
// Open creates what is missing and fills the rollups from the rows
// already there, once.
package analytics

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite", pure Go
)

// DB is an audit database opened for analytics.
type DB struct {
	db    *sql.DB
	table string
}

var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,50}$`)

// latencyBase is the ratio between latency histogram buckets: bucket b
// (b ≥ 1) holds latencies in (base^(b-1), base^b] ms, bucket 0 those up
// to 1 ms. Percentiles are read at a bucket's geometric middle, so they
// are within ±12% of the exact value.
const latencyBase = 1.25

const bucketExpr = `CASE WHEN %[1]s IS NULL OR %[1]s <= 1 THEN 0 ELSE min(CAST(ln(%[1]s) / ln(1.25) AS INTEGER) + 1, 100) END`

// refusedExpr: the gateway refused the request (policy, feature switch,
// budget quota) or a filter blocked it.
const refusedExpr = `coalesce(%[1]s.status = 403 OR (%[1]s.status IN (400, 200) AND coalesce(%[1]s.filter_actions, '') LIKE '%%"action":"block"%%'), 0)`

// Open opens the audit database at path (the audit sink's SQLite file)
// with its table (default "audit"), creating the table if the sink has
// not yet, the rollups, their trigger and the indexes.
func Open(ctx context.Context, path, table string) (*DB, error) {
	if table == "" {
		table = "audit"
	}
	if !identRe.MatchString(table) {
		return nil, fmt.Errorf("analytics: table %q: want letters, digits and underscores", table)
	}
	if _, err := os.Stat(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("analytics: %v", err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
	if err != nil {
		return nil, fmt.Errorf("analytics: %v", err)
	}
	db.SetMaxOpenConns(4)
	a := &DB{db: db, table: table}
	if err := a.setup(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("analytics: %s: %v", path, err)
	}
	return a, nil
}

// Close closes the database.
func (a *DB) Close() error { return a.db.Close() }

// SQL returns the database handle (for tools and tests).
func (a *DB) SQL() *sql.DB { return a.db }

func (a *DB) setup(ctx context.Context) error {
	t := a.table
	var fresh int
	if err := a.db.QueryRowContext(ctx, `SELECT count(*) = 0 FROM sqlite_master WHERE type = 'table' AND name = ?`, t+"_daily").Scan(&fresh); err != nil {
		return err
	}
	tx, err := a.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	bucket := fmt.Sprintf(bucketExpr, "NEW.latency_ms")
	refused := fmt.Sprintf(refusedExpr, "NEW")
	stmts := []string{
		AuditTableSQL(t),
		`CREATE TABLE IF NOT EXISTS ` + t + `_daily (
			day TEXT NOT NULL, team TEXT NOT NULL, feature TEXT NOT NULL, model TEXT NOT NULL,
			requests INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
			cost REAL NOT NULL, cache_hits INTEGER NOT NULL, filter_actions INTEGER NOT NULL,
			refusals INTEGER NOT NULL, errors INTEGER NOT NULL,
			PRIMARY KEY (day, team, feature, model)) WITHOUT ROWID`,
		`CREATE TABLE IF NOT EXISTS ` + t + `_latency (
			day TEXT NOT NULL, team TEXT NOT NULL, feature TEXT NOT NULL, model TEXT NOT NULL,
			bucket INTEGER NOT NULL, n INTEGER NOT NULL,
			PRIMARY KEY (day, team, feature, model, bucket)) WITHOUT ROWID`,
		`CREATE TABLE IF NOT EXISTS ` + t + `_response_ids (
			response_id TEXT PRIMARY KEY, audit_id INTEGER NOT NULL) WITHOUT ROWID`,
		`CREATE TABLE IF NOT EXISTS ` + t + `_feedback (
			id INTEGER PRIMARY KEY AUTOINCREMENT,
			audit_id INTEGER NOT NULL, request_id TEXT NOT NULL, response_id TEXT,
			time TEXT NOT NULL, principal TEXT NOT NULL, team TEXT, feature TEXT, model TEXT,
			rating INTEGER, score REAL, comment TEXT)`,
		`CREATE INDEX IF NOT EXISTS ` + t + `_feedback_audit ON ` + t + `_feedback (audit_id)`,
		`CREATE INDEX IF NOT EXISTS ` + t + `_feedback_time ON ` + t + `_feedback (time)`,
		`CREATE INDEX IF NOT EXISTS ` + t + `_feedback_request ON ` + t + `_feedback (request_id)`,
		`CREATE INDEX IF NOT EXISTS ` + t + `_time ON ` + t + ` (time)`,
		`CREATE INDEX IF NOT EXISTS ` + t + `_request_id ON ` + t + ` (request_id)`,
		`CREATE INDEX IF NOT EXISTS ` + t + `_team_time ON ` + t + ` (team, time)`,
		`CREATE INDEX IF NOT EXISTS ` + t + `_feature_time ON ` + t + ` (feature, time)`,
		`CREATE INDEX IF NOT EXISTS ` + t + `_principal_time ON ` + t + ` (principal, time)`,
		`CREATE INDEX IF NOT EXISTS ` + t + `_model_time ON ` + t + ` (model, time)`,
		`CREATE INDEX IF NOT EXISTS ` + t + `_status_time ON ` + t + ` (status, time)`,
		`CREATE TRIGGER IF NOT EXISTS ` + t + `_rollup AFTER INSERT ON ` + t + ` BEGIN
			INSERT INTO ` + t + `_daily VALUES (substr(NEW.time, 1, 10), coalesce(NEW.team, ''), coalesce(NEW.feature, ''), coalesce(NEW.model, ''),
				1, coalesce(NEW.prompt_tokens, 0), coalesce(NEW.completion_tokens, 0), coalesce(NEW.cost, 0),
				coalesce(json_extract(NEW.record, '$.cache_hit'), 0), coalesce(json_array_length(NEW.filter_actions), 0),
				` + refused + `, coalesce(NEW.status >= 500, 0))
			ON CONFLICT DO UPDATE SET requests = requests + 1,
				prompt_tokens = prompt_tokens + excluded.prompt_tokens, completion_tokens = completion_tokens + excluded.completion_tokens,
				cost = cost + excluded.cost, cache_hits = cache_hits + excluded.cache_hits,
				filter_actions = filter_actions + excluded.filter_actions, refusals = refusals + excluded.refusals,
				errors = errors + excluded.errors;
			INSERT INTO ` + t + `_latency VALUES (substr(NEW.time, 1, 10), coalesce(NEW.team, ''), coalesce(NEW.feature, ''), coalesce(NEW.model, ''),
				` + bucket + `, 1)
			ON CONFLICT DO UPDATE SET n = n + 1;
			INSERT INTO ` + t + `_response_ids SELECT json_extract(NEW.record, '$.response_id'), NEW.id
				WHERE json_extract(NEW.record, '$.response_id') IS NOT NULL
			ON CONFLICT DO NOTHING;
		END`,
	}
	if fresh == 1 {
		// Fill the rollups from the rows already there, in the same
		// transaction that creates the trigger: no row is counted twice or
		// missed.
		bucketOld := fmt.Sprintf(bucketExpr, "latency_ms")
		stmts = append(stmts,
			`INSERT INTO `+t+`_daily SELECT substr(time, 1, 10), coalesce(team, ''), coalesce(feature, ''), coalesce(model, ''),
				count(*), coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0), coalesce(sum(cost), 0),
				coalesce(sum(json_extract(record, '$.cache_hit')), 0), coalesce(sum(json_array_length(filter_actions)), 0),
				sum(`+fmt.Sprintf(refusedExpr, t)+`), coalesce(sum(status >= 500), 0)
				FROM `+t+` GROUP BY 1, 2, 3, 4`,
			`INSERT INTO `+t+`_latency SELECT substr(time, 1, 10), coalesce(team, ''), coalesce(feature, ''), coalesce(model, ''),
				`+bucketOld+`, count(*) FROM `+t+` GROUP BY 1, 2, 3, 4, 5`,
			`INSERT OR IGNORE INTO `+t+`_response_ids SELECT json_extract(record, '$.response_id'), id FROM `+t+`
				WHERE json_extract(record, '$.response_id') IS NOT NULL`,
		)
	}
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%v (in %s)", err, strings.Fields(s)[0]+" "+strings.Fields(s)[1])
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	// Statistics for the planner: in full once, when the rollups are new;
	// later opens only refresh what changed much (cheap).
	stmt := `PRAGMA optimize`
	if fresh == 1 {
		stmt = `ANALYZE`
	}
	_, err = a.db.ExecContext(ctx, stmt)
	return err
}

// Range is a span of days, From and To inclusive, "YYYY-MM-DD" (UTC).
type Range struct{ From, To string }

// LastDays is the range of the n days ending today (UTC).
func LastDays(n int, now time.Time) Range {
	now = now.UTC()
	return Range{From: now.AddDate(0, 0, -(n - 1)).Format(time.DateOnly), To: now.Format(time.DateOnly)}
}

var dayRe = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)

// Valid checks the range's dates.
func (r Range) Valid() error {
	for _, d := range []string{r.From, r.To} {
		if !dayRe.MatchString(d) {
			return fmt.Errorf("date %q: want YYYY-MM-DD", d)
		}
		if _, err := time.Parse(time.DateOnly, d); err != nil {
			return fmt.Errorf("date %q: %v", d, err)
		}
	}
	if r.From > r.To {
		return fmt.Errorf("from %s is after to %s", r.From, r.To)
	}
	return nil
}

// end is the first instant after the range, as audit times compare.
func (r Range) end() string {
	t, _ := time.Parse(time.DateOnly, r.To)
	return t.AddDate(0, 0, 1).Format(time.DateOnly)
}

// AuditTableSQL creates the SQLite audit sink's table named t, if absent.
// The sink (plugins/post/audit) and the console share it, so the console
// can open a database the sink has not written yet.
func AuditTableSQL(t string) string {
	return `CREATE TABLE IF NOT EXISTS ` + t + ` (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		request_id TEXT NOT NULL, time TEXT NOT NULL,
		principal TEXT, team TEXT, policy TEXT, policy_version TEXT,
		feature TEXT, route TEXT, model TEXT, upstream TEXT, stream INTEGER,
		status INTEGER, error TEXT,
		prompt_tokens INTEGER, completion_tokens INTEGER, cost REAL, latency_ms REAL,
		records TEXT, articles TEXT, denied_records TEXT,
		filter_actions TEXT, citations TEXT,
		record TEXT NOT NULL)`
}
