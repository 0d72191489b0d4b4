package dvfake

import "testing"

var sampleRow = map[string]any{"gg_team": "support", "gg_status": float64(200), "gg_time": "2026-11-29T10:00:00Z", "gg_ok": true}

// The filter parser never panics, and what it accepts evaluates.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{
		"gg_team eq 'support'",
		"gg_day ge '2026-11-01' and gg_day le '2026-11-30' and (gg_team eq 'it''s' or gg_status ge 500)",
		"gg_time lt 2026-11-29T10:00:00Z or (gg_time eq 2026-11-29T10:00:00Z and gg_name lt 'req-1')",
		"not gg_feedbackon ne null",
		"gg_ok eq true and gg_cost gt -1.5e3",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseFilter(s)
		if err != nil {
			return
		}
		e.Eval(sampleRow)
		e.Eval(map[string]any{})
	})
}

// The $apply parser never panics, and what it accepts groups.
func FuzzParseApply(f *testing.F) {
	for _, s := range []string{
		"groupby((gg_team))",
		"filter(gg_day ge '2026-11-01' and gg_day le '2026-11-30')/groupby((gg_day,gg_team),aggregate($count as requests,gg_cost with sum as cost))",
		"filter(gg_feedbackscore ne null)/groupby((gg_feature,gg_team),aggregate(gg_feedbackscore with average as avg))",
		"filter(gg_team eq ')(')/groupby((gg_model),aggregate(gg_latencyms with max as hi,gg_latencyms with min as lo))",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseApply(s)
		if err != nil {
			return
		}
		if a.Filter == nil && len(a.GroupBy) == 0 {
			t.Fatalf("%q: accepted with no transformation", s)
		}
		if a.Filter != nil && len(a.GroupBy) == 0 {
			return // filter alone: rows, no groups
		}
		groupRows(filter([]map[string]any{sampleRow, {}}, a.Filter), a)
	})
}
