package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/groundgate/groundgate/grounding"
	"github.com/groundgate/groundgate/plugins/context/localindex"
	"github.com/groundgate/groundgate/policies"
	"github.com/groundgate/groundgate/tokens"
)

// options say what to measure.
type options struct {
	data     string // the dataset directory (knowledge.json, <split>_logs.json, <split>_labels.json)
	split    string // "dev"
	policy   string // the policy file whose context section grounds each dialogue
	index    string // a Caddyfile local_index block; {data} and {index_dir} are replaced
	indexDir string // where the index snapshot goes ("" a temporary directory)
	limit    int    // dialogues (0: all)
	noWarm   bool   // skip the untimed warm-up pass
	misses   int    // misses to list
}

// report is the outcome of a run.
type report struct {
	Dialogues, Queries   int
	Articles, Chunks     int
	Build                time.Duration
	R1, R3, R5, MRR      float64
	P50, P99, Max, Total time.Duration
	Misses               []string
}

func (r report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "index: %d documents, %d chunks, built in %v\n", r.Articles, r.Chunks, r.Build.Round(time.Millisecond))
	fmt.Fprintf(&b, "queries: %d knowledge-seeking turns of %d dialogues\n", r.Queries, r.Dialogues)
	fmt.Fprintf(&b, "recall@1 %.3f  recall@3 %.3f  recall@5 %.3f  MRR@10 %.3f\n", r.R1, r.R3, r.R5, r.MRR)
	fmt.Fprintf(&b, "grounding per query: p50 %v  p99 %v  max %v\n", r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Max.Round(time.Microsecond))
	return b.String()
}

// dialogue is one labelled conversation.
type dialogue struct {
	body []byte   // the chat request the client would send
	gold []string // ids of the right documents
	last string   // the last user message, for the list of misses
}

// goldKnowledge is one labelled knowledge snippet.
type goldKnowledge struct {
	Domain   string `json:"domain"`
	EntityID int    `json:"entity_id"`
	DocType  string `json:"doc_type"`
	DocID    int    `json:"doc_id"`
}

// docID is the id the index mapping gives the document: its location in
// knowledge.json (<domain>.<entity>.faqs.<n> or .reviews.<n>).
func (g goldKnowledge) docID() string {
	kind := "faqs"
	if g.DocType == "review" {
		kind = "reviews"
	}
	return g.Domain + "." + strconv.Itoa(g.EntityID) + "." + kind + "." + strconv.Itoa(g.DocID)
}

// loadDialogues reads the knowledge-seeking dialogues of a split as chat
// requests: the customer's turns as user messages, the agent's as
// assistant messages.
func loadDialogues(dir, split string) ([]dialogue, int, error) {
	var logs [][]struct {
		Speaker string `json:"speaker"`
		Text    string `json:"text"`
	}
	var labels []struct {
		Target    bool            `json:"target"`
		Knowledge []goldKnowledge `json:"knowledge"`
	}
	for name, v := range map[string]any{split + "_logs.json": &logs, split + "_labels.json": &labels} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, 0, err
		}
		if err := json.Unmarshal(b, v); err != nil {
			return nil, 0, fmt.Errorf("%s: %v", name, err)
		}
	}
	if len(logs) != len(labels) {
		return nil, 0, fmt.Errorf("%d logs but %d labels", len(logs), len(labels))
	}
	var out []dialogue
	for i, log := range logs {
		if !labels[i].Target || len(labels[i].Knowledge) == 0 {
			continue
		}
		type msg struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		}
		req := struct {
			Model    string `json:"model"`
			Messages []msg  `json:"messages"`
		}{Model: "gpt-4o"}
		d := dialogue{}
		for _, t := range log {
			role := "user"
			if t.Speaker == "S" {
				role = "assistant"
			}
			req.Messages = append(req.Messages, msg{Role: role, Content: t.Text})
			if role == "user" {
				d.last = t.Text
			}
		}
		d.body, _ = json.Marshal(req)
		for _, g := range labels[i].Knowledge {
			if id := g.docID(); !slices.Contains(d.gold, id) {
				d.gold = append(d.gold, id)
			}
		}
		out = append(out, d)
	}
	return out, len(logs), nil
}

