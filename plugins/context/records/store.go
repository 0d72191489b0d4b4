package records

import (
	"fmt"
	"sort"
	"strings"

	"github.com/groundgate/groundgate/grounding"
)

// Dataverse annotation suffixes.
const (
	fvSuffix = "@OData.Community.Display.V1.FormattedValue"
	lnSuffix = "@Microsoft.Dynamics.CRM.lookuplogicalname"
)

// entitySets maps logical names to Web API entity set names (file names).
var entitySets = map[string]string{
	grounding.EntityAccount:          "accounts",
	grounding.EntityContact:          "contacts",
	grounding.EntityIncident:         "incidents",
	grounding.EntityKnowledgeArticle: "knowledgearticles",
	grounding.EntityAnnotation:       "annotations",
}

// DefaultColumns are the columns of each entity that reach the model
// (besides the title and number). Lookups are named either way
// (customerid or _customerid_value) and print their formatted value.
var DefaultColumns = map[string][]string{
	grounding.EntityIncident:         {"description", "statecode", "statuscode", "prioritycode", "casetypecode", "customerid", "primarycontactid", "productid", "productserialnumber", "createdon"},
	grounding.EntityContact:          {"emailaddress1", "telephone1", "address1_city", "parentcustomerid"},
	grounding.EntityAccount:          {"emailaddress1", "telephone1", "address1_city", "address1_country", "primarycontactid"},
	grounding.EntityKnowledgeArticle: {"description", "keywords", "content"},
	grounding.EntityAnnotation:       {"notetext", "createdon", "objectid"},
}

// Picklist labels used when a row carries no formatted value.
var picklists = map[string]map[string]string{
	"incident.statecode":         {"0": "Active", "1": "Resolved", "2": "Canceled"},
	"incident.statuscode":        {"1": "In Progress", "2": "On Hold", "3": "Waiting for Details", "4": "Researching", "5": "Problem Solved", "1000": "Information Provided", "6": "Canceled", "2000": "Merged"},
	"incident.prioritycode":      {"1": "High", "2": "Normal", "3": "Low"},
	"incident.casetypecode":      {"1": "Question", "2": "Problem", "3": "Request"},
	"knowledgearticle.statecode": {"0": "Draft", "1": "Approved", "2": "Scheduled", "3": "Published", "4": "Expired", "5": "Archived", "6": "Discarded"},
	"account.statecode":          {"0": "Active", "1": "Inactive"},
	"contact.statecode":          {"0": "Active", "1": "Inactive"},
}

// maxIndexedValue: longer values (descriptions, content) are not lookup keys.
const maxIndexedValue = 256

// maxPerKey bounds the records one key returns.
const maxPerKey = 20

type item struct {
	entity, id string
	cols       row
	rec        grounding.Record
	article    *grounding.Article // knowledgearticle rows
}

// store holds the rows of every entity, immutable once built.
type store struct {
	items map[string][]*item                       // entity → rows, in file order
	byID  map[string]map[string]*item              // entity → lower(id) → row
	index map[string]map[string]map[string][]*item // entity → column → lower(value) → rows
}

func primaryKey(entity string) string { return entity + "id" }

// logicalColumn turns _x_value into x.
func logicalColumn(c string) string {
	if strings.HasPrefix(c, "_") && strings.HasSuffix(c, "_value") && len(c) > len("__value") {
		return c[1 : len(c)-len("_value")]
	}
	return c
}

// newStore indexes rows per entity and builds their records. columns
// overrides DefaultColumns per entity.
func newStore(data map[string][]row, articles []grounding.Article, columns map[string][]string) (*store, error) {
	s := &store{
		items: map[string][]*item{},
		byID:  map[string]map[string]*item{},
		index: map[string]map[string]map[string][]*item{},
	}
	for _, a := range articles {
		r := row{
			"knowledgearticleid": a.ID, "articlepublicnumber": a.Number, "title": a.Title,
			"description": a.Description, "keywords": strings.Join(a.Keywords, ", "), "content": a.Content,
		}
		if a.URL != "" {
			r["url"] = a.URL
		}
		if a.Internal {
			r["isinternal"] = "true"
		}
		data[grounding.EntityKnowledgeArticle] = append(data[grounding.EntityKnowledgeArticle], r)
	}
	entities := make([]string, 0, len(data))
	for e := range data {
		entities = append(entities, e)
	}
	sort.Strings(entities)
	for _, e := range entities {
		pk := primaryKey(e)
		ids := map[string]*item{}
		for i, r := range data[e] {
			id := r[pk]
			if id == "" && e == grounding.EntityKnowledgeArticle {
				id = r["articlepublicnumber"]
				r[pk] = id
			}
			if id == "" {
				return nil, fmt.Errorf("%s row %d has no %s", e, i+1, pk)
			}
			lid := strings.ToLower(id)
			if _, dup := ids[lid]; dup {
				return nil, fmt.Errorf("%s row %d: %s %s appears twice", e, i+1, pk, id)
			}
			it := &item{entity: e, id: id, cols: r}
			ids[lid] = it
			s.items[e] = append(s.items[e], it)
		}
		s.byID[e] = ids
	}
	for _, e := range entities {
		idx := map[string]map[string][]*item{}
		cols := columns[e]
		if cols == nil {
			cols = DefaultColumns[e]
		}
		for _, it := range s.items[e] {
			for c, v := range it.cols {
				if strings.ContainsRune(c, '@') || v == "" || len(v) > maxIndexedValue {
					continue
				}
				lc := logicalColumn(c)
				m := idx[lc]
				if m == nil {
					m = map[string][]*item{}
					idx[lc] = m
				}
				lv := strings.ToLower(v)
				m[lv] = append(m[lv], it)
			}
			if e == grounding.EntityKnowledgeArticle {
				a := grounding.ArticleFromColumns(func(c string) string { return it.cols[c] })
				it.article = &a
			}
			it.rec = s.record(it, cols)
		}
		s.index[e] = idx
	}
	return s, nil
}

