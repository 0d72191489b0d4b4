package dataverse

import (
	"context"
	"strings"

	"github.com/groundgate/groundgate/grounding"
)

// ownerOf reads what a row itself says about who may see it: its owning
// business unit and team and, when the row names it, its customer
// account. via is a contact whose parent account is the customer account
// (a case whose customer is a contact); regEntity and regID name the
// record a note is attached to. Both need another read (resolveOwners).
func ownerOf(info *entityInfo, r row) (o grounding.Owner, via, regEntity, regID string) {
	if info.name == grounding.EntityKnowledgeArticle {
		return grounding.Owner{Public: true}, "", "", ""
	}
	o.BusinessUnitID, o.BusinessUnitName = strings.ToLower(r[colOwningBU]), r[colOwningBU+fvSuffix]
	o.TeamID, o.TeamName = strings.ToLower(r[colOwningTeam]), r[colOwningTeam+fvSuffix]
	switch info.name {
	case grounding.EntityAccount:
		o.AccountID, o.AccountNumber = strings.ToLower(r[info.pk]), r["accountnumber"]
	case grounding.EntityContact:
		// parentcustomerid may point to an account or a contact.
		if p := r["_parentcustomerid_value"]; isGUID(p) && accountOrUnknown(r["_parentcustomerid_value"+lnSuffix]) {
			o.AccountID = strings.ToLower(p)
		}
	case grounding.EntityIncident:
		c := r["_customerid_value"]
		if isGUID(c) {
			if r["_customerid_value"+lnSuffix] == grounding.EntityContact {
				via = strings.ToLower(c)
			} else {
				o.AccountID = strings.ToLower(c)
			}
		}
	case grounding.EntityAnnotation:
		if id := r["_objectid_value"]; isGUID(id) {
			regEntity, regID = r["_objectid_value"+lnSuffix], strings.ToLower(id)
		}
	}
	return o, via, regEntity, regID
}

// accountOrUnknown: a lookup without its table annotation is taken for
// an account. GUIDs are unique across tables, so a contact's id taken for
// an account id matches no scope entry.
func accountOrUnknown(logical string) bool {
	return logical == "" || logical == grounding.EntityAccount
}

// resolveOwners completes the owners of the records scope does not allow
// yet, with batched reads: the records notes are attached to, the parent
// accounts of contacts that are cases' customers, and account numbers
// when the scope names accounts by number. A nil scope allows everything
// and an empty one only public records, so neither needs them.
func (d *Dataverse) resolveOwners(ctx context.Context, all []*found, scope *grounding.Scope) error {
	if scope == nil || len(scope.Accounts)+len(scope.BusinessUnits)+len(scope.Teams) == 0 {
		return nil
	}
	pending := func(f *found) bool { return !scope.Allows(f.rec.Owner) }

	// 1. Notes take the account of the record they are attached to, and
	// its business unit and team when they have none of their own.
	want := map[string][]string{}
	for _, f := range all {
		if f.regID != "" && pending(f) {
			if e := entities[f.regEntity]; e != nil && len(e.ownerCols) > 0 && e.name != grounding.EntityAnnotation {
				want[e.name] = append(want[e.name], f.regID)
			}
		}
	}
	regarded := map[string]map[string]row{}
	for e, ids := range want {
		info := entities[e]
		rows, err := d.fetchByID(ctx, info, ids, info.pk+","+strings.Join(info.ownerCols, ","))
		if err != nil {
			return err
		}
		regarded[e] = rows
	}
	for _, f := range all {
		r := regarded[f.regEntity][f.regID]
		if r == nil {
			continue
		}
		ro, via, _, _ := ownerOf(entities[f.regEntity], r)
		o := &f.rec.Owner
		o.AccountID, o.AccountNumber, f.via = ro.AccountID, ro.AccountNumber, via
		if o.BusinessUnitID == "" && o.TeamID == "" {
			o.BusinessUnitID, o.BusinessUnitName, o.TeamID, o.TeamName = ro.BusinessUnitID, ro.BusinessUnitName, ro.TeamID, ro.TeamName
		}
	}

	// 2. A case whose customer is a contact belongs to the contact's
	// parent account.
	var contacts []string
	for _, f := range all {
		if f.via != "" && f.rec.Owner.AccountID == "" && pending(f) {
			contacts = append(contacts, f.via)
		}
	}
	if len(contacts) > 0 {
		rows, err := d.fetchByID(ctx, entities[grounding.EntityContact], contacts, "contactid,_parentcustomerid_value")
		if err != nil {
			return err
		}
		for _, f := range all {
			if c := rows[f.via]; c != nil && f.rec.Owner.AccountID == "" {
				if p := c["_parentcustomerid_value"]; isGUID(p) && accountOrUnknown(c["_parentcustomerid_value"+lnSuffix]) {
					f.rec.Owner.AccountID = strings.ToLower(p)
				}
			}
		}
	}

	// 3. Account numbers, only when the scope lists accounts by number.
	if !namesAccountNumbers(scope) {
		return nil
	}
	var accounts []string
	for _, f := range all {
		if o := f.rec.Owner; o.AccountID != "" && o.AccountNumber == "" && pending(f) {
			accounts = append(accounts, o.AccountID)
		}
	}
	if len(accounts) == 0 {
		return nil
	}
	rows, err := d.fetchByID(ctx, entities[grounding.EntityAccount], accounts, "accountid,accountnumber")
	if err != nil {
		return err
	}
	for _, f := range all {
		if a := rows[f.rec.Owner.AccountID]; a != nil && f.rec.Owner.AccountNumber == "" {
			f.rec.Owner.AccountNumber = a["accountnumber"]
		}
	}
	return nil
}

func namesAccountNumbers(s *grounding.Scope) bool {
	for _, a := range s.Accounts {
		if a != "" && !isGUID(a) {
			return true
		}
	}
	return false
}

// fetchByID reads rows by primary key (GUIDs), selecting sel, in batches
// of maxClauses; the result is keyed by lower-case id.
func (d *Dataverse) fetchByID(ctx context.Context, info *entityInfo, ids []string, sel string) (map[string]row, error) {
	out := map[string]row{}
	seen := map[string]bool{}
	var batch []clause
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		q := encodeQuery("$select", sel, "$filter", anyOf(batch))
		batch = batch[:0]
		_, err := d.c.query(ctx, info.set, q, d.c.maxPages, func(r row) bool {
			if id := strings.ToLower(r[info.pk]); id != "" {
				out[id] = r
			}
			return true
		})
		return err
	}
	for _, id := range ids {
		lit, ok := literal(kindGUID, id)
		if !ok || seen[lit] {
			continue
		}
		seen[lit] = true
		batch = append(batch, clause{prop: info.pk, lit: lit})
		if len(batch) == maxClauses {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}
