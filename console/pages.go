package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/groundgate/groundgate/analytics"
	"github.com/groundgate/groundgate/policies"
	"github.com/groundgate/groundgate/post"
	"github.com/groundgate/groundgate/toggles"
)

var funcs = template.FuncMap{
	"money": func(v float64) string {
		if v != 0 && math.Abs(v) < 0.01 {
			return fmt.Sprintf("$%.4f", v)
		}
		return fmt.Sprintf("$%.2f", v)
	},
	"num": func(v int64) string {
		s := fmt.Sprint(v)
		var b strings.Builder
		for i, ch := range s {
			if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
				b.WriteByte(',')
			}
			b.WriteRune(ch)
		}
		return b.String()
	},
	"ms": func(v float64) string {
		if v >= 1000 {
			return fmt.Sprintf("%.2f s", v/1000)
		}
		return fmt.Sprintf("%.0f ms", v)
	},
	"pct": func(n, d int64) string {
		if d == 0 {
			return "–"
		}
		return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(d))
	},
	"bar": func(v, max float64) string {
		if max <= 0 {
			return "0"
		}
		return fmt.Sprintf("%.1f", 100*v/max)
	},
	"dur": func(d time.Duration) string { return d.Round(time.Second).String() },
	"dict": func(kv ...any) map[string]any {
		m := make(map[string]any, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			k, _ := kv[i].(string)
			m[k] = kv[i+1]
		}
		return m
	},
	"deref":    func(p *float64) float64 { return *p },
	"costbars": costBars,
	"add":      func(a, b int64) int64 { return a + b },
	"sub":      func(a, b int64) int64 { return a - b },
	"budget": func(v int64, unit string) string {
		if unit == "usd" {
			return fmt.Sprintf("$%.2f", float64(v)/1e6)
		}
		return fmt.Sprintf("%d %s", v, unit)
	},
	"q":    url.QueryEscape,
	"join": strings.Join,
	"orDash": func(s string) string {
		if s == "" {
			return "–"
		}
		return s
	},
}

// Features × teams.

type matrixRow struct {
	Feature string
	Cells   []toggles.Cell
}

func (c *Console) serveFeatures(w http.ResponseWriter, r *http.Request, s *session) {
	ctx, cancel := c.ctx(r)
	defer cancel()
	set := c.gw.Policies()
	if r.Method == http.MethodPost {
		if set == nil {
			c.renderError(w, r, s, http.StatusConflict, "The gateway has no policy files, so no features to switch.")
			return
		}
		ch := toggles.Change{Feature: r.PostFormValue("feature"), Team: r.PostFormValue("team"),
			State: r.PostFormValue("state"), Before: r.PostFormValue("before")}
		if _, err := c.toggles.Apply(ctx, set, s.name, []toggles.Change{ch}); err != nil {
			status := http.StatusInternalServerError
			var ve *toggles.ValidationError
			var ce *toggles.ConflictError
			switch {
			case errors.As(err, &ve):
				status = http.StatusBadRequest
			case errors.As(err, &ce):
				status = http.StatusConflict
			}
			c.renderFeatures(w, r, s, status, err.Error())
			return
		}
		done := fmt.Sprintf("%s for team %s: %s", ch.Feature, ch.Team, map[string]string{toggles.On: "switched on", toggles.Off: "switched off", toggles.Inherit: "back to what the policy files say"}[ch.State])
		http.Redirect(w, r, Prefix+"features?done="+url.QueryEscape(done)+"#t-"+url.PathEscape(ch.Feature+"-"+ch.Team), http.StatusSeeOther)
		return
	}
	_ = c.toggles.Reload(ctx) // show what the store holds now
	c.renderFeatures(w, r, s, 0, "")
}

func (c *Console) renderFeatures(w http.ResponseWriter, r *http.Request, s *session, status int, problem string) {
	ctx, cancel := c.ctx(r)
	defer cancel()
	set := c.gw.Policies()
	snap := c.toggles.Current()
	data := map[string]any{"Error": problem, "Version": snap.Version}
	if set != nil {
		var keyTeams []string
		for _, p := range c.gw.Principals() {
			keyTeams = append(keyTeams, p.Team)
		}
		teams := toggles.Teams(set, snap.Overlay, keyTeams)
		cells := toggles.Matrix(set, snap.Overlay, teams)
		var rows []matrixRow
		for _, cell := range cells {
			if len(rows) == 0 || rows[len(rows)-1].Feature != cell.Feature {
				rows = append(rows, matrixRow{Feature: cell.Feature})
			}
			rows[len(rows)-1].Cells = append(rows[len(rows)-1].Cells, cell)
		}
		data["Teams"], data["Rows"] = teams, rows
		data["Export"] = toggles.ExportText(set, snap.Overlay)
		data["Overlay"] = snap.Overlay.Len()
	}
	if log, err := c.toggles.Log(ctx, 20); err == nil {
		data["Log"] = log
	} else {
		data["LogError"] = err.Error()
	}
	c.render(w, r, s, status, "features", "Features and teams", data)
}

