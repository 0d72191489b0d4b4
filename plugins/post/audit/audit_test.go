package audit

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/groundgate/groundgate/post"
)

func TestMain(m *testing.M) {
	moduleLogger = func(caddy.Context) *zap.Logger { return zap.NewNop() }
	os.Exit(m.Run())
}

func testContext(t testing.TB) caddy.Context {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	return ctx
}

func provision(t testing.TB, a *Audit) *Audit {
	t.Helper()
	if err := a.Provision(testContext(t)); err != nil {
		t.Fatal(err)
	}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	return a
}

func interaction(i int) *post.Interaction {
	return &post.Interaction{
		RequestID: fmt.Sprintf("req-%05d", i), Time: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond),
		Principal: "agent-app", Team: "support", Policy: "ask_question", PolicyVersion: "ab12", Feature: "ask_question",
		Model: "gpt-4o", Upstream: "eastus", Route: "chat.completions",
		Records:       []post.RecordRef{{Entity: "incident", ID: "i-1", Number: "CAS-01000"}},
		Articles:      []post.ArticleRef{{Ref: "doc1", ID: "a-1", Number: "KA-01234", Cited: true}},
		DeniedRecords: []string{"incident.ticketnumber=CAS-9"},
		PromptTokens:  100, CompletionTokens: 20, Cost: 0.0012,
		FilterActions: []post.FilterAction{{Filter: "pii", Category: "email", Stage: "output", Action: "redact"}},
		Citations:     &post.CitationSummary{Cited: 1},
		LatencyMS:     12.5, Status: 200,
	}
}

