package analytics

import (
	"context"
	"fmt"
	"math"
	"regexp"
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
	if err := checkGroupings(groupings); err != nil {
		return nil, err
	}
	where, args := q.where()
	var daily []dailyRow
	rows, err := a.db.QueryContext(ctx, `SELECT day, team, feature, model, requests, prompt_tokens, completion_tokens, cost,
		cache_hits, filter_actions, refusals, errors FROM `+a.table+`_daily WHERE `+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var d dailyRow
		r := &d.row
		if err := rows.Scan(&d.dims[0], &d.dims[1], &d.dims[2], &d.dims[3], &r.Requests, &r.PromptTokens, &r.CompletionTokens, &r.Cost,
			&r.CacheHits, &r.FilterActions, &r.Refusals, &r.Errors); err != nil {
			return nil, err
		}
		daily = append(daily, d)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	var lat []latencyRow
	lrows, err := a.db.QueryContext(ctx, `SELECT day, team, feature, model, bucket, n FROM `+a.table+`_latency WHERE `+where, args...)
	if err != nil {
		return nil, err
	}
	defer lrows.Close()
	for lrows.Next() {
		var l latencyRow
		if err := lrows.Scan(&l.dims[0], &l.dims[1], &l.dims[2], &l.dims[3], &l.bucket, &l.n); err != nil {
			return nil, err
		}
		lat = append(lat, l)
	}
	if err := lrows.Err(); err != nil {
		return nil, err
	}
	return group(groupings, daily, lat), nil
}

func checkGroupings(groupings [][]string) error {
	for _, g := range groupings {
		for _, d := range g {
			if !slices.Contains(Dimensions, d) {
				return fmt.Errorf("group by %q: want one of %s", d, strings.Join(Dimensions, ", "))
			}
		}
	}
	return nil
}

// dailyRow is one (day, team, feature, model) group's sums; latencyRow
// one latency bucket's count in such a group. Both backends read these
// and group them in memory.
type dailyRow struct {
	dims [4]string // day, team, feature, model
	row  UsageRow
}

type latencyRow struct {
	dims      [4]string
	bucket, n int64
}

// group sums the rows per grouping, with latency percentiles, largest
// cost first (by day, oldest first, when grouped by day).
func group(groupings [][]string, daily []dailyRow, lat []latencyRow) [][]UsageRow {
	type acc struct {
		row  UsageRow
		hist []int64
	}
	groups := make([]map[string]*acc, len(groupings))
	for i := range groups {
		groups[i] = map[string]*acc{}
	}
	keyOf := func(g []string, dims *[4]string) string {
		var b strings.Builder
		for _, d := range g {
			b.WriteString(dims[slices.Index(Dimensions, d)])
			b.WriteByte(0)
		}
		return b.String()
	}
	for i := range daily {
		d := &daily[i]
		r := &d.row
		for gi, gb := range groupings {
			k := keyOf(gb, &d.dims)
			g := groups[gi][k]
			if g == nil {
				g = &acc{row: UsageRow{Key: make(map[string]string, len(gb))}}
				for _, dim := range gb {
					g.row.Key[dim] = d.dims[slices.Index(Dimensions, dim)]
				}
				groups[gi][k] = g
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
	for i := range lat {
		l := &lat[i]
		if l.bucket < 0 || l.bucket > 100 {
			continue
		}
		for gi, gb := range groupings {
			g := groups[gi][keyOf(gb, &l.dims)]
			if g == nil {
				continue
			}
			if g.hist == nil {
				g.hist = make([]int64, 101)
			}
			g.hist[l.bucket] += l.n
		}
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
	return out
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
	return sortedValues(seen), rows.Err()
}

func sortedValues(seen map[string]map[string]bool) map[string][]string {
	out := map[string][]string{}
	for d, vals := range seen {
		for v := range vals {
			if v != "" {
				out[d] = append(out[d], v)
			}
		}
		sort.Strings(out[d])
	}
	return out
}

var guidRe = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`)

// sortFeedback orders summary rows by feature, then team.
func sortFeedback(rows []FeedbackRow) {
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Feature != rows[j].Feature {
			return rows[i].Feature < rows[j].Feature
		}
		return rows[i].Team < rows[j].Team
	})
}
