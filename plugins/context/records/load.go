package records

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// row is one record as read from a file: column → value as text.
type row map[string]string

// maxDataFile bounds one data file.
const maxDataFile = 64 << 20

// parseRowsJSON reads rows from a JSON file: an array of objects, one
// object, or a Dataverse Web API response {"value": [...]} (so a saved
// GET …/api/data/v9.2/incidents?$select=… response loads as is). Strings
// are kept, numbers keep their literal form, booleans become true/false,
// nulls are dropped, and so are nested objects and arrays (expanded
// navigation properties) and @odata.* annotations.
func parseRowsJSON(data []byte) ([]row, error) {
	if len(data) > maxDataFile {
		return nil, fmt.Errorf("larger than %d bytes", maxDataFile)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var top any
	if err := dec.Decode(&top); err != nil {
		return nil, jsonErr(data, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("unexpected data after the JSON value")
	}
	var items []any
	switch v := top.(type) {
	case []any:
		items = v
	case map[string]any:
		if val, ok := v["value"]; ok {
			list, ok := val.([]any)
			if !ok {
				return nil, errors.New(`"value" must be an array of rows`)
			}
			items = list
		} else {
			items = []any{v}
		}
	default:
		return nil, errors.New("expected an array of rows, a row, or {\"value\": [rows]}")
	}
	rows := make([]row, 0, len(items))
	for i, it := range items {
		obj, ok := it.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("row %d is not an object", i)
		}
		r := make(row, len(obj))
		for k, v := range obj {
			if strings.HasPrefix(k, "@odata.") || k == "" {
				continue
			}
			switch x := v.(type) {
			case string:
				r[k] = x
			case json.Number:
				r[k] = x.String()
			case bool:
				if x {
					r[k] = "true"
				} else {
					r[k] = "false"
				}
			}
		}
		rows = append(rows, r)
	}
	return rows, nil
}

func jsonErr(data []byte, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line := 1 + bytes.Count(data[:min(int(se.Offset), len(data))], []byte("\n"))
		return fmt.Errorf("line %d: %v", line, err)
	}
	return err
}

// parseRowsCSV reads rows from a CSV file whose first line names the
// columns (logical names, e.g. ticketnumber,title,_customerid_value).
// Empty cells are absent values. Every line must have as many cells as
// the header.
func parseRowsCSV(data []byte) ([]row, error) {
	if len(data) > maxDataFile {
		return nil, fmt.Errorf("larger than %d bytes", maxDataFile)
	}
	if !utf8.Valid(data) {
		return nil, errors.New("not valid UTF-8")
	}
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	cr := csv.NewReader(bytes.NewReader(data))
	cr.ReuseRecord = false
	header, err := cr.Read()
	if err == io.EOF {
		return nil, errors.New("empty file: the first line must name the columns")
	}
	if err != nil {
		return nil, err
	}
	seen := make(map[string]bool, len(header))
	for i, h := range header {
		h = strings.TrimSpace(h)
		if h == "" {
			return nil, fmt.Errorf("line 1: column %d has no name", i+1)
		}
		if seen[h] {
			return nil, fmt.Errorf("line 1: column %q is named twice", h)
		}
		seen[h] = true
		header[i] = h
	}
	var rows []row
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err // csv errors name the line
		}
		r := make(row, len(header))
		for i, v := range rec {
			if v != "" {
				r[header[i]] = v
			}
		}
		rows = append(rows, r)
	}
	return rows, nil
}