func readLines(t testing.TB, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// 10,000 records enqueued, then Cleanup: every one is in the file.
func TestJSONLDrainOnCleanup(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs", "audit.jsonl")
	a := provision(t, &Audit{JSONL: &JSONL{Path: path}})
	const n = 10000
	for i := range n {
		a.Record(interaction(i))
	}
	if err := a.Cleanup(); err != nil {
		t.Fatal(err)
	}
	st := a.q.stats()
	if st.Enqueued != n || st.Written != n || st.Dropped != 0 || st.Lost != 0 {
		t.Fatalf("stats %+v", st)
	}
	lines := readLines(t, path)
	if len(lines) != n {
		t.Fatalf("%d lines, want %d", len(lines), n)
	}
	seen := make(map[string]bool, n)
	for _, l := range lines {
		var in post.Interaction
		if err := json.Unmarshal([]byte(l), &in); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		seen[in.RequestID] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct records", len(seen))
	}
	// Shape of one line.
	r := gjson.Parse(lines[0])
	for path, want := range map[string]string{
		"request_id": "req-00000", "time": "2025-03-01T12:00:00Z", "principal": "agent-app", "team": "support",
		"policy": "ask_question", "policy_version": "ab12", "feature": "ask_question", "records.0.number": "CAS-01000",
		"articles.0.number": "KA-01234", "articles.0.cited": "true", "denied_records.0": "incident.ticketnumber=CAS-9",
		"prompt_tokens": "100", "completion_tokens": "20", "cost": "0.0012", "filter_actions.0.action": "redact",
		"latency_ms": "12.5", "status": "200",
	} {
		if got := r.Get(path).String(); got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
}

func TestSQLiteDrainOnCleanup(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	a := provision(t, &Audit{SQLite: &SQLite{Path: path, Table: "gg_audit"}})
	const n = 10000
	for i := range n {
		a.Record(interaction(i))
	}
	if err := a.Cleanup(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var count, distinct int
	if err := db.QueryRow(`SELECT count(*), count(DISTINCT request_id) FROM gg_audit`).Scan(&count, &distinct); err != nil {
		t.Fatal(err)
	}
	if count != n || distinct != n {
		t.Fatalf("%d rows, %d distinct, want %d", count, distinct, n)
	}
	var (
		reqID, tm, principal, team, policy, version, records, articles, denied, filters, record string
		status, ptok, ctok                                                                      int
		cost, lat                                                                               float64
	)
	err = db.QueryRow(`SELECT request_id, time, principal, team, policy, policy_version, status, prompt_tokens,
		completion_tokens, cost, latency_ms, records, articles, denied_records, filter_actions, record
		FROM gg_audit WHERE request_id = 'req-00042'`).Scan(&reqID, &tm, &principal, &team, &policy, &version,
		&status, &ptok, &ctok, &cost, &lat, &records, &articles, &denied, &filters, &record)
	if err != nil {
		t.Fatal(err)
	}
	if tm != "2025-03-01T12:00:00.042Z" || principal != "agent-app" || team != "support" || policy != "ask_question" ||
		version != "ab12" || status != 200 || ptok != 100 || ctok != 20 || cost != 0.0012 || lat != 12.5 {
		t.Errorf("row: %s %s %s %s %s %s %d %d %d %v %v", reqID, tm, principal, team, policy, version, status, ptok, ctok, cost, lat)
	}
	if gjson.Get(records, "0.id").String() != "i-1" || gjson.Get(articles, "0.ref").String() != "doc1" ||
		gjson.Get(denied, "0").String() != "incident.ticketnumber=CAS-9" || gjson.Get(filters, "0.filter").String() != "pii" ||
		gjson.Get(record, "request_id").String() != "req-00042" {
		t.Errorf("JSON columns: %s %s %s %s %s", records, articles, denied, filters, record)
	}
}

// An existing table without our columns fails provisioning, not every
// write at run time.
func TestSQLiteExistingTable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	db, _ := sql.Open("sqlite", path)
	if _, err := db.Exec(`CREATE TABLE audit (id INTEGER PRIMARY KEY, request_id TEXT)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	a := &Audit{SQLite: &SQLite{Path: path}}
	err := a.Provision(testContext(t))
	if err == nil || !strings.Contains(err.Error(), "lacks columns") {
		t.Fatalf("error %v", err)
	}
}

// A reload that keeps the sink settings keeps the queue: the old
// config's Cleanup does not close it, and every record reaches the file.
func TestReloadKeepsQueue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	old := provision(t, &Audit{JSONL: &JSONL{Path: path}})
	for i := range 500 {
		old.Record(interaction(i))
	}
	// Reload: the new config is provisioned before the old is cleaned up.
	cur := provision(t, &Audit{JSONL: &JSONL{Path: path}})
	if cur.q != old.q {
		t.Fatal("same settings, different queue")
	}
	if err := old.Cleanup(); err != nil {
		t.Fatal(err)
	}
	for i := 500; i < 1000; i++ {
		old.Record(interaction(i)) // an in-flight request of the old config
		cur.Record(interaction(i + 1000))
	}
	if st := cur.Stats(); st.Dropped != 0 {
		t.Fatalf("dropped after reload: %+v", st)
	}
	if err := cur.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if got := len(readLines(t, path)); got != 1500 {
		t.Fatalf("%d lines, want 1500", got)
	}
	// After the last Cleanup the queue is closed: records are dropped and
	// counted, without a panic.
	cur.Record(interaction(9999))
	if st := cur.Stats(); st.Dropped != 1 {
		t.Errorf("stats after close %+v", st)
	}
	// Different settings: a different queue.
	a := provision(t, &Audit{JSONL: &JSONL{Path: path}, QueueSize: 10})
	b := provision(t, &Audit{JSONL: &JSONL{Path: path}, QueueSize: 20})
	if a.q == b.q {
		t.Error("different settings share a queue")
	}
	a.Cleanup()
	b.Cleanup()
}

// fakeSink fails the first failures writes, then stores.
type fakeSink struct {
	mu       sync.Mutex
	failures int
	calls    int
	stored   []string
	block    chan struct{} // if set, write waits for it
	bad      string        // request id rejected for good
	closed   bool
}

func (f *fakeSink) write(ctx context.Context, recs []*post.Interaction) (int, error) {
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.failures > 0 {
		f.failures--
		return 0, errors.New("sink down")
	}
	for i, r := range recs {
		if r.RequestID == f.bad {
			return i, &permanentError{errors.New("bad record")}
		}
		f.stored = append(f.stored, r.RequestID)
	}
	return len(recs), nil
}

func (f *fakeSink) close() error {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	return nil
}

func testOpts() queueOptions {
	return queueOptions{size: 100, batch: 10, retryMin: time.Millisecond, retryMax: 4 * time.Millisecond, drain: 10 * time.Second}
}

// A failing sink is retried until it succeeds; nothing is lost.
func TestRetryThenSucceed(t *testing.T) {
	f := &fakeSink{failures: 3}
	before := testutil.ToFloat64(retriesTotal.WithLabelValues("fake-retry"))
	q := newQueue("fake-retry", f, testOpts(), nil)
	for i := range 25 {
		if !q.enqueue(interaction(i)) {
			t.Fatal("dropped")
		}
	}
	if err := q.Destruct(); err != nil {
		t.Fatal(err)
	}
	st := q.stats()
	if st.Retries != 3 || st.Written != 25 || st.Lost != 0 || len(f.stored) != 25 || !f.closed {
		t.Fatalf("stats %+v stored %d closed %v", st, len(f.stored), f.closed)
	}
	for i, id := range f.stored {
		if id != interaction(i).RequestID {
			t.Fatalf("order: %d is %s", i, id)
		}
	}
	if got := testutil.ToFloat64(retriesTotal.WithLabelValues("fake-retry")) - before; got != 3 {
		t.Errorf("retries metric +%v", got)
	}
}

// A record the sink rejects for good is skipped; the others are stored.
func TestPermanentFailureSkipped(t *testing.T) {
	f := &fakeSink{bad: "req-00004"}
	q := newQueue("fake-perm", f, testOpts(), nil)
	for i := range 10 {
		q.enqueue(interaction(i))
	}
	q.Destruct()
	st := q.stats()
	if st.Failed != 1 || st.Written != 9 || len(f.stored) != 9 {
		t.Fatalf("stats %+v stored %v", st, f.stored)
	}
}

// A full queue drops (never blocks), and counts the drop in the metric.
func TestFullQueueDrops(t *testing.T) {
	f := &fakeSink{block: make(chan struct{})}
	before := testutil.ToFloat64(recordsTotal.WithLabelValues("fake-full", "dropped"))
	o := testOpts()
	o.size, o.batch = 4, 1
	q := newQueue("fake-full", f, o, nil)
	const n = 50
	start := time.Now()
	accepted := 0
	for i := range n {
		if q.enqueue(interaction(i)) {
			accepted++
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("enqueue blocked for %v", d)
	}
	st := q.stats()
	// The worker holds at most one batch; the queue holds 4.
	if st.Dropped < n-5 || st.Dropped+int64(accepted) != n {
		t.Fatalf("stats %+v accepted %d", st, accepted)
	}
	if got := testutil.ToFloat64(recordsTotal.WithLabelValues("fake-full", "dropped")) - before; got != float64(st.Dropped) {
		t.Errorf("dropped metric +%v, want %d", got, st.Dropped)
	}
	close(f.block)
	q.Destruct()
	if st := q.stats(); st.Written != int64(accepted) {
		t.Errorf("written %d, accepted %d", st.Written, accepted)
	}
}

// Cleanup returns at the drain deadline even when the sink never
// recovers; what was not written is counted as lost.
func TestDrainDeadline(t *testing.T) {
	f := &fakeSink{failures: math.MaxInt}
	o := testOpts()
	o.drain = 200 * time.Millisecond
	q := newQueue("fake-deadline", f, o, nil)
	for i := range 30 {
		q.enqueue(interaction(i))
	}
	start := time.Now()
	q.Destruct()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Destruct took %v", d)
	}
	if st := q.stats(); st.Lost != 30 || st.Written != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestJSONLRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	a := provision(t, &Audit{JSONL: &JSONL{Path: path, MaxSize: 8 << 10, MaxFiles: 100}, BatchSize: 4})
	const n = 200
	for i := range n {
		a.Record(interaction(i))
	}
	a.Cleanup()
	total := len(readLines(t, path))
	files := 1
	for i := 1; ; i++ {
		p := path + "." + strconv.Itoa(i)
		st, err := os.Stat(p)
		if err != nil {
			break
		}
		if st.Size() > 8<<10 {
			t.Errorf("%s has %d bytes", p, st.Size())
		}
		total += len(readLines(t, p))
		files++
	}
	if total != n || files < 3 {
		t.Errorf("%d records in %d files", total, files)
	}
	// The oldest records are in the highest-numbered file.
	oldest := readLines(t, fmt.Sprintf("%s.%d", path, files-1))
	if gjson.Get(oldest[0], "request_id").String() != "req-00000" {
		t.Errorf("oldest file starts with %s", oldest[0][:40])
	}
}

// The Dataverse sink against a local server: Entra token request, Web API
// POST with OData headers and the Bearer token, the row's shape, 429
// Retry-After honoured, 401 refreshes the token, 400 rejects the record.
func TestDataverse(t *testing.T) {
	var (
		mu         sync.Mutex
		tokenCalls int
		posts      []time.Time
		bodies     []string
		fail       = []int{429, 401} // statuses of the first POSTs
	)
	var tokenN atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch r.URL.Path {
		case "/tenant-1/oauth2/v2.0/token":
			tokenCalls++
			b, _ := io.ReadAll(r.Body)
			form, _ := url.ParseQuery(string(b))
			if r.Method != http.MethodPost || form.Get("grant_type") != "client_credentials" || form.Get("client_id") != "app-1" ||
				form.Get("client_secret") != "s3cret" || form.Get("scope") != "http://"+r.Host+"/.default" {
				t.Errorf("token request %s %v", r.Method, form)
			}
			fmt.Fprintf(w, `{"token_type":"Bearer","expires_in":3599,"access_token":"tok-%d"}`, tokenN.Add(1))
		case "/api/data/v9.2/gg_audits":
			posts = append(posts, time.Now())
			h := r.Header
			if r.Method != http.MethodPost || h.Get("OData-Version") != "4.0" || h.Get("OData-MaxVersion") != "4.0" ||
				h.Get("Accept") != "application/json" || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
				t.Errorf("headers %v", h)
			}
			b, _ := io.ReadAll(r.Body)
			if len(fail) > 0 {
				st := fail[0]
				fail = fail[1:]
				if st == 429 {
					w.Header().Set("Retry-After", "1")
					w.WriteHeader(429)
					io.WriteString(w, `{"error":{"code":"0x80072322","message":"Number of requests exceeded the limit of 6000 over time window of 300 seconds."}}`)
					return
				}
				w.WriteHeader(st)
				io.WriteString(w, `{"error":{"code":"","message":"ExpiredAuthTicket"}}`)
				return
			}
			if want := fmt.Sprintf("Bearer tok-%d", tokenN.Load()); h.Get("Authorization") != want {
				t.Errorf("Authorization %q, want %q", h.Get("Authorization"), want)
			}
			if gjson.GetBytes(b, "gg_name").String() == "req-00002" {
				w.WriteHeader(400)
				io.WriteString(w, `{"error":{"code":"0x80040203","message":"Invalid property 'gg_bogus'"}}`)
				return
			}
			bodies = append(bodies, string(b))
			w.Header().Set("OData-EntityId", "http://"+r.Host+"/api/data/v9.2/gg_audits(00000000-0000-0000-0000-000000000001)")
			w.WriteHeader(http.StatusNoContent)
		default:
			t.Errorf("unexpected %s %s", r.Method, r.URL)
			w.WriteHeader(404)
		}
	}))
	defer srv.Close()

	os.Setenv("GG_TEST_DV_SECRET", "s3cret")
	a := provision(t, &Audit{
		Dataverse: &Dataverse{URL: srv.URL, EntitySet: "gg_audits", TenantID: "tenant-1", ClientID: "app-1",
			ClientSecret: "{env.GG_TEST_DV_SECRET}", TokenURL: srv.URL + "/tenant-1/oauth2/v2.0/token"},
		RetryMin: caddy.Duration(5 * time.Millisecond),
	})
	for i := range 4 {
		a.Record(interaction(i))
	}
	if err := a.Cleanup(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	st := a.Stats()
	if st.Written != 3 || st.Failed != 1 || st.Retries != 2 || len(bodies) != 3 {
		t.Fatalf("stats %+v, %d bodies", st, len(bodies))
	}
	if tokenCalls != 2 {
		t.Errorf("%d token requests, want 2 (one refresh after 401)", tokenCalls)
	}
	if gap := posts[1].Sub(posts[0]); gap < time.Second {
		t.Errorf("retried %v after a 429 with Retry-After: 1", gap)
	}
	// Row shape.
	want := map[string]string{
		"gg_name": "req-00000", "gg_time": "2025-03-01T12:00:00Z", "gg_principal": "agent-app", "gg_team": "support",
		"gg_policy": "ask_question", "gg_policyversion": "ab12", "gg_feature": "ask_question", "gg_model": "gpt-4o",
		"gg_upstream": "eastus", "gg_status": "200", "gg_prompttokens": "100", "gg_completiontokens": "20",
		"gg_cost": "0.0012", "gg_latencyms": "12.500",
	}
	r := gjson.Parse(bodies[0])
	for k, v := range want {
		if got := r.Get(k).Raw; strings.Trim(got, `"`) != v {
			t.Errorf("%s = %s, want %s", k, got, v)
		}
	}
	if r.Get("gg_status").Type != gjson.Number || r.Get("gg_cost").Type != gjson.Number {
		t.Error("numbers sent as strings")
	}
	if gjson.Get(r.Get("gg_records").String(), "0.number").String() != "CAS-01000" ||
		gjson.Get(r.Get("gg_articles").String(), "0.number").String() != "KA-01234" ||
		gjson.Get(r.Get("gg_deniedrecords").String(), "0").String() != "incident.ticketnumber=CAS-9" ||
		gjson.Get(r.Get("gg_filteractions").String(), "0.category").String() != "email" ||
		gjson.Get(r.Get("gg_details").String(), "request_id").String() != "req-00000" {
		t.Errorf("JSON columns: %s", bodies[0])
	}
	if r.Get("gg_error").Exists() {
		t.Error("empty text column sent")
	}
	var keys int
	r.ForEach(func(k, _ gjson.Result) bool {
		if !strings.HasPrefix(k.String(), "gg_") {
			t.Errorf("column %s without the prefix", k)
		}
		keys++
		return true
	})
	if strings.Contains(strings.Join(bodies, ""), "s3cret") {
		t.Error("secret in a row")
	}
}

func TestRetryAfterParse(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"": 0, "3": 3 * time.Second, "-1": 0, "x": 0, "99999999": maxRetryAfter,
		"Wed, 01 Jan 2025 00:00:30 GMT": 30 * time.Second,
	} {
		if got := parseRetryAfter(http.Header{"Retry-After": {v}}, now); got != want {
			t.Errorf("%q: %v, want %v", v, got, want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, a := range []*Audit{
		{},
		{JSONL: &JSONL{Path: filepath.Join(dir, "a")}, SQLite: &SQLite{Path: filepath.Join(dir, "b")}},
		{JSONL: &JSONL{}},
		{SQLite: &SQLite{Path: filepath.Join(dir, "b"), Table: "x; DROP TABLE y"}},
		{Dataverse: &Dataverse{URL: "http://dv.example", EntitySet: "e", TenantID: "t", ClientID: "c", ClientSecret: "s"}},
		{Dataverse: &Dataverse{URL: "https://dv.example", EntitySet: "e", ClientID: "c", ClientSecret: "s"}},
		{Dataverse: &Dataverse{URL: "https://dv.example", EntitySet: "e", TenantID: "t", ClientID: "c"}},
		{JSONL: &JSONL{Path: filepath.Join(dir, "a")}, RetryMin: caddy.Duration(time.Second), RetryMax: caddy.Duration(time.Millisecond)},
	} {
		if err := a.Provision(testContext(t)); err == nil {
			t.Errorf("%+v: no error", a)
			a.Cleanup()
		}
	}
}

func TestCaddyfile(t *testing.T) {
	var a Audit
	err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`audit {
		dataverse https://contoso.crm.dynamics.com {
			entity_set gg_audits
			tenant_id t-1
			client_id c-1
			client_secret {env.DV_SECRET}
			column_prefix new_
			api_version v9.1
			timeout 10s
			analytics
			key_column new_auditrowid
		}
		queue_size 500
		batch_size 50
		retry_min 1s
		retry_max 1m
		drain_timeout 5s
	}`))
	if err != nil {
		t.Fatal(err)
	}
	dv := a.Dataverse
	if dv == nil || dv.URL != "https://contoso.crm.dynamics.com" || dv.EntitySet != "gg_audits" || dv.TenantID != "t-1" ||
		dv.ClientID != "c-1" || dv.ClientSecret != "{env.DV_SECRET}" || dv.ColumnPrefix != "new_" || dv.APIVersion != "v9.1" ||
		dv.Timeout != caddy.Duration(10*time.Second) || !dv.Analytics || dv.KeyColumn != "new_auditrowid" || a.QueueSize != 500 || a.BatchSize != 50 ||
		a.RetryMin != caddy.Duration(time.Second) || a.RetryMax != caddy.Duration(time.Minute) || a.DrainTimeout != caddy.Duration(5*time.Second) {
		t.Errorf("got %+v %+v", a, dv)
	}
	var j Audit
	if err := j.UnmarshalCaddyfile(caddyfile.NewTestDispenser("audit {\n jsonl /var/log/a.jsonl {\n max_size 10MiB\n max_files 3\n }\n}")); err != nil {
		t.Fatal(err)
	}
	if j.JSONL == nil || j.JSONL.Path != "/var/log/a.jsonl" || j.JSONL.MaxSize != 10<<20 || j.JSONL.MaxFiles != 3 {
		t.Errorf("jsonl %+v", j.JSONL)
	}
	var s Audit
	if err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser("audit {\n sqlite /var/lib/a.db {\n table gg\n }\n}")); err != nil {
		t.Fatal(err)
	}
	if s.SQLite == nil || s.SQLite.Path != "/var/lib/a.db" || s.SQLite.Table != "gg" {
		t.Errorf("sqlite %+v", s.SQLite)
	}
	for in, msg := range map[string]string{
		"audit {\n colour red\n}":                           `"colour"`,
		"audit {\n jsonl /a {\n rotate daily\n }\n}":        `"rotate"`,
		"audit {\n sqlite /a {\n schema x\n }\n}":           `"schema"`,
		"audit {\n dataverse https://x {\n secret s\n }\n}": `"secret"`,
		"audit {\n jsonl\n}":                                "argument",
		"audit {\n jsonl /a\n jsonl /b\n}":                  "twice",
		"audit {\n queue_size 0\n}":                         "queue_size",
		"audit {\n retry_min soon\n}":                       "retry_min",
		"audit {\n jsonl /a {\n max_size lots\n }\n}":       "max_size",
	} {
		var a Audit
		err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in))
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: error %v, want one mentioning %s", in, err, msg)
		}
	}
}

func BenchmarkRecord(b *testing.B) {
	f := &fakeSink{}
	o := testOpts()
	o.size = 1 << 16
	q := newQueue("bench", f, o, nil)
	a := &Audit{q: q}
	in := interaction(1)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		a.Record(in)
	}
	b.StopTimer()
	q.Destruct()
}

func BenchmarkRecordParallel(b *testing.B) {
	f := &fakeSink{}
	o := testOpts()
	o.size = 1 << 16
	q := newQueue("bench", f, o, nil)
	a := &Audit{q: q}
	in := interaction(1)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			a.Record(in)
		}
	})
	b.StopTimer()
	q.Destruct()
}

func TestModuleRegistered(t *testing.T) {
	m, err := caddy.GetModule("llm_gateway.post.audit")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.New().(post.Recorder); !ok {
		t.Error("not a post.Recorder")
	}
}
