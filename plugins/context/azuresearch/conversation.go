package azuresearch

import (
	"context"
	"fmt"
	"strings"

	"github.com/groundgate/groundgate/grounding"
)

// SearchQuery implements grounding.QueryIndex: the conversation's query
// text, the policy's filters as OData clauses on the mapped fields
// (fields.entity, fields.metadata), and its boosts as the scoring
// profile's tag parameters (boost) or, without one, as phrases added to
// the search text. A filter or boost on a field the index does not map
// is an error: the policy expects a restriction the index cannot apply.
func (s *AzureSearch) SearchQuery(ctx context.Context, q grounding.Query, k int, f grounding.Filter) ([]grounding.Hit, error) {
	x, text, err := s.extras(q)
	if err != nil {
		return nil, err
	}
	if x.clauses == nil && x.params == nil && text == q.Text {
		return s.Search(ctx, q.Text, k, f)
	}
	return s.search(ctx, text, k, f, x)
}

// extras turns the query's matches into filter clauses, scoring
// parameters and the search text.
func (s *AzureSearch) extras(q grounding.Query) (extras, string, error) {
	var x extras
	text := q.Text
	fm := s.fields()
	for _, m := range q.Match {
		if m.Filter {
			field := fm.Entity
			switch m.Field {
			case grounding.FieldEntity:
			case grounding.FieldTitle:
				field = fm.Title
			default:
				field = fm.Metadata[m.Field]
			}
			if field == "" {
				return x, "", fmt.Errorf("azure_search: the policy filters on %q, which fields does not map", m.Field)
			}
			var or []string
			for _, v := range m.Values {
				if lit, ok := literal(v); ok {
					or = append(or, field+" eq "+lit)
				}
			}
			if len(or) == 0 {
				return x, "", fmt.Errorf("azure_search: no usable value to filter %q on", m.Field)
			}
			x.clauses = append(x.clauses, "("+strings.Join(or, " or ")+")")
			continue
		}
		if b := s.Boost; b != nil && b.Parameters[m.Field] != "" {
			var vals []string
			for _, v := range m.Values {
				// Tag values are comma-separated: leave out what cannot
				// be one.
				if !strings.ContainsAny(v, ",'\x00\n") {
					vals = append(vals, v)
				}
			}
			if len(vals) > 0 {
				x.profile = b.ScoringProfile
				x.params = append(x.params, b.Parameters[m.Field]+"-"+strings.Join(vals, ","))
			}
			continue
		}
		for _, v := range m.Values {
			text = `"` + strings.ReplaceAll(v, `"`, ` `) + `" ` + text
		}
	}
	return x, text, nil
}

var _ grounding.QueryIndex = (*AzureSearch)(nil)
