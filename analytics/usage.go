package analytics

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

// Dimensions usage can be grouped by.
var Dimensions = []string{"day", "team", "feature", "model"}

// UsageQuery selects and groups the rollups.
type UsageQuery struct {
	Range Range
	// GroupBy lists dimensions (Dimensions); none: one total row.
	GroupBy []string
	// Team, Feature, Model filter when not "".
	Team, Feature, Model string
}

// UsageRow is one group's figures.
type UsageRow struct {
	Key              map[string]string // dimension → value
	Requests         int64
	PromptTokens     int64
	CompletionTokens int64
	Cost             float64
	CacheHits        int64
	FilterActions    int64
	Refusals         int64
	Errors           int64
	// P50, P95, P99 are latency percentiles in ms (±12%).
	P50, P95, P99 float64
}

// Usage sums requests, tokens, cost, cache hits, filter actions,
// refusals and errors, with latency percentiles, per group, largest cost
// first (by day, oldest first, when grouped by day).
func (a *DB) Usage(ctx context.Context, q UsageQuery) ([]UsageRow, error) {
	out, err := a.Report(ctx, q, q.GroupBy)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// Report is Usage for several groupings at once (q.GroupBy is ignored):
// it reads the rollup rows of the range once, so a page showing figures
// by day, team, feature and model costs one pass.
func (a *DB) Report(ctx context.Context, q UsageQuery, groupings ...[]string) ([][]UsageRow, error) {
	if err := q.Range.Valid(); err != nil {
		return nil, err
	}
	for _, g := range groupings {
		for _, d := range g {
			if !slices.Contains(Dimensions, d) {
				return nil, fmt.Errorf("group by %q: want one of %s", d, strings.Join(Dimensions, ", "))
			}
		}
	}
	where, args := q.where()
	type group struct {
		row  UsageRow
		hist []int64
	}
	groups := make([]map[string]*group, len(groupings))
	for i := range groups {
		groups[i] = map[string]*group{}
	}
	var dims [4]string // day, team, feature, model
	keyOf := func(g []string) string {
		var b strings.Builder
		for _, d := range g {
			b.WriteString(dims[slices.Index(Dimensions, d)])
			b.WriteByte(0)
		}
		return b.String()
	}
	rows, err := a.db.QueryContext(ctx, `SELECT day, team, feature, model, requests, prompt_tokens, completion_tokens, cost,
		cache_hits, filter_actions, refusals, errors FROM `+a.table+`_daily WHERE `+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var r UsageRow
		if err := rows.Scan(&dims[0], &dims[1], &dims[2], &dims[3], &r.Requests, &r.PromptTokens, &r.CompletionTokens, &r.Cost,
			&r.CacheHits, &r.FilterActions, &r.Refusals, &r.Errors); err != nil {
			return nil, err
		}
		for i, gb := range groupings {
			k := keyOf(gb)
			g := groups[i][k]
			if g == nil {
				g = &group{row: UsageRow{Key: make(map[string]string, len(gb))}}
				for _, d := range gb {
					g.row.Key[d] = dims[slices.Index(Dimensions, d)]
				}
				groups[i][k] = g
			}
			s := &g.row
			s.Requests += r.Requests
			s.PromptTokens += r.PromptTokens
			s.CompletionTokens += r.CompletionTokens
			s.Cost += r.Cost
			s.CacheHits += r.CacheHits
			s.FilterActions += r.FilterActions
			s.Refusals += r.Refusals
			s.Errors += r.Errors
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	lrows, err := a.db.QueryContext(ctx, `SELECT day, team, feature, model, bucket, n FROM `+a.table+`_latency WHERE `+where, args...)
	if err != nil {
		return nil, err
	}
	defer lrows.Close()
	for lrows.Next() {
		var b, n int64
		if err := lrows.Scan(&dims[0], &dims[1], &dims[2], &dims[3], &b, &n); err != nil {
			return nil, err
		}
		if b < 0 || b > 100 {
			continue
		}
		for i, gb := range groupings {
			g := groups[i][keyOf(gb)]
			if g == nil {
				continue
			}
			if g.hist == nil {
				g.hist = make([]int64, 101)
			}
			g.hist[b] += n
		}
	}
	if err := lrows.Err(); err != nil {
		return nil, err
	}
	out := make([][]UsageRow, len(groupings))
	for i, gb := range groupings {
		list := make([]UsageRow, 0, len(groups[i]))
		for _, g := range groups[i] {
			g.row.P50, g.row.P95, g.row.P99 = quantile(g.hist, 0.50), quantile(g.hist, 0.95), quantile(g.hist, 0.99)
			list = append(list, g.row)
		}
		if slices.Contains(gb, "day") {
			sort.Slice(list, func(i, j int) bool { return list[i].Key["day"] < list[j].Key["day"] })
		} else {
			sort.Slice(list, func(i, j int) bool {
				if list[i].Cost != list[j].Cost {
					return list[i].Cost > list[j].Cost
				}
				return fmt.Sprint(list[i].Key) < fmt.Sprint(list[j].Key)
			})
		}
		out[i] = list
	}
	return out, nil
}

func (q UsageQuery) where() (string, []any) {
	w := []string{"day >= ?", "day <= ?"}
	args := []any{q.Range.From, q.Range.To}
	for _, f := range []struct{ col, v string }{{"team", q.Team}, {"feature", q.Feature}, {"model", q.Model}} {
		if f.v != "" {
			w = append(w, f.col+" = ?")
			args = append(args, f.v)
		}
	}
	return strings.Join(w, " AND "), args
}

// quantile reads a latency histogram at q, at the bucket's geometric
// middle.
func quantile(h []int64, q float64) float64 {
	var total int64
	for _, n := range h {
		total += n
	}
	if total == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(total)))
	var seen int64
	for b, n := range h {
		seen += n
		if seen >= rank {
			if b == 0 {
				return 0.5
			}
			return math.Pow(latencyBase, float64(b)-0.5)
		}
	}
	return 0
}

// Values lists the teams, features and models seen in the range (for the
// console's filter choices), from the daily rollup alone.
func (a *DB) Values(ctx context.Context, r Range) (map[string][]string, error) {
	if err := r.Valid(); err != nil {
		return nil, err
	}
	rows, err := a.db.QueryContext(ctx, `SELECT DISTINCT team, feature, model FROM `+a.table+`_daily WHERE day >= ? AND day <= ?`, r.From, r.To)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	seen := map[string]map[string]bool{"team": {}, "feature": {}, "model": {}}
	for rows.Next() {
		var t, f, m string
		if err := rows.Scan(&t, &f, &m); err != nil {
			return nil, err
		}
		seen["team"][t], seen["feature"][f], seen["model"][m] = true, true, true
	}
	out := map[string][]string{}
	for d, vals := range seen {
		for v := range vals {
			if v != "" {
				out[d] = append(out[d], v)
			}
		}
		sort.Strings(out[d])
	}
	return out, rows.Err()
}
