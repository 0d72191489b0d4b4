package audit

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/groundgate/groundgate/analytics/dvfake"
	"github.com/groundgate/groundgate/post"
)

// With analytics on, each row carries the columns the console's $apply
// aggregations group by and sum, derived as the SQLite rollup derives
// them; without, the rows are as before (a table lacking the columns
// keeps working).
func TestDataverseAnalyticsColumns(t *testing.T) {
	base := strings.Fields(`name time principal team policy policyversion feature model upstream error status
		prompttokens completiontokens cost latencyms records articles deniedrecords filteractions details`)
	extra := strings.Fields(`day responseid latencybucket cachehit refused failed filtercount`)
	var cols []string
	for _, c := range append(base, extra...) {
		cols = append(cols, "gg_"+c)
	}
	f := dvfake.New(t, "gg_audits", "gg_auditid", cols)
	block := []post.FilterAction{{Filter: "blocklist", Stage: "input", Action: "block"}, {Filter: "pii", Stage: "output", Action: "redact"}}
	ins := []*post.Interaction{
		{RequestID: "r-ok", ResponseID: "chatcmpl-1", Time: time.Date(2026, 11, 29, 23, 59, 59, 0, time.FixedZone("x", -3600)), Status: 200, LatencyMS: 12.5, CacheHit: true},
		{RequestID: "r-403", Time: time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC), Status: 403, LatencyMS: 0.4},
		{RequestID: "r-block", Time: time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC), Status: 400, FilterActions: block, LatencyMS: 1e9},
		{RequestID: "r-502", Time: time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC), Status: 502, LatencyMS: 30000},
	}
	a := provision(t, &Audit{Dataverse: &Dataverse{URL: f.URL, EntitySet: "gg_audits", ClientID: dvfake.ClientID, ClientSecret: dvfake.Secret,
		TokenURL: f.TokenURL(), Analytics: true}})
	for _, in := range ins {
		a.Record(in)
	}
	if err := a.Cleanup(); err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]any{
		"r-ok":    {"gg_day": "2026-11-30", "gg_responseid": "chatcmpl-1", "gg_latencybucket": 12.0, "gg_cachehit": 1.0, "gg_refused": 0.0, "gg_failed": 0.0, "gg_filtercount": 0.0},
		"r-403":   {"gg_day": "2026-11-30", "gg_responseid": nil, "gg_latencybucket": 0.0, "gg_cachehit": 0.0, "gg_refused": 1.0, "gg_failed": 0.0},
		"r-block": {"gg_latencybucket": 93.0, "gg_refused": 1.0, "gg_filtercount": 2.0},
		"r-502":   {"gg_latencybucket": 47.0, "gg_refused": 0.0, "gg_failed": 1.0},
	}
	rows := f.Rows()
	if len(rows) != len(ins) {
		t.Fatalf("%d rows", len(rows))
	}
	for _, r := range rows {
		for k, v := range want[r["gg_name"].(string)] {
			if r[k] != v {
				t.Errorf("%s %s = %v, want %v", r["gg_name"], k, r[k], v)
			}
		}
	}

	// Analytics off: a table without the columns takes the rows.
	var plain []string
	for _, c := range base {
		plain = append(plain, "gg_"+c)
	}
	g := dvfake.New(t, "gg_audits", "gg_auditid", plain)
	b := provision(t, &Audit{Dataverse: &Dataverse{URL: g.URL, EntitySet: "gg_audits", ClientID: dvfake.ClientID, ClientSecret: dvfake.Secret,
		TokenURL: g.TokenURL()}})
	b.Record(ins[0])
	if err := b.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); st.Written != 1 || len(g.Rows()) != 1 {
		t.Errorf("without analytics: %+v", st)
	}
	if _, ok := b.DataverseTable(); ok {
		t.Error("DataverseTable without analytics")
	}
	if c, ok := a.DataverseTable(); !ok || c.ClientSecret != dvfake.Secret || c.EntitySet != "gg_audits" {
		t.Errorf("DataverseTable: %v", ok)
	}
}

func TestCaddyfileAnalyticsTakesNoArgument(t *testing.T) {
	var a Audit
	err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser("audit {\n dataverse https://x.crm.dynamics.com {\n analytics yes\n }\n}"))
	if err == nil {
		t.Error("analytics yes accepted")
	}
}
