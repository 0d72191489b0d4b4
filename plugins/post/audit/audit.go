// Package audit is the Caddy module llm_gateway.post.audit: it writes one
// record per interaction (post.Interaction: request id, time, principal,
// team, policy name and version, feature, records and articles used,
// denied records, tokens, cost, filter actions, latency, status, and
// incomplete/incomplete_reason for answers that did not reach their end)
// to a sink, off the hot path.
//
// Record puts the record in a bounded in-memory queue and returns at once;
// one worker goroutine writes batches to the sink and retries failures
// (exponential backoff from retry_min to retry_max, or the sink's
// Retry-After). Nothing blocks or fails a response: when the queue is full
// the record is dropped, counted (groundgate_audit_records_total
// {result="dropped"}) and logged (at most every 10 s). Nothing is lost on
// reload or graceful shutdown: the queue and its sink live in a
// caddy.UsagePool keyed by the sink and queue settings, so a reload that
// keeps them keeps the same queue (records in flight stay queued); when
// the last config using a queue is cleaned up (shutdown, or a reload that
// changed the settings), Cleanup drains the queue into the sink before it
// returns, for up to drain_timeout; what is still unwritten then is
// counted as lost and logged.
//
// JSON (exactly one of jsonl, sqlite, dataverse):
//
//	{
//	  "processor": "audit",
//	  "jsonl": {"path": "/var/log/groundgate/audit.jsonl", "max_size": 104857600, "max_files": 5},
//	  "sqlite": {"path": "/var/lib/groundgate/audit.db", "table": "audit"},
//	  "dataverse": {"url": "https://contoso.crm.dynamics.com", "entity_set": "gg_audits",
//	                "tenant_id": "…", "client_id": "…", "client_secret": "{env.DV_SECRET}",
//	                "column_prefix": "gg_", "api_version": "v9.2", "token_url": "…",
//	                "scope": "…", "timeout": "30s"},
//	  "queue_size": 10000,      // records held in memory; default 10000
//	  "batch_size": 256,        // records per sink write; default 256
//	  "retry_min": "100ms",     // first retry delay; default 100ms
//	  "retry_max": "30s",       // longest retry delay; default 30s
//	  "drain_timeout": "15s"    // how long Cleanup drains; default 15s
//	}
//
// The sinks are described with their types (JSONL, SQLite, Dataverse).
// Caddyfile: see UnmarshalCaddyfile.
package audit

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/groundgate/groundgate/post"
)

func init() {
	caddy.RegisterModule(new(Audit))
}

// moduleLogger returns the module's logger (tests replace it).
var moduleLogger = func(ctx caddy.Context) *zap.Logger { return ctx.Logger() }

// sinkPool holds the queues (each with its sink) across config reloads.
var sinkPool = caddy.NewUsagePool()

// Defaults.
const (
	DefaultQueueSize    = 10000
	DefaultBatchSize    = 256
	DefaultRetryMin     = 100 * time.Millisecond
	DefaultRetryMax     = 30 * time.Second
	DefaultDrainTimeout = 15 * time.Second
)

// Audit is the llm_gateway.post.audit module.
type Audit struct {
	// JSONL, SQLite, Dataverse: the sink; exactly one is set.
	JSONL     *JSONL     `json:"jsonl,omitempty"`
	SQLite    *SQLite    `json:"sqlite,omitempty"`
	Dataverse *Dataverse `json:"dataverse,omitempty"`
	// QueueSize bounds the records waiting in memory. Default 10000.
	QueueSize int `json:"queue_size,omitempty"`
	// BatchSize bounds the records per sink write. Default 256.
	BatchSize int `json:"batch_size,omitempty"`
	// RetryMin and RetryMax bound the delay between retries of a failed
	// write (doubling from RetryMin). Defaults 100ms and 30s.
	RetryMin caddy.Duration `json:"retry_min,omitempty"`
	RetryMax caddy.Duration `json:"retry_max,omitempty"`
	// DrainTimeout bounds how long Cleanup spends writing what is queued
	// when the queue closes. Default 15s.
	DrainTimeout caddy.Duration `json:"drain_timeout,omitempty"`

	kind   string
	key    string
	q      *queue
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (*Audit) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "llm_gateway.post.audit",
		New: func() caddy.Module { return new(Audit) },
	}
}

// Provision checks the configuration and opens the sink and its queue, or
// takes the ones a previous config left open with the same settings.
func (a *Audit) Provision(ctx caddy.Context) error {
	a.logger = moduleLogger(ctx)
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	a.setDefaults()
	if err := a.check(); err != nil {
		return err
	}
	opts := queueOptions{
		size: a.QueueSize, batch: a.BatchSize,
		retryMin: time.Duration(a.RetryMin), retryMax: time.Duration(a.RetryMax),
		drain: time.Duration(a.DrainTimeout),
	}
	key, err := a.poolKey(opts)
	if err != nil {
		return err
	}
	val, _, err := sinkPool.LoadOrNew(key, func() (caddy.Destructor, error) {
		s, err := a.openSink()
		if err != nil {
			return nil, err
		}
		return newQueue(a.kind, s, opts, a.logger), nil
	})
	if err != nil {
		return err
	}
	a.key, a.q = key, val.(*queue)
	return nil
}

