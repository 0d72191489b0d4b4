package grounding

import (
	"context"
	"strings"
)

// RecordsQuery says which records Resolve returns.
type RecordsQuery struct {
	// Entities that may be returned; empty means incident, contact and
	// account. Related records (a case's customer contact or account, a
	// contact's account) are followed when their entity is listed.
	Entities []string
	// Notes adds the notes (annotation records) of every case found.
	Notes bool
	// Max caps the records returned (0: no cap): the records the keys
	// named first, then related records, then notes.
	Max int
}

// DefaultEntities are the entities a records section returns when it
// names none.
var DefaultEntities = []string{EntityIncident, EntityContact, EntityAccount}

// Resolve looks keys up in src, follows related records and notes as q
// asks, and returns the records the scope allows plus the denied ones.
// It checks every record against the scope itself too, so a source that
// returns a record it should have denied still cannot leak it.
func Resolve(ctx context.Context, src RecordSource, keys []RecordKey, scope *Scope, q RecordsQuery) ([]Record, []Denied, error) {
	if src == nil || len(keys) == 0 {
		return nil, nil, nil
	}
	entities := q.Entities
	if len(entities) == 0 {
		entities = DefaultEntities
	}
	wanted := func(e string) bool {
		if e == EntityAnnotation && q.Notes {
			return true
		}
		for _, x := range entities {
			if x == e {
				return true
			}
		}
		return false
	}
	var (
		out    []Record
		denied []Denied
		seen   = map[string]bool{}
	)
	collect := func(recs []Record, den []Denied, keys []RecordKey) {
		denied = append(denied, den...)
		for _, r := range recs {
			if !scope.Allows(r.Owner) {
				denied = append(denied, Denied{Key: keyFor(r, keys), Entity: r.Entity, ID: r.ID, Reason: ReasonOutOfScope})
				continue
			}
			k := r.Entity + "\x00" + strings.ToLower(r.ID)
			if seen[k] {
				continue
			}
			seen[k] = true
			out = append(out, r)
		}
	}

	recs, den, err := src.Lookup(ctx, keys, scope)
	if err != nil {
		return nil, nil, err
	}
	collect(recs, den, keys)

	// One hop of related records and the notes of the cases found.
	var more []RecordKey
	for _, r := range out {
		for _, k := range r.Related {
			if wanted(k.Entity) && !seen[k.Entity+"\x00"+strings.ToLower(k.Value)] {
				if k.From == "" {
					k.From = "related " + r.Entity + " " + r.ID
				}
				more = append(more, k)
			}
		}
		if q.Notes && r.Entity == EntityIncident {
			more = append(more, RecordKey{Entity: EntityAnnotation, Field: "objectid", Value: r.ID, From: "notes of incident " + r.ID})
		}
	}
	if len(more) > 0 {
		recs, den, err := src.Lookup(ctx, more, scope)
		if err != nil {
			return nil, nil, err
		}
		collect(recs, den, more)
	}

	kept := out[:0]
	for _, r := range out {
		if wanted(r.Entity) {
			kept = append(kept, r)
		}
	}
	if q.Max > 0 && len(kept) > q.Max {
		kept = kept[:q.Max]
	}
	return kept, denied, nil
}

// keyFor finds the key that asked for r (for the audit entry).
func keyFor(r Record, keys []RecordKey) RecordKey {
	for _, k := range keys {
		if k.Entity == r.Entity && (strings.EqualFold(k.Value, r.Number) || strings.EqualFold(k.Value, r.ID) || strings.EqualFold(k.Value, r.Fields[k.Field])) {
			return k
		}
	}
	for _, k := range keys {
		if k.Entity == r.Entity {
			return k
		}
	}
	if len(keys) > 0 {
		return keys[0]
	}
	return RecordKey{Entity: r.Entity}
}