// value returns a column's display text: its formatted value when the row
// has one, a known picklist label, or the raw value. col may be a logical
// lookup name (customerid) or the raw one (_customerid_value).
func (s *store) value(it *item, col string) (string, bool) {
	raw := col
	if _, ok := it.cols[col]; !ok {
		if lk := "_" + col + "_value"; it.cols[lk] != "" || it.cols[lk+fvSuffix] != "" {
			raw = lk
		}
	}
	if fv := it.cols[raw+fvSuffix]; fv != "" {
		return fv, true
	}
	v := it.cols[raw]
	if v == "" {
		return "", false
	}
	if labels := picklists[it.entity+"."+raw]; labels != nil {
		if l, ok := labels[v]; ok {
			return l, true
		}
	}
	if logicalColumn(raw) != raw { // a lookup without a formatted value: name the target
		if t := s.find(it.cols[raw+lnSuffix], v); t != nil {
			if title, _ := titleAndNumber(t); title != "" {
				return title, true
			}
		}
	}
	return v, true
}

// find returns the row with this id, in entity when given, else in any
// record entity.
func (s *store) find(entity, id string) *item {
	lid := strings.ToLower(id)
	if entity != "" {
		return s.byID[entity][lid]
	}
	for _, e := range []string{grounding.EntityAccount, grounding.EntityContact, grounding.EntityIncident} {
		if it := s.byID[e][lid]; it != nil {
			return it
		}
	}
	return nil
}

// titleAndNumber returns a row's primary name and number.
func titleAndNumber(it *item) (title, number string) {
	switch it.entity {
	case grounding.EntityIncident:
		return it.cols["title"], it.cols["ticketnumber"]
	case grounding.EntityAccount:
		return it.cols["name"], it.cols["accountnumber"]
	case grounding.EntityContact:
		if t := it.cols["fullname"]; t != "" {
			return t, ""
		}
		return strings.TrimSpace(it.cols["firstname"] + " " + it.cols["lastname"]), ""
	case grounding.EntityKnowledgeArticle:
		return it.cols["title"], it.cols["articlepublicnumber"]
	case grounding.EntityAnnotation:
		return it.cols["subject"], ""
	}
	return it.cols["name"], ""
}

func (s *store) record(it *item, cols []string) grounding.Record {
	r := grounding.Record{Entity: it.entity, ID: it.id, Fields: map[string]string{}}
	r.Title, r.Number = titleAndNumber(it)
	for _, c := range cols {
		v, ok := s.value(it, c)
		if !ok {
			continue
		}
		if it.article != nil && c == "content" {
			v = it.article.Content // HTML converted to text
		}
		r.Fields[logicalColumn(c)] = v
	}
	r.Owner = s.owner(it, 0)
	// Related records: every lookup that points at a known record.
	keys := make([]string, 0, len(it.cols))
	for c := range it.cols {
		keys = append(keys, c)
	}
	sort.Strings(keys)
	for _, c := range keys {
		if !strings.HasPrefix(c, "_") || !strings.HasSuffix(c, "_value") || strings.HasPrefix(c, "_owning") {
			continue
		}
		if t := s.find(it.cols[c+lnSuffix], it.cols[c]); t != nil && t != it {
			r.Related = append(r.Related, grounding.RecordKey{Entity: t.entity, Field: primaryKey(t.entity), Value: t.id})
		}
	}
	return r
}

// owner works out who may see a row: its own owning business unit and
// team, and the customer account it belongs to (through its customer,
// parent account or regarding record).
func (s *store) owner(it *item, depth int) grounding.Owner {
	if it.entity == grounding.EntityKnowledgeArticle {
		return grounding.Owner{Public: true}
	}
	o := grounding.Owner{
		BusinessUnitID: it.cols["_owningbusinessunit_value"], BusinessUnitName: it.cols["_owningbusinessunit_value"+fvSuffix],
		TeamID: it.cols["_owningteam_value"], TeamName: it.cols["_owningteam_value"+fvSuffix],
	}
	var via string
	switch it.entity {
	case grounding.EntityAccount:
		o.AccountID, o.AccountNumber = it.id, it.cols["accountnumber"]
		return o
	case grounding.EntityContact:
		via = "_parentcustomerid_value"
	case grounding.EntityIncident:
		via = "_customerid_value"
	case grounding.EntityAnnotation:
		via = "_objectid_value"
	}
	if via == "" || depth > 3 {
		return o
	}
	t := s.find(it.cols[via+lnSuffix], it.cols[via])
	if t == nil && it.entity == grounding.EntityIncident {
		t = s.find(grounding.EntityContact, it.cols["_primarycontactid_value"])
	}
	if t == nil {
		return o
	}
	to := s.owner(t, depth+1)
	o.AccountID, o.AccountNumber = to.AccountID, to.AccountNumber
	if it.entity == grounding.EntityAnnotation && o.BusinessUnitID == "" && o.TeamID == "" {
		o.BusinessUnitID, o.BusinessUnitName, o.TeamID, o.TeamName = to.BusinessUnitID, to.BusinessUnitName, to.TeamID, to.TeamName
	}
	return o
}

// lookup returns the rows matching one key.
func (s *store) lookup(k grounding.RecordKey) []*item {
	col := logicalColumn(k.Field)
	return s.index[k.Entity][col][strings.ToLower(k.Value)]
}
