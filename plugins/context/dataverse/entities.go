package dataverse

import (
	"fmt"
	"strings"

	"github.com/groundgate/groundgate/grounding"
)

// entityInfo is what the module knows of one Dataverse table: where it
// lives in the Web API and which of its columns may be looked up.
type entityInfo struct {
	name   string // logical name, e.g. "incident"
	set    string // entity set name, e.g. "incidents"
	pk     string // primary key column
	title  string // primary name column
	number string // public number column, "" when the table has none

	// lookups maps the logical name of each lookup column the module may
	// read to its target table ("" when the lookup is polymorphic and the
	// target comes from the lookuplogicalname annotation). The Web API
	// names a lookup column _<name>_value.
	lookups map[string]string
	// keys are the columns a RecordKey may name besides the primary key
	// and the lookups listed in keyLookups. Keys come from user text:
	// nothing outside these lists ever reaches a $filter.
	keys       []string
	keyLookups []string
	// defaults are the columns that reach the model when the config
	// selects none for this table.
	defaults []string
	// ownerCols are the columns read to decide who may see a row, besides
	// the primary key.
	ownerCols []string
	// related are the lookups whose targets are the record's related
	// records (Record.Related).
	related []string
}

// Owner columns shared by every user- or team-owned table.
const (
	colOwningBU   = "_owningbusinessunit_value"
	colOwningTeam = "_owningteam_value"
)

var entities = map[string]*entityInfo{
	grounding.EntityIncident: {
		name: grounding.EntityIncident, set: "incidents", pk: "incidentid", title: "title", number: "ticketnumber",
		lookups: map[string]string{
			"customerid": "", "primarycontactid": grounding.EntityContact, "parentcaseid": grounding.EntityIncident,
			"productid": "product", "subjectid": "subject", "ownerid": "",
			"owningbusinessunit": "businessunit", "owningteam": "team", "owninguser": "systemuser",
		},
		keys:       []string{"ticketnumber", "title"},
		keyLookups: []string{"customerid", "primarycontactid"},
		defaults:   []string{"description", "statecode", "statuscode", "prioritycode", "casetypecode", "customerid", "primarycontactid", "createdon"},
		ownerCols:  []string{colOwningBU, colOwningTeam, "_customerid_value"},
		related:    []string{"customerid", "primarycontactid"},
	},
	grounding.EntityContact: {
		name: grounding.EntityContact, set: "contacts", pk: "contactid", title: "fullname",
		lookups: map[string]string{
			"parentcustomerid": "", "ownerid": "",
			"owningbusinessunit": "businessunit", "owningteam": "team", "owninguser": "systemuser",
		},
		keys:       []string{"emailaddress1", "emailaddress2", "emailaddress3", "fullname", "telephone1", "mobilephone"},
		keyLookups: []string{"parentcustomerid"},
		defaults:   []string{"emailaddress1", "telephone1", "address1_city", "parentcustomerid"},
		ownerCols:  []string{colOwningBU, colOwningTeam, "_parentcustomerid_value"},
		related:    []string{"parentcustomerid"},
	},
	grounding.EntityAccount: {
		name: grounding.EntityAccount, set: "accounts", pk: "accountid", title: "name", number: "accountnumber",
		lookups: map[string]string{
			"primarycontactid": grounding.EntityContact, "parentaccountid": grounding.EntityAccount, "ownerid": "",
			"owningbusinessunit": "businessunit", "owningteam": "team", "owninguser": "systemuser",
		},
		keys:       []string{"accountnumber", "name", "emailaddress1", "telephone1"},
		keyLookups: []string{"primarycontactid"},
		defaults:   []string{"emailaddress1", "telephone1", "address1_city", "address1_country", "primarycontactid"},
		ownerCols:  []string{colOwningBU, colOwningTeam, "accountnumber"},
		related:    []string{"primarycontactid"},
	},
	grounding.EntityKnowledgeArticle: {
		name: grounding.EntityKnowledgeArticle, set: "knowledgearticles", pk: "knowledgearticleid", title: "title", number: "articlepublicnumber",
		lookups: map[string]string{
			"ownerid": "", "owningbusinessunit": "businessunit", "owningteam": "team", "owninguser": "systemuser",
			"languagelocaleid": "languagelocale", "parentarticlecontentid": grounding.EntityKnowledgeArticle,
		},
		keys:     []string{"articlepublicnumber", "title"},
		defaults: []string{"description", "keywords", "content"},
	},
	grounding.EntityAnnotation: {
		name: grounding.EntityAnnotation, set: "annotations", pk: "annotationid", title: "subject",
		lookups: map[string]string{
			"objectid": "", "ownerid": "",
			"owningbusinessunit": "businessunit", "owningteam": "team", "owninguser": "systemuser",
		},
		keyLookups: []string{"objectid"},
		defaults:   []string{"notetext", "createdon", "objectid"},
		ownerCols:  []string{colOwningBU, colOwningTeam, "_objectid_value"},
		related:    []string{"objectid"},
	},
}

// Column kinds of a key: a GUID is written bare in $filter, text quoted.
const (
	kindText = iota
	kindGUID
)

// keyColumn maps a RecordKey's field to the Web API property it filters
// on, or reports that the field may not be looked up. Lookups are
// accepted by logical name (customerid) or Web API name
// (_customerid_value).
func (e *entityInfo) keyColumn(field string) (prop string, kind int, ok bool) {
	if field == e.pk {
		return e.pk, kindGUID, true
	}
	for _, k := range e.keys {
		if field == k {
			return k, kindText, true
		}
	}
	logical := logicalName(field)
	for _, k := range e.keyLookups {
		if logical == k {
			return "_" + k + "_value", kindGUID, true
		}
	}
	return "", 0, false
}

// allowedKeys lists the fields keyColumn accepts, for error messages.
func (e *entityInfo) allowedKeys() string {
	all := append([]string{e.pk}, e.keys...)
	all = append(all, e.keyLookups...)
	return strings.Join(all, ", ")
}

// logicalName turns _x_value into x and leaves other names alone.
func logicalName(c string) string {
	if strings.HasPrefix(c, "_") && strings.HasSuffix(c, "_value") && len(c) > len("__value") {
		return c[1 : len(c)-len("_value")]
	}
	return c
}

// column is one selected column: the Web API property and the key of
// Record.Fields it fills.
type column struct {
	prop  string // e.g. "_customerid_value" or "description"
	field string // e.g. "customerid" or "description"
}

// columns resolves configured column names (logical names, lookups either
// way) to Web API properties.
func (e *entityInfo) columns(names []string) ([]column, error) {
	out := make([]column, 0, len(names))
	seen := map[string]bool{}
	for _, n := range names {
		if !isColumnName(n) {
			return nil, fmt.Errorf("select %s: %q is not a column name (lower-case letters, digits and _)", e.name, n)
		}
		c := column{prop: n, field: logicalName(n)}
		if _, isLookup := e.lookups[n]; isLookup {
			c.prop = "_" + n + "_value"
		}
		if seen[c.prop] {
			continue
		}
		seen[c.prop] = true
		out = append(out, c)
	}
	return out, nil
}

// isColumnName accepts Dataverse logical names: they are all lower case.
// Anything else (spaces, quotes, parentheses, slashes) could change the
// meaning of $select or $filter.
func isColumnName(s string) bool {
	if s == "" || len(s) > 100 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return s[0] != '_' || (strings.HasSuffix(s, "_value") && len(s) > len("__value"))
}
