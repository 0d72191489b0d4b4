package audit

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite", pure Go

	"github.com/groundgate/groundgate/analytics"
	"github.com/groundgate/groundgate/post"
)

// SQLite configures the SQLite sink (modernc.org/sqlite, no cgo): one row
// per interaction in Table, created if missing:
//
//	CREATE TABLE IF NOT EXISTS <table> (
//	  id INTEGER PRIMARY KEY AUTOINCREMENT,
//	  request_id TEXT NOT NULL, time TEXT NOT NULL,   -- RFC 3339, UTC
//	  principal TEXT, team TEXT, policy TEXT, policy_version TEXT,
//	  feature TEXT, route TEXT, model TEXT, upstream TEXT, stream INTEGER,
//	  status INTEGER, error TEXT,
//	  prompt_tokens INTEGER, completion_tokens INTEGER, cost REAL, latency_ms REAL,
//	  records TEXT, articles TEXT, denied_records TEXT,   -- JSON arrays
//	  filter_actions TEXT, citations TEXT,                -- JSON
//	  record TEXT NOT NULL                                -- the whole Interaction, JSON
//	)
//
// with indexes on time and request_id. An existing table must have these
// columns (more are fine).
type SQLite struct {
	// Path of the database file; created (with its directory) if missing.
	Path string `json:"path"`
	// Table name (letters, digits, underscores); default "audit".
	Table string `json:"table,omitempty"`
}

var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

func (c *SQLite) validate() error {
	if c.Path == "" {
		return errors.New("sqlite: path is required")
	}
	if c.Table != "" && !identRe.MatchString(c.Table) {
		return fmt.Errorf("sqlite: table %q: want letters, digits and underscores", c.Table)
	}
	return nil
}

var sqliteColumns = []string{
	"request_id", "time", "principal", "team", "policy", "policy_version", "feature", "route", "model",
	"upstream", "stream", "status", "error", "prompt_tokens", "completion_tokens", "cost", "latency_ms",
	"records", "articles", "denied_records", "filter_actions", "citations", "record",
}

type sqliteSink struct {
	db     *sql.DB
	insert string
}

func openSQLite(c SQLite) (*sqliteSink, error) {
	if c.Table == "" {
		c.Table = "audit"
	}
	if err := os.MkdirAll(filepath.Dir(c.Path), 0o750); err != nil {
		return nil, fmt.Errorf("audit: sqlite: %v", err)
	}
	db, err := sql.Open("sqlite", c.Path)
	if err != nil {
		return nil, fmt.Errorf("audit: sqlite: %v", err)
	}
	db.SetMaxOpenConns(1) // one writer; the pragmas below are per connection
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t := c.Table
	for _, stmt := range []string{
		`PRAGMA busy_timeout = 5000`,
		`PRAGMA journal_mode = WAL`,
		`PRAGMA synchronous = NORMAL`,
		analytics.AuditTableSQL(t),
	} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			db.Close()
			return nil, fmt.Errorf("audit: sqlite %s: %v", c.Path, err)
		}
	}
	// An existing table must have our columns, or every insert would fail
	// (and be retried) at run time.
	have := map[string]bool{}
	rows, err := db.QueryContext(ctx, `SELECT name FROM pragma_table_info(?)`, t)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("audit: sqlite %s: %v", c.Path, err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err == nil {
			have[strings.ToLower(name)] = true
		}
	}
	rows.Close()
	var missing []string
	for _, col := range sqliteColumns {
		if !have[col] {
			missing = append(missing, col)
		}
	}
	if len(missing) > 0 {
		db.Close()
		return nil, fmt.Errorf("audit: sqlite %s: table %s lacks columns %s", c.Path, t, strings.Join(missing, ", "))
	}
	for _, stmt := range []string{
		`CREATE INDEX IF NOT EXISTS ` + t + `_time ON ` + t + ` (time)`,
		`CREATE INDEX IF NOT EXISTS ` + t + `_request_id ON ` + t + ` (request_id)`,
	} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			db.Close()
			return nil, fmt.Errorf("audit: sqlite %s: %v", c.Path, err)
		}
	}
	return &sqliteSink{
		db: db,
		insert: `INSERT INTO ` + t + ` (` + strings.Join(sqliteColumns, ", ") + `) VALUES (?` +
			strings.Repeat(", ?", len(sqliteColumns)-1) + `)`,
	}, nil
}

// write inserts the records in one transaction: all of them or none.
func (s *sqliteSink) write(ctx context.Context, recs []*post.Interaction) (int, error) {
	// Encode first so that a bad record is skipped without losing the
	// others.
	args := make([][]any, 0, len(recs))
	var perm error
	for _, in := range recs {
		a, err := sqliteArgs(in)
		if err != nil {
			perm = &permanentError{fmt.Errorf("sqlite: encoding the record: %v", err)}
			break
		}
		args = append(args, a)
	}
	if len(args) == 0 {
		return 0, perm
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("sqlite: %v", err)
	}
	stmt, err := tx.PrepareContext(ctx, s.insert)
	if err != nil {
		_ = tx.Rollback()
		return 0, fmt.Errorf("sqlite: %v", err)
	}
	for _, a := range args {
		if _, err := stmt.ExecContext(ctx, a...); err != nil {
			stmt.Close()
			_ = tx.Rollback()
			return 0, fmt.Errorf("sqlite: %v", err)
		}
	}
	stmt.Close()
	if err := tx.Commit(); err != nil {
		_ = tx.Rollback()
		return 0, fmt.Errorf("sqlite: %v", err)
	}
	return len(args), perm
}

func sqliteArgs(in *post.Interaction) ([]any, error) {
	record, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	js := func(v any, empty bool) any {
		if empty {
			return nil
		}
		b, _ := json.Marshal(v) // parts of record, which encoded
		return string(b)
	}
	return []any{
		in.RequestID, in.Time.UTC().Format(time.RFC3339Nano), in.Principal, in.Team, in.Policy, in.PolicyVersion,
		in.Feature, in.Route, in.Model, in.Upstream, in.Stream, in.Status, in.Error,
		in.PromptTokens, in.CompletionTokens, in.Cost, in.LatencyMS,
		js(in.Records, len(in.Records) == 0), js(in.Articles, len(in.Articles) == 0),
		js(in.DeniedRecords, len(in.DeniedRecords) == 0), js(in.FilterActions, len(in.FilterActions) == 0),
		js(in.Citations, in.Citations == nil), string(record),
	}, nil
}

func (s *sqliteSink) close() error { return s.db.Close() }

// SQLiteWriter writes interactions straight into a SQLite audit table,
// as the sink does, for tools that make or import audit data.
type SQLiteWriter struct{ s *sqliteSink }

// OpenSQLiteWriter opens (or creates) the database and table c names.
func OpenSQLiteWriter(c SQLite) (*SQLiteWriter, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	s, err := openSQLite(c)
	if err != nil {
		return nil, err
	}
	return &SQLiteWriter{s: s}, nil
}

// Write inserts the records in one transaction.
func (w *SQLiteWriter) Write(ctx context.Context, recs []*post.Interaction) error {
	_, err := w.s.write(ctx, recs)
	return err
}

// Close closes the database.
func (w *SQLiteWriter) Close() error { return w.s.close() }
