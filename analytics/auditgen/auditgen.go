// Package auditgen makes realistic audit data for the analytics
// benchmark and for trying the admin console: interactions of several
// teams, features and models over a span of days, with refusals, errors,
// cache hits, filter actions, grounding context and citations, written
// through the audit sink's own SQLite writer.
package auditgen

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/groundgate/groundgate/plugins/post/audit"
	"github.com/groundgate/groundgate/post"
)

// Options say what to make.
type Options struct {
	Path  string    // SQLite file
	Table string    // default "audit"
	Rows  int       // interactions
	Days  int       // spread over the days ending at End
	End   time.Time // default now
	Seed  uint64
	// Progress, when set, is called after each batch.
	Progress func(done int)
}

var (
	teams    = []string{"support", "billing", "escalations", "sales", "field-service"}
	features = []string{"ask_question", "draft_email", "summarize_case", "summarize_conversation", "draft_chat_reply", ""}
	policyOf = map[string]string{"ask_question": "ask-question", "draft_email": "draft-email", "summarize_case": "summarize-case",
		"summarize_conversation": "summarize-conversation", "draft_chat_reply": "draft-chat-reply", "": "general-chat"}
	models    = []string{"gpt-4o", "gpt-4o", "gpt-4o-mini", "gpt-4o-mini", "gpt-4o-mini"}
	upstreams = map[string][]string{"gpt-4o": {"aoai-eastus", "aoai-swedencentral"}, "gpt-4o-mini": {"aoai-eastus-mini"}}
	price     = map[string][2]float64{"gpt-4o": {2.5, 10}, "gpt-4o-mini": {0.15, 0.6}} // $ per 1M tokens in, out
)

// Generate writes o.Rows interactions.
func Generate(ctx context.Context, o Options) error {
	if o.Rows <= 0 || o.Days <= 0 {
		return fmt.Errorf("auditgen: rows and days must be positive")
	}
	if o.End.IsZero() {
		o.End = time.Now()
	}
	w, err := audit.OpenSQLiteWriter(audit.SQLite{Path: o.Path, Table: o.Table})
	if err != nil {
		return err
	}
	defer w.Close()
	r := rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))
	start := o.End.Add(-time.Duration(o.Days) * 24 * time.Hour)
	step := time.Duration(o.Days) * 24 * time.Hour / time.Duration(o.Rows)
	const batch = 5000
	recs := make([]*post.Interaction, 0, batch)
	for i := range o.Rows {
		recs = append(recs, one(r, i, start.Add(time.Duration(i)*step+time.Duration(r.Int64N(int64(step)+1)))))
		if len(recs) == batch || i == o.Rows-1 {
			if err := w.Write(ctx, recs); err != nil {
				return err
			}
			recs = recs[:0]
			if o.Progress != nil {
				o.Progress(i + 1)
			}
		}
	}
	return nil
}

func one(r *rand.Rand, i int, t time.Time) *post.Interaction {
	team := teams[zipf(r, len(teams))]
	feature := features[r.IntN(len(features))]
	model := models[r.IntN(len(models))]
	in := &post.Interaction{
		RequestID:     fmt.Sprintf("req_%016x", r.Uint64()),
		Time:          t.UTC(),
		Principal:     fmt.Sprintf("%s-agent-%d", team, r.IntN(4)+1),
		Team:          team,
		Policy:        policyOf[feature],
		PolicyVersion: "sha256:" + fmt.Sprintf("%08x", uint32(i/200000)),
		Feature:       feature,
		Route:         "chat.completions",
		Model:         model,
		Stream:        r.IntN(3) == 0,
		Status:        200,
	}
	switch p := r.IntN(1000); {
	case p < 30:
		in.Status, in.Error = 403, "policy_denied"
	case p < 45:
		in.Status, in.Error = 429, "budget_exceeded"
	case p < 55:
		in.Status, in.Error = 400, "content_filter"
		in.FilterActions = []post.FilterAction{{Filter: "prompt_injection", Category: "jailbreak", Stage: "input", Action: "block"}}
	case p < 62:
		in.Status, in.Error = 502, "upstream_error"
	}
	ups := upstreams[model]
	in.Upstream = ups[r.IntN(len(ups))]
	// Latency: log-normal around 900 ms for answers, a few ms for refusals.
	if in.Status == 200 || in.Status == 502 {
		in.LatencyMS = math.Round(math.Exp(6.8+0.6*r.NormFloat64())*100) / 100
		in.PromptTokens = int64(400 + r.IntN(2500))
		in.CompletionTokens = int64(40 + r.IntN(500))
		in.ResponseID = fmt.Sprintf("chatcmpl-%016x", r.Uint64())
		pr := price[model]
		in.Cost = (float64(in.PromptTokens)*pr[0] + float64(in.CompletionTokens)*pr[1]) / 1e6
		if in.Status == 200 && r.IntN(12) == 0 {
			in.CacheHit, in.LatencyMS, in.Cost = true, 2+r.Float64()*3, 0
		}
		if r.IntN(4) == 0 {
			in.FilterActions = append(in.FilterActions, post.FilterAction{Filter: "pii", Category: "email", Stage: "input", Action: "redact"})
		}
		if feature != "" && feature != "draft_email" {
			in.Records = []post.RecordRef{{Entity: "incident", ID: fmt.Sprintf("%08x-0000-4000-8000-%012x", r.Uint32(), r.Uint64()&0xffffffffffff), Number: fmt.Sprintf("CAS-%05d", r.IntN(99999))}}
			for d := range 3 {
				in.Articles = append(in.Articles, post.ArticleRef{Ref: fmt.Sprintf("doc%d", d+1), ID: fmt.Sprintf("kb-%04d", r.IntN(400)), Number: fmt.Sprintf("KA-%05d", r.IntN(99999)), Cited: r.IntN(2) == 0})
			}
			in.Citations = &post.CitationSummary{Cited: 1 + r.IntN(2)}
		}
	} else {
		in.LatencyMS = 0.3 + r.Float64()*2
	}
	return in
}

// zipf picks small indexes more often: some teams use the copilot more.
func zipf(r *rand.Rand, n int) int {
	for {
		i := int(math.Floor(math.Pow(float64(n+1), r.Float64()))) - 1
		if i < n {
			return i
		}
	}
}
