package dataverse

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/groundgate/groundgate/grounding"
)

// benchPage is a 50-row incidents page as the Web API sends it with
// formatted values and lookup annotations.
func benchPage() []byte {
	var rows []map[string]any
	for i := range 50 {
		rows = append(rows, map[string]any{
			"@odata.etag": `W/"112430907"`, "incidentid": fmt.Sprintf("10000000-0000-0000-0000-%012d", i),
			"title": "Headphones won't pair", "ticketnumber": fmt.Sprintf("CAS-%05d-ABCDEF", i),
			"description": "Pulse headphones do not pair with a second phone after the update.",
			"statecode":   0, "statecode" + fv: "Active", "prioritycode": 1, "prioritycode" + fv: "High",
			"createdon": "2024-05-02T09:30:00Z", "createdon" + fv: "5/2/2024 9:30 AM",
			"_customerid_value": accContoso, "_customerid_value" + fv: "Contoso Ltd", "_customerid_value" + ln: "account",
			"_owningbusinessunit_value": buRetail, "_owningbusinessunit_value" + fv: "Retail", "_owningteam_value": nil,
		})
	}
	b, _ := json.Marshal(map[string]any{"@odata.context": "https://contoso.crm.dynamics.com/api/data/v9.2/$metadata#incidents", "value": rows,
		"@odata.nextLink": "https://contoso.crm.dynamics.com/api/data/v9.2/incidents?$skiptoken=%3Ccookie%20pagenumber=%222%22%20/%3E"})
	return b
}

func BenchmarkParsePage(b *testing.B) {
	data := benchPage()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		rows, _, err := parsePage(data)
		if err != nil || len(rows) != 50 {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseSearchResponse(b *testing.B) {
	var items []map[string]any
	for i := range 20 {
		items = append(items, map[string]any{"Id": fmt.Sprintf("ca000000-0000-0000-0000-%012d", i), "EntityName": "knowledgearticle", "ObjectTypeCode": 9953,
			"Attributes": map[string]any{"@search.objecttypecode": 9953, "title": "Pair Pulse headphones", "articlepublicnumber": fmt.Sprintf("KA-%05d", i),
				"content": "<h2>Pairing</h2><p>Hold the power button for 5 seconds until the light flashes blue.</p>", "isinternal": false},
			"Highlights": map[string]any{"content": []string{"{crmhit}pairing{/crmhit} steps"}}, "Score": 4.9 - float64(i)/10})
	}
	inner, _ := json.Marshal(map[string]any{"Error": nil, "Value": items, "Facets": map[string]any{}, "QueryContext": nil, "Count": -1})
	data, _ := json.Marshal(map[string]any{"@odata.context": "x", "response": string(inner)})
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		got, err := parseSearchResponse(data)
		if err != nil || len(got) != 20 {
			b.Fatal(err)
		}
	}
}

func BenchmarkPlanLookup(b *testing.B) {
	keys := []grounding.RecordKey{caseKey("CAS-01234-ABCDEF"), caseKey("CAS-01235-BCDEFG"), {Entity: "contact", Field: "emailaddress1", Value: "maria@contoso.com"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := planLookup(keys); err != nil {
			b.Fatal(err)
		}
	}
}
