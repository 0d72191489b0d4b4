package dataverse

import (
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// seed reads a committed fuzz seed ([]byte("…") form) back.
func seed(t *testing.T, fuzz, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/fuzz/" + fuzz + "/" + name)
	if err != nil {
		t.Fatal(err)
	}
	_, lit, _ := strings.Cut(string(b), "[]byte(")
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimSpace(lit), ")"))
	if err != nil {
		t.Fatal(err)
	}
	return []byte(s)
}

func TestParsePageDocExamples(t *testing.T) {
	rows, next, err := parsePage(seed(t, "FuzzParsePage", "doc_formatted"))
	if err != nil || next != "" {
		t.Fatal(err, next)
	}
	want := []row{{
		"name": "A. Datum Corporation (sample)", "statecode": "0", "statecode" + fvSuffix: "Active",
		"statuscode": "1", "statuscode" + fvSuffix: "Active", "accountid": "4b757ff7-9c85-ee11-8179-000d3a9933c9",
	}}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("rows %v", rows)
	}
	if rows[0].display("statecode") != "Active" || rows[0].display("name") != "A. Datum Corporation (sample)" {
		t.Error("display")
	}
	rows, next, err = parsePage(seed(t, "FuzzParsePage", "doc_paging"))
	if err != nil || len(rows) != 2 || !strings.Contains(next, "$skiptoken=%3Ccookie%20pagenumber=%222%22") {
		t.Errorf("%v %q %v", rows, next, err)
	}
	rows, _, err = parsePage(seed(t, "FuzzParsePage", "lookup_annotations"))
	if err != nil {
		t.Fatal(err)
	}
	want = []row{{
		"_primarycontactid_value" + fvSuffix: "Susanna Stubberod (sample)", "_primarycontactid_value" + lnSuffix: "contact",
		"_primarycontactid_value": "70bf4d48-34cb-ed11-b596-0022481d68cd", "revenue": "1.5e3", "donotemail": "false",
	}}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("rows %v", rows)
	}
	for _, bad := range []string{"error_body", "array", "value_object", "value_scalar_item", "nextlink_number", "truncated"} {
		if _, _, err := parsePage(seed(t, "FuzzParsePage", bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestParseSearchResponseDocExample(t *testing.T) {
	items, err := parseSearchResponse(seed(t, "FuzzParseSearchResponse", "doc_example"))
	if err != nil {
		t.Fatal(err)
	}
	want := []searchItem{{
		ID: "8b35eda1-ef69-ee11-9ae7-000d3a88a4a2", Entity: "account",
		Attrs:      row{"name": "Contoso Pharmaceuticals (sample)", "createdon": "2023-10-13T17:41:21Z", "createdon" + fvSuffix: "10/13/2023 5:41 PM"},
		Highlights: []string{"{crmhit}Contoso{/crmhit} Pharmaceuticals (sample)"},
		Score:      4.95567,
	}}
	if !reflect.DeepEqual(items, want) {
		t.Errorf("items\n%+v\nwant\n%+v", items, want)
	}
	for _, name := range []string{"response_object", "inner_top_level"} {
		if got, err := parseSearchResponse(seed(t, "FuzzParseSearchResponse", name)); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %+v %v", name, got, err)
		}
	}
	for name, msg := range map[string]string{
		"error_object": "InvalidFilter: bad filter", "error_string": "Search is not enabled",
		"response_not_json": "does not hold a JSON document", "response_number": `no "response"`,
		"value_object": "not an array", "item_scalar": "Value[0] is not an object", "truncated_inner": "does not hold",
		"empty_object": `no "response"`,
	} {
		if _, err := parseSearchResponse(seed(t, "FuzzParseSearchResponse", name)); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: err %v, want %q", name, err, msg)
		}
	}
	if items, err := parseSearchResponse(seed(t, "FuzzParseSearchResponse", "value_null")); err != nil || items != nil {
		t.Errorf("null Value: %v %v", items, err)
	}
}