func (a *Audit) setDefaults() {
	if a.QueueSize == 0 {
		a.QueueSize = DefaultQueueSize
	}
	if a.BatchSize == 0 {
		a.BatchSize = DefaultBatchSize
	}
	if a.RetryMin == 0 {
		a.RetryMin = caddy.Duration(DefaultRetryMin)
	}
	if a.RetryMax == 0 {
		a.RetryMax = caddy.Duration(DefaultRetryMax)
	}
	if a.DrainTimeout == 0 {
		a.DrainTimeout = caddy.Duration(DefaultDrainTimeout)
	}
	if a.Dataverse != nil {
		a.Dataverse.resolve()
	}
}

// check validates the settings (defaults applied).
func (a *Audit) check() error {
	n := 0
	if a.JSONL != nil {
		n++
		a.kind = "jsonl"
		if err := a.JSONL.validate(); err != nil {
			return fmt.Errorf("audit: %v", err)
		}
	}
	if a.SQLite != nil {
		n++
		a.kind = "sqlite"
		if err := a.SQLite.validate(); err != nil {
			return fmt.Errorf("audit: %v", err)
		}
	}
	if a.Dataverse != nil {
		n++
		a.kind = "dataverse"
		if err := a.Dataverse.validate(); err != nil {
			return fmt.Errorf("audit: %v", err)
		}
	}
	if n != 1 {
		return errors.New("audit: configure exactly one sink: jsonl, sqlite or dataverse")
	}
	if a.QueueSize < 1 || a.BatchSize < 1 {
		return errors.New("audit: queue_size and batch_size must be at least 1")
	}
	if a.RetryMin <= 0 || a.RetryMax < a.RetryMin {
		return errors.New("audit: want 0 < retry_min <= retry_max")
	}
	if a.DrainTimeout < 0 {
		return errors.New("audit: drain_timeout must not be negative")
	}
	return nil
}

// poolKey identifies a queue by everything that configures it; the
// Dataverse secret is hashed. Paths are made absolute so that one file
// named two ways gets one writer.
func (a *Audit) poolKey(o queueOptions) (string, error) {
	var parts []string
	switch a.kind {
	case "jsonl":
		p, err := filepath.Abs(a.JSONL.Path)
		if err != nil {
			return "", fmt.Errorf("audit: jsonl: %v", err)
		}
		parts = []string{"jsonl", p, strconv.FormatInt(a.JSONL.MaxSize, 10), strconv.Itoa(a.JSONL.MaxFiles)}
	case "sqlite":
		p, err := filepath.Abs(a.SQLite.Path)
		if err != nil {
			return "", fmt.Errorf("audit: sqlite: %v", err)
		}
		parts = []string{"sqlite", p, a.SQLite.Table}
	case "dataverse":
		parts = []string{"dataverse", a.Dataverse.key()}
	}
	parts = append(parts, strconv.Itoa(o.size), strconv.Itoa(o.batch), o.retryMin.String(), o.retryMax.String(), o.drain.String())
	return strings.Join(parts, "|"), nil
}

func (a *Audit) openSink() (sink, error) {
	switch a.kind {
	case "jsonl":
		return openJSONL(*a.JSONL)
	case "sqlite":
		return openSQLite(*a.SQLite)
	case "dataverse":
		return openDataverse(*a.Dataverse), nil
	}
	return nil, errors.New("audit: no sink")
}

// Validate checks the configuration.
func (a *Audit) Validate() error {
	if a.q == nil {
		return errors.New("audit: not provisioned")
	}
	return nil
}

// Cleanup releases this config's use of the queue; the last user's
// Cleanup drains it into the sink (up to drain_timeout) and closes the
// sink before returning.
func (a *Audit) Cleanup() error {
	if a.key == "" {
		return nil
	}
	key := a.key
	a.key = ""
	_, err := sinkPool.Delete(key)
	return err
}

// Record implements post.Recorder: it queues the record without blocking.
// A record Record cannot queue (full, or closed after the last Cleanup)
// is dropped, counted and logged.
func (a *Audit) Record(in *post.Interaction) {
	if in == nil || a.q == nil {
		return
	}
	a.q.enqueue(in)
}

// Stats returns the counters of the module's queue (shared by the configs
// that use the same sink settings).
func (a *Audit) Stats() Stats {
	if a.q == nil {
		return Stats{}
	}
	return a.q.stats()
}

// Interface guards.
var (
	_ caddy.Provisioner  = (*Audit)(nil)
	_ caddy.Validator    = (*Audit)(nil)
	_ caddy.CleanerUpper = (*Audit)(nil)
	_ post.Recorder      = (*Audit)(nil)
	_ caddy.Destructor   = (*queue)(nil)
)

// DataverseTable returns the resolved Dataverse sink settings when the
// module writes to Dataverse with its analytics columns (ok is false
// otherwise), for the admin console's analytics. The copy holds the
// client secret: do not log it.
func (a *Audit) DataverseTable() (c Dataverse, ok bool) {
	if a.Dataverse == nil || !a.Dataverse.Analytics {
		return Dataverse{}, false
	}
	return *a.Dataverse, true
}

// SQLiteTable names the SQLite database and table the module writes
// (ok is false for the other sinks), for the admin console's analytics.
func (a *Audit) SQLiteTable() (path, table string, ok bool) {
	if a.SQLite == nil {
		return "", "", false
	}
	table = a.SQLite.Table
	if table == "" {
		table = "audit"
	}
	return a.SQLite.Path, table, true
}
