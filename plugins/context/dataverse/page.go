package dataverse

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tidwall/gjson"
)

// Web API annotation suffixes (requested with Prefer: odata.include-annotations).
const (
	fvSuffix = "@OData.Community.Display.V1.FormattedValue"
	lnSuffix = "@Microsoft.Dynamics.CRM.lookuplogicalname"
)

// row is one record of a Web API answer: property → value as text.
// Strings stay as they are, numbers keep their JSON literal, booleans are
// "true"/"false"; nulls, expanded navigation properties (objects and
// arrays) and record annotations (@odata.etag) are left out. Property
// annotations stay under their full name, e.g.
// "statecode@OData.Community.Display.V1.FormattedValue".
type row map[string]string

// display is a property's text for the model: its formatted value when
// Dataverse sent one (picklists, dates, money, lookups), else the raw value.
func (r row) display(prop string) string {
	if fv := r[prop+fvSuffix]; fv != "" {
		return fv
	}
	return r[prop]
}

// parsePage reads one Web API collection answer:
//
//	{"@odata.context": "…", "value": [{…}, …], "@odata.nextLink": "…"}
//
// and returns its rows and the nextLink ("" on the last page).
func parsePage(data []byte) (rows []row, next string, err error) {
	if !gjson.ValidBytes(data) {
		return nil, "", errors.New("the answer is not JSON")
	}
	root := gjson.ParseBytes(data)
	if !root.IsObject() {
		return nil, "", errors.New("the answer is not a JSON object")
	}
	var value gjson.Result
	haveValue := false
	root.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "value":
			value, haveValue = v, true
		case "@odata.nextLink":
			if v.Type != gjson.String {
				err = errors.New("@odata.nextLink is not a string")
				return false
			}
			next = v.Str
		}
		return true
	})
	if err != nil {
		return nil, "", err
	}
	if !haveValue || !value.IsArray() {
		return nil, "", errors.New(`the answer has no "value" array`)
	}
	i := 0
	value.ForEach(func(_, v gjson.Result) bool {
		if !v.IsObject() {
			err = fmt.Errorf("value[%d] is not an object", i)
			return false
		}
		rows = append(rows, parseRow(v))
		i++
		return true
	})
	if err != nil {
		return nil, "", err
	}
	return rows, next, nil
}

// parseRow converts one JSON object to a row (see row).
func parseRow(obj gjson.Result) row {
	r := make(row, 16)
	obj.ForEach(func(k, v gjson.Result) bool {
		key := k.Str
		if key == "" || strings.HasPrefix(key, "@") {
			return true
		}
		switch v.Type {
		case gjson.String:
			r[key] = v.Str
		case gjson.Number:
			r[key] = v.Raw
		case gjson.True:
			r[key] = "true"
		case gjson.False:
			r[key] = "false"
		}
		return true
	})
	return r
}
