package dataverse

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/groundgate/groundgate/grounding"
)

// maxPerKey bounds the records one key returns (a key for the notes of a
// case may match many).
const maxPerKey = 20

// found is a row a lookup returned, with what deciding its owner needs.
type found struct {
	key  grounding.RecordKey // the first key that matched it
	info *entityInfo
	rec  grounding.Record
	// via is a contact whose parent account is the record's customer
	// account (a case whose customer is a contact).
	via string
	// regEntity and regID name the record a note is attached to.
	regEntity, regID string
}

// keyQuery is one request of a lookup: keys of one table, their
// comparisons joined by or.
type keyQuery struct {
	info    *entityInfo
	clauses []clause
	keys    []grounding.RecordKey
	props   []string // the property each key compares, by index
}

// Lookup implements grounding.RecordSource. Keys of one table are batched
// into one $filter (at most 20 comparisons a request); tables are queried
// concurrently. Every record matched is checked against scope: the
// allowed ones are returned, the others reported as Denied. Owners come
// from the record's owning business unit and team and its customer
// account (a contact's parent account, a case's customer or its
// customer's parent account, a note's record's); when the scope names
// accounts by number the account numbers are fetched too. Those extra
// reads happen only for records the scope does not already allow.
//
// A key naming a column that is not on the table's allow-list is an
// error (a policy mistake); a key whose value cannot be a value of its
// column (a non-GUID for an id) matches nothing.
func (d *Dataverse) Lookup(ctx context.Context, keys []grounding.RecordKey, scope *grounding.Scope) ([]grounding.Record, []grounding.Denied, error) {
	if d.c == nil {
		return nil, nil, errors.New("dataverse: not provisioned")
	}
	plan, err := planLookup(keys)
	if err != nil {
		return nil, nil, err
	}
	if len(plan) == 0 {
		return nil, nil, nil
	}
	results := make([][]*found, len(plan))
	errs := make([]error, len(plan))
	if len(plan) == 1 {
		results[0], errs[0] = d.runQuery(ctx, plan[0])
	} else {
		var wg sync.WaitGroup
		for i := range plan {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i], errs[i] = d.runQuery(ctx, plan[i])
			}()
		}
		wg.Wait()
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	var all []*found
	seen := map[string]bool{}
	for _, rs := range results {
		for _, f := range rs {
			id := f.info.name + "\x00" + strings.ToLower(f.rec.ID)
			if seen[id] {
				continue
			}
			seen[id] = true
			all = append(all, f)
		}
	}
	if err := d.resolveOwners(ctx, all, scope); err != nil {
		return nil, nil, err
	}
	var (
		out    []grounding.Record
		denied []grounding.Denied
	)
	for _, f := range all {
		if !scope.Allows(f.rec.Owner) {
			denied = append(denied, grounding.Denied{Key: f.key, Entity: f.info.name, ID: f.rec.ID, Reason: grounding.ReasonOutOfScope})
			continue
		}
		out = append(out, f.rec)
	}
	return out, denied, nil
}

// planLookup groups keys by table, in the order their tables first
// appear, into requests of at most maxClauses comparisons.
func planLookup(keys []grounding.RecordKey) ([]keyQuery, error) {
	var (
		plan  []keyQuery
		open  = map[string]int{} // entity → index of its last query in plan
		dedup = map[string]bool{}
	)
	for _, k := range keys {
		info := entities[k.Entity]
		if info == nil {
			return nil, fmt.Errorf("dataverse: unknown entity %q in key %s (known: %s)", k.Entity, k.String(), strings.Join(grounding.KnownEntities, ", "))
		}
		prop, kind, ok := info.keyColumn(k.Field)
		if !ok {
			return nil, fmt.Errorf("dataverse: records cannot be looked up by %s.%s (allowed: %s)", k.Entity, k.Field, info.allowedKeys())
		}
		lit, ok := literal(kind, k.Value)
		if !ok {
			continue // cannot match anything
		}
		i, have := open[k.Entity]
		if !have || len(plan[i].clauses) >= maxClauses {
			plan = append(plan, keyQuery{info: info})
			i = len(plan) - 1
			open[k.Entity] = i
		}
		q := &plan[i]
		q.keys = append(q.keys, k)
		q.props = append(q.props, prop)
		if c := k.Entity + "\x00" + prop + "\x00" + lit; !dedup[c] {
			dedup[c] = true
			q.clauses = append(q.clauses, clause{prop: prop, lit: lit})
		}
	}
	return plan, nil
}

// runQuery fetches the rows of one keyQuery and attributes each to the
// first key it matches.
func (d *Dataverse) runQuery(ctx context.Context, q keyQuery) ([]*found, error) {
	filter := anyOf(q.clauses)
	if q.info.name == grounding.EntityKnowledgeArticle {
		filter += " and statecode eq 3" // published versions only, as Articles
	}
	query := encodeQuery("$select", d.selects[q.info.name], "$filter", filter)
	var out []*found
	perKey := make([]int, len(q.keys))
	limit := maxPerKey * len(q.keys)
	_, err := d.c.query(ctx, q.info.set, query, d.c.maxPages, func(r row) bool {
		if r[q.info.pk] == "" {
			return true
		}
		ki := 0 // a row no key matches exactly (collation) goes to the first
		for i, k := range q.keys {
			if strings.EqualFold(r[q.props[i]], k.Value) {
				ki = i
				break
			}
		}
		if perKey[ki] >= maxPerKey {
			return true
		}
		perKey[ki]++
		out = append(out, d.found(q.info, r, q.keys[ki]))
		return len(out) < limit
	})
	return out, err
}

// found builds the record of a row.
func (d *Dataverse) found(info *entityInfo, r row, key grounding.RecordKey) *found {
	f := &found{key: key, info: info}
	rec := grounding.Record{Entity: info.name, ID: r[info.pk], Title: r[info.title], Fields: map[string]string{}}
	if info.number != "" {
		rec.Number = r[info.number]
	}
	for _, c := range d.cols[info.name] {
		if c.prop == info.pk || c.prop == info.title || c.prop == info.number {
			continue // already the record's ID, Title or Number
		}
		v := r.display(c.prop)
		if v == "" {
			continue
		}
		if info.name == grounding.EntityKnowledgeArticle && c.prop == "content" {
			v = articleText(v)
		}
		rec.Fields[c.field] = v
	}
	for _, l := range info.related {
		prop := "_" + l + "_value"
		id := r[prop]
		if !isGUID(id) {
			continue
		}
		target := info.lookups[l]
		if target == "" {
			target = r[prop+lnSuffix]
		}
		t := entities[target]
		if t == nil {
			continue
		}
		// A case's customer is often its primary contact too: one key.
		if k := (grounding.RecordKey{Entity: t.name, Field: t.pk, Value: strings.ToLower(id)}); !slices.Contains(rec.Related, k) {
			rec.Related = append(rec.Related, k)
		}
	}
	rec.Owner, f.via, f.regEntity, f.regID = ownerOf(info, r)
	f.rec = rec
	return f
}

// articleText converts knowledgearticle.content (HTML) to the plain text
// prompts use.
func articleText(s string) string {
	if strings.IndexByte(s, '<') >= 0 {
		return grounding.HTMLToText(s)
	}
	return strings.TrimSpace(s)
}
