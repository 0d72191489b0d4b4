package dataverse

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/groundgate/groundgate/grounding"
)

// SearchQuery implements grounding.QueryIndex with Dataverse search: the
// policy's filters become clauses of the knowledgearticle filter on the
// columns search.match_columns maps, and its boosts put their values in
// front of the search text (Dataverse search keeps only its first 100
// characters, so the values and the newest message come first). A
// filter on a field no column is mapped to is an error.
func (d *Dataverse) SearchQuery(ctx context.Context, q grounding.Query, k int, f grounding.Filter) ([]grounding.Hit, error) {
	if d.search == nil {
		return nil, errors.New("dataverse: search is off (set search on to use Dataverse as an index)")
	}
	text := q.Text
	var clauses []string
	var boosts []string
	for _, m := range q.Match {
		if !m.Filter {
			boosts = append(boosts, m.Values...)
			continue
		}
		col := d.search.match[m.Field]
		if col == "" && m.Field == grounding.FieldTitle {
			col = "title"
		}
		if col == "" {
			return nil, fmt.Errorf("dataverse: the policy filters articles on %q, which search match_columns does not map", m.Field)
		}
		var cs []clause
		for _, v := range m.Values {
			if lit, ok := literal(kindText, v); ok && len(cs) < maxClauses {
				cs = append(cs, clause{prop: col, lit: lit})
			}
		}
		if len(cs) == 0 {
			return nil, fmt.Errorf("dataverse: no usable value to filter articles on %q", m.Field)
		}
		clauses = append(clauses, anyOf(cs))
	}
	if len(boosts) > 0 {
		text = strings.Join(boosts, " ") + " " + text
	}
	return d.searchWith(ctx, text, k, f, clauses)
}

var _ grounding.QueryIndex = (*Dataverse)(nil)