func (c *Console) serveExport(w http.ResponseWriter, r *http.Request, _ *session) {
	ctx, cancel := c.ctx(r)
	defer cancel()
	set := c.gw.Policies()
	if set == nil {
		http.Error(w, "no policy files", http.StatusConflict)
		return
	}
	_ = c.toggles.Reload(ctx)
	w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="feature-toggles.yaml"`)
	_, _ = w.Write([]byte(toggles.ExportText(set, c.toggles.Current().Overlay)))
}

// Policies and the explain playground.

type policyView struct {
	*policies.Policy
	Sections map[string]string // context, budgets, filters, post, cache as YAML
	Vars     []string
}

const sampleRequest = `{
  "model": "gpt-4o",
  "messages": [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "How do I reset a Contoso X200 phone to factory settings?"}
  ]
}`

func (c *Console) servePolicies(w http.ResponseWriter, r *http.Request, s *session) {
	set := c.gw.Policies()
	data := map[string]any{"Principals": c.gw.Principals(), "Body": sampleRequest, "Path": "/v1/chat/completions", "Principal": s.name}
	if set != nil {
		var views []policyView
		for _, p := range set.Policies() {
			v := policyView{Policy: p, Sections: map[string]string{}}
			for name, sec := range map[string]policies.RawSection{"context": p.Context, "budgets": p.Budgets, "filters": p.Filters, "post": p.Post, "cache": p.Cache} {
				if sec.Node != nil {
					b, err := yaml.Marshal(sec.Node)
					if err == nil {
						v.Sections[name] = string(b)
					}
				}
			}
			for k, val := range p.Vars {
				v.Vars = append(v.Vars, k+" = "+val)
			}
			sort.Strings(v.Vars)
			views = append(views, v)
		}
		data["Policies"], data["Hash"], data["Features"] = views, set.Hash(), set.Features()
	}
	if r.Method == http.MethodPost {
		ctx, cancel := c.ctx(r)
		defer cancel()
		principal, path, feature, body := r.PostFormValue("principal"), r.PostFormValue("path"), r.PostFormValue("feature"), r.PostFormValue("body")
		data["Principal"], data["Path"], data["Feature"], data["Body"] = principal, path, feature, body
		switch path {
		case "/v1/chat/completions", "/v1/embeddings":
		default:
			data["Error"] = "Route: choose chat completions or embeddings."
			c.render(w, r, s, http.StatusBadRequest, "policies", "Policies", data)
			return
		}
		status, out := c.gw.Explain(ctx, s.name, principal, path, feature, []byte(body))
		data["Explained"] = true
		data["Status"] = status
		var pretty bytes.Buffer
		if json.Indent(&pretty, out, "", "  ") == nil {
			data["Result"] = pretty.String()
		} else {
			data["Result"] = string(out)
		}
		var res explainResult
		if json.Unmarshal(out, &res) == nil {
			data["Decision"] = res
			for _, u := range res.Upstream {
				if msgs, ok := u.Body["messages"].([]any); ok {
					data["Prompt"] = msgs
					break
				}
			}
		}
	}
	c.render(w, r, s, 0, "policies", "Policies", data)
}

type explainResult struct {
	Decision struct {
		Denied  bool     `json:"denied"`
		Reason  string   `json:"reason"`
		Policy  string   `json:"policy"`
		Feature string   `json:"feature"`
		Trace   []string `json:"trace"`
	} `json:"decision"`
	Pool     string `json:"pool"`
	Error    any    `json:"error"`
	Upstream []struct {
		Upstream string         `json:"upstream"`
		URL      string         `json:"url"`
		Breaker  string         `json:"breaker"`
		Body     map[string]any `json:"body"`
	} `json:"upstream_requests"`
}

// Usage and cost.

type usageFilter struct {
	Days                 int
	From, To             string
	Team, Feature, Model string
}

func (c *Console) rangeOf(r *http.Request) (usageFilter, analytics.Range, error) {
	q := r.URL.Query()
	f := usageFilter{Team: q.Get("team"), Feature: q.Get("feature"), Model: q.Get("model"), From: q.Get("from"), To: q.Get("to")}
	if f.From == "" && f.To == "" {
		f.Days = 30
		switch q.Get("days") {
		case "1":
			f.Days = 1
		case "7":
			f.Days = 7
		case "90":
			f.Days = 90
		}
		rg := analytics.LastDays(f.Days, c.now())
		f.From, f.To = rg.From, rg.To
		return f, rg, nil
	}
	rg := analytics.Range{From: f.From, To: f.To}
	if rg.To == "" {
		rg.To = c.now().UTC().Format(time.DateOnly)
		f.To = rg.To
	}
	return f, rg, rg.Valid()
}

// analytics returns the audit database, or renders the page saying why
// there is none.
func (c *Console) analytics(w http.ResponseWriter, r *http.Request, s *session, name, title string) (analytics.Backend, bool) {
	db, err := c.db()
	if db != nil && err == nil {
		return db, true
	}
	data := map[string]any{"NoDB": true}
	status := http.StatusOK
	if err != nil {
		data = map[string]any{"Error": err.Error()}
		status = http.StatusServiceUnavailable
	}
	c.render(w, r, s, status, name, title, data)
	return nil, false
}

func (c *Console) serveUsage(w http.ResponseWriter, r *http.Request, s *session) {
	db, ok := c.analytics(w, r, s, "usage", "Usage and cost")
	if !ok {
		return
	}
	ctx, cancel := c.ctx(r)
	defer cancel()
	f, rg, err := c.rangeOf(r)
	form := rangeForm{F: f, Choices: c.choices(r, db), Action: Prefix + "usage"}
	data := map[string]any{"Form": form}
	if err != nil {
		data["Error"] = err.Error()
		c.render(w, r, s, http.StatusBadRequest, "usage", "Usage and cost", data)
		return
	}
	q := analytics.UsageQuery{Range: rg, Team: f.Team, Feature: f.Feature, Model: f.Model}
	rep, err := db.Report(ctx, q, nil, []string{"day"}, []string{"team"}, []string{"feature"}, []string{"model"})
	if err != nil {
		data["Error"] = err.Error()
		c.render(w, r, s, http.StatusInternalServerError, "usage", "Usage and cost", data)
		return
	}
	if len(rep[0]) > 0 {
		data["Total"] = rep[0][0]
	}
	maxCost := 0.0
	for _, d := range rep[1] {
		maxCost = max(maxCost, d.Cost)
	}
	data["Days"], data["Teams"], data["Features"], data["Models"], data["MaxCost"] = rep[1], rep[2], rep[3], rep[4], maxCost
	c.render(w, r, s, 0, "usage", "Usage and cost", data)
}

// rangeForm is the filter form of the usage, audit and feedback pages.
type rangeForm struct {
	F       usageFilter
	Choices map[string][]string
	Action  string
	Extra   *analytics.LogQuery // the audit log's own fields
}

// choices are the filter options: the teams, features and models seen in
// the last 90 days.
func (c *Console) choices(r *http.Request, db analytics.Backend) map[string][]string {
	out, err := db.Values(r.Context(), analytics.LastDays(90, c.now()))
	if err != nil {
		return map[string][]string{}
	}
	return out
}

// The audit log.

func (c *Console) serveAudit(w http.ResponseWriter, r *http.Request, s *session) {
	db, ok := c.analytics(w, r, s, "audit", "Audit log")
	if !ok {
		return
	}
	ctx, cancel := c.ctx(r)
	defer cancel()
	f, rg, err := c.rangeOf(r)
	q := r.URL.Query()
	lq := analytics.LogQuery{Range: rg, Team: f.Team, Feature: f.Feature, Model: f.Model, Principal: q.Get("principal"),
		Outcome: q.Get("outcome"), ID: strings.TrimSpace(q.Get("id")), Before: q.Get("before")}
	data := map[string]any{"Form": rangeForm{F: f, Choices: c.choices(r, db), Action: Prefix + "audit", Extra: &lq}}
	if err == nil {
		var rows []analytics.LogRow
		rows, err = db.Log(ctx, lq)
		data["Rows"] = rows
		if len(rows) == 50 {
			next := r.URL.Query()
			next.Set("before", rows[len(rows)-1].Cursor())
			data["Next"] = Prefix + "audit?" + next.Encode()
		}
	}
	if err != nil {
		data["Error"] = err.Error()
		c.render(w, r, s, http.StatusBadRequest, "audit", "Audit log", data)
		return
	}
	c.render(w, r, s, 0, "audit", "Audit log", data)
}

func (c *Console) serveStory(w http.ResponseWriter, r *http.Request, s *session, id string) {
	db, ok := c.analytics(w, r, s, "story", "Interaction")
	if !ok {
		return
	}
	ctx, cancel := c.ctx(r)
	defer cancel()
	in, err := db.Find(ctx, id)
	if errors.Is(err, analytics.ErrNotFound) {
		c.renderError(w, r, s, http.StatusNotFound, "No interaction has the id "+id+".")
		return
	}
	if err != nil {
		c.renderError(w, r, s, http.StatusInternalServerError, err.Error())
		return
	}
	data := map[string]any{"ID": id, "Mine": in.Principal == s.name}
	status := 0
	if r.Method == http.MethodPost {
		fb, ferr := parseFeedbackForm(r)
		if ferr == nil {
			fb.ResponseID = id
			_, ferr = c.addFeedback(ctx, db, s.name, fb)
		}
		if ferr != nil {
			data["Error"] = ferr.Error()
			status = statusOf(ferr)
		} else {
			http.Redirect(w, r, Prefix+"audit/"+url.PathEscape(id)+"?done="+url.QueryEscape("Thank you: your feedback is recorded.")+"#feedback", http.StatusSeeOther)
			return
		}
	}
	var rec post.Interaction
	if err := json.Unmarshal([]byte(in.Record), &rec); err != nil {
		c.renderError(w, r, s, http.StatusInternalServerError, "The audit record is not valid JSON: "+err.Error())
		return
	}
	data["In"] = rec
	var pretty bytes.Buffer
	_ = json.Indent(&pretty, []byte(in.Record), "", "  ")
	data["Raw"] = pretty.String()
	fbs, err := db.FeedbackFor(ctx, in.ID, in.RequestID)
	if err != nil {
		data["Error"] = err.Error()
	}
	data["Feedback"] = fbs
	c.render(w, r, s, status, "story", "Interaction "+in.RequestID, data)
}

func (c *Console) serveFeedbackPage(w http.ResponseWriter, r *http.Request, s *session) {
	db, ok := c.analytics(w, r, s, "feedback", "Feedback")
	if !ok {
		return
	}
	ctx, cancel := c.ctx(r)
	defer cancel()
	f, rg, err := c.rangeOf(r)
	data := map[string]any{"Form": rangeForm{F: f, Choices: c.choices(r, db), Action: Prefix + "feedback"}}
	if err == nil {
		var rows []analytics.FeedbackRow
		rows, err = db.FeedbackSummary(ctx, rg, f.Team, f.Feature, f.Model)
		data["Rows"] = rows
	}
	if err != nil {
		data["Error"] = err.Error()
		c.render(w, r, s, http.StatusBadRequest, "feedback", "Feedback", data)
		return
	}
	c.render(w, r, s, 0, "feedback", "Feedback", data)
}

func (c *Console) servePools(w http.ResponseWriter, r *http.Request, s *session) {
	c.render(w, r, s, 0, "pools", "Pools and deployments", map[string]any{"Pools": c.gw.Pools()})
}

func (c *Console) serveBudgets(w http.ResponseWriter, r *http.Request, s *session) {
	ctx, cancel := c.ctx(r)
	defer cancel()
	c.render(w, r, s, 0, "budgets", "Budgets", map[string]any{"Budgets": c.gw.Budgets(ctx)})
}

// costBars draws cost per day as an SVG bar chart (attributes only: the
// console's CSP allows no inline style). The table below it has the
// figures; the chart is decoration for screen readers.
func costBars(rows []analytics.UsageRow, maxCost float64) template.HTML {
	if len(rows) == 0 || maxCost <= 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="bars" viewBox="0 0 %d 100" preserveAspectRatio="none" aria-hidden="true" focusable="false">`, len(rows)*10)
	for i, r := range rows {
		h := 100 * r.Cost / maxCost
		fmt.Fprintf(&b, `<rect x="%d" y="%.2f" width="8" height="%.2f"><title>%s: %s</title></rect>`, i*10+1, 100-h, h,
			template.HTMLEscapeString(r.Key["day"]), fmt.Sprintf("$%.2f", r.Cost))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