// loadPlan compiles the context section of the policy file, as the
// gateway does.
func loadPlan(file string) (*grounding.Plan, error) {
	set, err := policies.Load(file)
	if err != nil {
		return nil, err
	}
	ps := set.Policies()
	if len(ps) != 1 {
		return nil, fmt.Errorf("%s: want one policy, got %d", file, len(ps))
	}
	var sec struct {
		MaxTokens int                     `yaml:"max_tokens"`
		Records   *grounding.RecordsSpec  `yaml:"records"`
		Articles  *grounding.ArticlesSpec `yaml:"articles"`
		OnError   string                  `yaml:"on_error"`
		Timeout   string                  `yaml:"timeout"`
	}
	if err := ps[0].Context.Decode(&sec); err != nil {
		return nil, err
	}
	if sec.Articles == nil {
		return nil, fmt.Errorf("%s: the policy has no context.articles section", file)
	}
	return grounding.Compile(grounding.ContextSpec{MaxTokens: sec.MaxTokens, Records: sec.Records, Articles: sec.Articles})
}

// loadIndex provisions the local_index of a Caddyfile block.
func loadIndex(ctx context.Context, file, data, dir string) (*localindex.LocalIndex, func(), error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, err
	}
	absData, err := filepath.Abs(data)
	if err != nil {
		return nil, nil, err
	}
	text := strings.NewReplacer("{data}", absData, "{index_dir}", dir).Replace(string(b))
	toks, err := caddyfile.Tokenize([]byte(text), file)
	if err != nil {
		return nil, nil, err
	}
	li := new(localindex.LocalIndex)
	if err := li.UnmarshalCaddyfile(caddyfile.NewDispenser(toks)); err != nil {
		return nil, nil, err
	}
	cctx, cancel := caddy.NewContext(caddy.Context{Context: ctx})
	if err := li.Provision(cctx); err != nil {
		cancel()
		return nil, nil, err
	}
	if err := li.Validate(); err != nil {
		cancel()
		return nil, nil, err
	}
	return li, func() { li.Cleanup(); cancel() }, nil
}

// run grounds every knowledge-seeking dialogue with the policy's plan
// and the index, and measures where the first right document lands in
// the [docN] order the model would see, and how long grounding takes.
func run(ctx context.Context, o options) (report, error) {
	var r report
	ds, n, err := loadDialogues(o.data, o.split)
	if err != nil {
		return r, err
	}
	if o.limit > 0 && len(ds) > o.limit {
		ds = ds[:o.limit]
	}
	r.Dialogues = n
	plan, err := loadPlan(o.policy)
	if err != nil {
		return r, err
	}
	dir := o.indexDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "retrievalbench")
		if err != nil {
			return r, err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	start := time.Now()
	li, done, err := loadIndex(ctx, o.index, o.data, dir)
	if err != nil {
		return r, err
	}
	defer done()
	r.Build = time.Since(start)
	st := li.Stats()
	r.Articles, r.Chunks = st.Articles, st.Chunks
	enc, err := tokens.ForModel("gpt-4o")
	if err != nil {
		return r, err
	}
	if plan.Spec.Articles.Top < 10 {
		return r, errors.New("the policy's articles.top must be at least 10 to measure MRR@10")
	}
	src := grounding.Sources{Index: li}
	// A first, untimed pass warms what is computed on first use (term
	// neighbours, token counts); the second is timed and scored.
	for _, d := range ds {
		if o.noWarm {
			break
		}
		if _, err := plan.Ground(ctx, src, grounding.Request{Body: d.body}, nil, enc); err != nil {
			return r, err
		}
	}
	lat := make([]time.Duration, 0, len(ds))
	for _, d := range ds {
		t0 := time.Now()
		res, err := plan.Ground(ctx, src, grounding.Request{Body: d.body}, nil, enc)
		lat = append(lat, time.Since(t0))
		if err != nil {
			return r, err
		}
		rank := 0
		for i, doc := range res.Packed.Docs {
			if slices.Contains(d.gold, doc.Number) {
				rank = i + 1
				break
			}
		}
		r.Queries++
		switch {
		case rank == 0:
		case rank <= 10:
			r.MRR += 1 / float64(rank)
			fallthrough
		default:
			if rank == 1 {
				r.R1++
			}
			if rank <= 3 {
				r.R3++
			}
			if rank <= 5 {
				r.R5++
			}
		}
		if (rank == 0 || rank > 3) && len(r.Misses) < o.misses {
			top := ""
			if len(res.Packed.Docs) > 0 {
				top = res.Packed.Docs[0].Number + " " + res.Packed.Docs[0].Title
			}
			r.Misses = append(r.Misses, fmt.Sprintf("rank %d: %q want %v, top %s", rank, d.last, d.gold, top))
		}
	}
	if r.Queries == 0 {
		return r, errors.New("no knowledge-seeking dialogue")
	}
	q := float64(r.Queries)
	r.R1, r.R3, r.R5, r.MRR = r.R1/q, r.R3/q, r.R5/q, r.MRR/q
	slices.Sort(lat)
	for _, l := range lat {
		r.Total += l
	}
	r.P50, r.P99, r.Max = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)], lat[len(lat)-1]
	return r, nil
}
