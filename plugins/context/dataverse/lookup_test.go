package dataverse

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/groundgate/groundgate/grounding"
)

func caseKey(v string) grounding.RecordKey {
	return grounding.RecordKey{Entity: "incident", Field: "ticketnumber", Value: v, From: "message"}
}

func TestLookupCase(t *testing.T) {
	f := newFakeDataverse(t)
	d := provisionDV(t, f, nil)
	recs, denied, err := d.Lookup(context.Background(), []grounding.RecordKey{caseKey("cas-01234-abcdef")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(denied) != 0 || len(recs) != 1 {
		t.Fatalf("records %+v denied %+v", recs, denied)
	}
	r := recs[0]
	if r.Entity != "incident" || r.ID != incPair || r.Number != "CAS-01234-ABCDEF" || r.Title != "Headphones won't pair" {
		t.Errorf("record %+v", r)
	}
	want := map[string]string{
		"description":      "Pulse headphones do not pair with a second phone.",
		"statecode":        "Active",
		"statuscode":       "In Progress",
		"prioritycode":     "High",
		"casetypecode":     "Problem",
		"customerid":       "Contoso Ltd",
		"primarycontactid": "Maria Campbell",
		"createdon":        "5/2/2024 9:30 AM",
	}
	if !reflect.DeepEqual(r.Fields, want) {
		t.Errorf("fields\n got %v\nwant %v", r.Fields, want)
	}
	wantOwner := grounding.Owner{AccountID: accContoso, BusinessUnitID: buRetail, BusinessUnitName: "Retail", TeamID: teamTier1, TeamName: "Tier 1"}
	if r.Owner != wantOwner {
		t.Errorf("owner %+v, want %+v", r.Owner, wantOwner)
	}
	wantRel := []grounding.RecordKey{
		{Entity: "account", Field: "accountid", Value: accContoso},
		{Entity: "contact", Field: "contactid", Value: conMaria},
	}
	if !reflect.DeepEqual(r.Related, wantRel) {
		t.Errorf("related %+v", r.Related)
	}

	reqs := f.reqs()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	q := reqs[0]
	if q.Path != "/api/data/v9.2/incidents" {
		t.Errorf("path %s", q.Path)
	}
	if got := q.Header.Get("Prefer"); got != `odata.include-annotations="OData.Community.Display.V1.FormattedValue,Microsoft.Dynamics.CRM.lookuplogicalname",odata.maxpagesize=50` {
		t.Errorf("Prefer %q", got)
	}
	if got := q.Query.Get("$filter"); got != "(ticketnumber eq 'cas-01234-abcdef')" {
		t.Errorf("$filter %q", got)
	}
	if got := q.Query.Get("$select"); !strings.HasPrefix(got, "incidentid,title,ticketnumber,description,statecode,") {
		t.Errorf("$select %q", got)
	}
	if f.tokenCalls.Load() != 1 {
		t.Errorf("%d token requests", f.tokenCalls.Load())
	}
}

// TestLookupBatchesKeys: keys of one table go into one $filter joined by
// or; keys of two tables make two requests; a record found twice is
// returned once.
func TestLookupBatchesKeys(t *testing.T) {
	f := newFakeDataverse(t)
	d := provisionDV(t, f, nil)
	keys := []grounding.RecordKey{
		caseKey("CAS-01234-ABCDEF"), caseKey("CAS-01235-BCDEFG"), caseKey("CAS-99999-ZZZZZZ"),
		{Entity: "incident", Field: "incidentid", Value: strings.ToUpper(incPair)},
		{Entity: "contact", Field: "emailaddress1", Value: "maria@contoso.com"},
	}
	recs, _, err := d.Lookup(context.Background(), keys, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range recs {
		ids = append(ids, r.ID)
	}
	if want := []string{incPair, incBattery, conMaria}; !reflect.DeepEqual(ids, want) {
		t.Errorf("ids %v, want %v", ids, want)
	}
	reqs := f.reqs()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	var incFilter string
	for _, q := range reqs {
		if q.Path == "/api/data/v9.2/incidents" {
			incFilter = q.Query.Get("$filter")
		}
	}
	want := "(ticketnumber eq 'CAS-01234-ABCDEF' or ticketnumber eq 'CAS-01235-BCDEFG' or ticketnumber eq 'CAS-99999-ZZZZZZ' or incidentid eq " + incPair + ")"
	if incFilter != want {
		t.Errorf("$filter\n got %s\nwant %s", incFilter, want)
	}
}

// TestFilterEscaping: a key value with quotes cannot change the filter:
// the server parses exactly one comparison per key whose literal is the
// value as given.
func TestFilterEscaping(t *testing.T) {
	f := newFakeDataverse(t)
	d := provisionDV(t, f, nil)
	evil := []string{
		"x' or ticketnumber ne 'y",
		"CAS-01234-ABCDEF') or (title eq 'Battery drains overnight",
		"' or 1 eq 1 or ''='",
		"''",
		"a'b''c'''",
		"x%27 or true",
		"Nancy O'Brien",
	}
	for _, v := range evil {
		keys := []grounding.RecordKey{caseKey(v)}
		recs, _, err := d.Lookup(context.Background(), keys, nil)
		if err != nil {
			t.Fatalf("%q: %v", v, err)
		}
		if len(recs) != 0 {
			t.Errorf("%q matched %d records", v, len(recs))
		}
	}
	reqs := f.reqs()
	if len(reqs) != len(evil) {
		t.Fatalf("%d requests for %d keys", len(reqs), len(evil))
	}
	for i, q := range reqs {
		want := []cmp{{prop: "ticketnumber", lit: evil[i]}}
		if !reflect.DeepEqual(q.Filter, want) {
			t.Errorf("value %q: server parsed %+v from %q", evil[i], q.Filter, q.Query.Get("$filter"))
		}
	}
	// A value with a quote that is a real value is found.
	recs, _, err := d.Lookup(context.Background(), []grounding.RecordKey{{Entity: "contact", Field: "fullname", Value: "Nancy O'Brien"}}, nil)
	if err != nil || len(recs) != 1 || recs[0].ID != conNancy {
		t.Fatalf("O'Brien: %+v %v", recs, err)
	}
}

// TestLookupRefusesFields: fields outside the allow-list are errors, and
// values that cannot be of their column's type are never sent.
func TestLookupRefusesFields(t *testing.T) {
	f := newFakeDataverse(t)
	d := provisionDV(t, f, nil)
	for _, k := range []grounding.RecordKey{
		{Entity: "incident", Field: "statecode", Value: "0"},
		{Entity: "incident", Field: "ticketnumber eq 'x' or title", Value: "y"},
		{Entity: "incident", Field: "description", Value: "y"},
		{Entity: "systemuser", Field: "systemuserid", Value: incPair},
	} {
		if _, _, err := d.Lookup(context.Background(), []grounding.RecordKey{k}, nil); err == nil {
			t.Errorf("%s: no error", k)
		}
	}
	for _, k := range []grounding.RecordKey{
		{Entity: "incident", Field: "incidentid", Value: "not-a-guid) or (title eq 'x'"},
		{Entity: "annotation", Field: "objectid", Value: "10000000-0000-0000-0000-00000000000"},
		{Entity: "incident", Field: "ticketnumber", Value: "line\nbreak"},
		{Entity: "incident", Field: "ticketnumber", Value: ""},
	} {
		recs, den, err := d.Lookup(context.Background(), []grounding.RecordKey{k}, nil)
		if err != nil || recs != nil || den != nil {
			t.Errorf("%s: %v %v %v", k, recs, den, err)
		}
	}
	if n := len(f.reqs()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

// TestLookupPaging: the notes of a case span three pages of two; every
// page is read by following @odata.nextLink unchanged.
func TestLookupPaging(t *testing.T) {
	f := newFakeDataverse(t)
	d := provisionDV(t, f, func(d *Dataverse) { d.PageSize = 2 })
	recs, _, err := d.Lookup(context.Background(), []grounding.RecordKey{{Entity: "annotation", Field: "objectid", Value: incPair}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 5 {
		t.Fatalf("%d notes, want 5", len(recs))
	}
	for i, r := range recs {
		if r.Entity != "annotation" || r.Title != "Call "+string(rune('1'+i)) || r.Fields["notetext"] == "" || r.Fields["objectid"] != "Headphones won't pair" {
			t.Errorf("note %d: %+v", i, r)
		}
	}
	reqs := f.reqs()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3", len(reqs))
	}
	for i, q := range reqs {
		if !strings.Contains(q.Header.Get("Prefer"), "odata.maxpagesize=2") {
			t.Errorf("page %d Prefer %q", i+1, q.Header.Get("Prefer"))
		}
		if (i > 0) != q.Query.Has("$skiptoken") {
			t.Errorf("page %d skiptoken %q", i+1, q.Query.Get("$skiptoken"))
		}
		if q.Query.Get("$filter") != "(_objectid_value eq "+incPair+")" {
			t.Errorf("page %d filter %q", i+1, q.Query.Get("$filter"))
		}
	}
}

// TestLookupMaxPages: paging stops at max_pages.
func TestLookupMaxPages(t *testing.T) {
	f := newFakeDataverse(t)
	d := provisionDV(t, f, func(d *Dataverse) { d.PageSize = 2; d.MaxPages = 2 })
	recs, _, err := d.Lookup(context.Background(), []grounding.RecordKey{{Entity: "annotation", Field: "objectid", Value: incPair}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 || len(f.reqs()) != 2 {
		t.Errorf("%d notes in %d requests", len(recs), len(f.reqs()))
	}
}

// TestLookupScope: records outside the scope are denied, not returned.
func TestLookupScope(t *testing.T) {
	f := newFakeDataverse(t)
	d := provisionDV(t, f, nil)
	keys := []grounding.RecordKey{caseKey("CAS-01234-ABCDEF"), caseKey("CAS-01235-BCDEFG")}

	t.Run("business unit", func(t *testing.T) {
		recs, denied, err := d.Lookup(context.Background(), keys, &grounding.Scope{BusinessUnits: []string{"retail"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 1 || recs[0].ID != incPair {
			t.Errorf("records %+v", recs)
		}
		want := []grounding.Denied{{Key: keys[1], Entity: "incident", ID: incBattery, Reason: grounding.ReasonOutOfScope}}
		if !reflect.DeepEqual(denied, want) {
			t.Errorf("denied %+v", denied)
		}
	})
	t.Run("team by id", func(t *testing.T) {
		recs, denied, err := d.Lookup(context.Background(), keys, &grounding.Scope{Teams: []string{teamTier1}})
		if err != nil || len(recs) != 1 || len(denied) != 1 {
			t.Errorf("records %+v denied %+v err %v", recs, denied, err)
		}
	})
	t.Run("empty scope", func(t *testing.T) {
		recs, denied, err := d.Lookup(context.Background(), keys, &grounding.Scope{})
		if err != nil || len(recs) != 0 || len(denied) != 2 {
			t.Errorf("records %+v denied %+v err %v", recs, denied, err)
		}
	})
	t.Run("articles are public", func(t *testing.T) {
		recs, denied, err := d.Lookup(context.Background(), []grounding.RecordKey{{Entity: "knowledgearticle", Field: "articlepublicnumber", Value: "KA-01042"}}, &grounding.Scope{})
		if err != nil || len(denied) != 0 || len(recs) != 1 || recs[0].ID != kaPairing {
			t.Fatalf("records %+v denied %+v err %v", recs, denied, err)
		}
		if c := recs[0].Fields["content"]; !strings.Contains(c, "## Pairing") || strings.Contains(c, "<p>") {
			t.Errorf("content not converted to text: %q", c)
		}
	})
}

// TestLookupScopeByAccountNumber: a case whose customer is a contact
// belongs to the contact's parent account; with a scope listing account
// numbers, the number is read too. Only records not yet allowed cost
// these extra reads.
func TestLookupScopeByAccountNumber(t *testing.T) {
	f := newFakeDataverse(t)
	d := provisionDV(t, f, nil)
	keys := []grounding.RecordKey{caseKey("CAS-01236-CDEFGH"), caseKey("CAS-01235-BCDEFG")}
	scope := &grounding.Scope{Accounts: []string{"ACC-000001"}}
	recs, denied, err := d.Lookup(context.Background(), keys, scope)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].ID != incRefund {
		t.Fatalf("records %+v", recs)
	}
	if o := recs[0].Owner; o.AccountID != accContoso || o.AccountNumber != "ACC-000001" || o.BusinessUnitName != "Wholesale" {
		t.Errorf("owner %+v", o)
	}
	if len(denied) != 1 || denied[0].ID != incBattery {
		t.Errorf("denied %+v", denied)
	}
	var paths []string
	for _, q := range f.reqs() {
		paths = append(paths, strings.TrimPrefix(q.Path, "/api/data/v9.2/"))
	}
	if want := []string{"incidents", "contacts", "accounts"}; !reflect.DeepEqual(paths, want) {
		t.Errorf("requests %v, want %v", paths, want)
	}

	// By account id, no account read is needed.
	f2 := newFakeDataverse(t)
	d2 := provisionDV(t, f2, nil)
	recs, _, err = d2.Lookup(context.Background(), keys[:1], &grounding.Scope{Accounts: []string{accContoso}})
	if err != nil || len(recs) != 1 || len(f2.reqs()) != 2 {
		t.Errorf("by id: %+v %v in %d requests", recs, err, len(f2.reqs()))
	}

	// Unrestricted: one request, no owner reads.
	f3 := newFakeDataverse(t)
	d3 := provisionDV(t, f3, nil)
	if recs, _, err := d3.Lookup(context.Background(), keys, nil); err != nil || len(recs) != 2 || len(f3.reqs()) != 1 {
		t.Errorf("nil scope: %d records, %v, %d requests", len(recs), err, len(f3.reqs()))
	}
}

// TestLookupNoteOwner: a note without an owner of its own takes its
// case's business unit and, through the case's customer contact, its
// account.
func TestLookupNoteOwner(t *testing.T) {
	f := newFakeDataverse(t)
	d := provisionDV(t, f, nil)
	key := grounding.RecordKey{Entity: "annotation", Field: "objectid", Value: incRefund}
	recs, denied, err := d.Lookup(context.Background(), []grounding.RecordKey{key}, &grounding.Scope{BusinessUnits: []string{"Wholesale"}})
	if err != nil || len(recs) != 1 || len(denied) != 0 {
		t.Fatalf("records %+v denied %+v err %v", recs, denied, err)
	}
	if o := recs[0].Owner; o.BusinessUnitID != buWholesale || o.BusinessUnitName != "Wholesale" {
		t.Errorf("owner %+v", o)
	}
	recs, denied, err = d.Lookup(context.Background(), []grounding.RecordKey{key}, &grounding.Scope{Accounts: []string{"acc-000001"}})
	if err != nil || len(recs) != 1 || len(denied) != 0 {
		t.Fatalf("records %+v denied %+v err %v", recs, denied, err)
	}
	if o := recs[0].Owner; o.AccountID != accContoso || o.AccountNumber != "ACC-000001" || o.BusinessUnitID != buWholesale {
		t.Errorf("owner %+v", o)
	}
	recs, denied, err = d.Lookup(context.Background(), []grounding.RecordKey{key}, &grounding.Scope{BusinessUnits: []string{"Retail"}})
	if err != nil || len(recs) != 0 || len(denied) != 1 {
		t.Errorf("records %+v denied %+v err %v", recs, denied, err)
	}
}

// TestResolveFollowsRelated: grounding.Resolve follows a case's related
// customer and contact through this source.
func TestResolveFollowsRelated(t *testing.T) {
	f := newFakeDataverse(t)
	d := provisionDV(t, f, nil)
	recs, denied, err := grounding.Resolve(context.Background(), d, []grounding.RecordKey{caseKey("CAS-01234-ABCDEF")},
		&grounding.Scope{Accounts: []string{"ACC-000001"}}, grounding.RecordsQuery{Notes: true, Max: 10})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, r.Entity+":"+r.Title)
	}
	want := []string{"incident:Headphones won't pair", "account:Contoso Ltd", "contact:Maria Campbell",
		"annotation:Call 1", "annotation:Call 2", "annotation:Call 3", "annotation:Call 4", "annotation:Call 5"}
	if !reflect.DeepEqual(got, want) || len(denied) != 0 {
		t.Errorf("got %v denied %v", got, denied)
	}
}

func TestSelectConfigured(t *testing.T) {
	f := newFakeDataverse(t)
	d := provisionDV(t, f, func(d *Dataverse) {
		d.Select = map[string][]string{"incident": {"title", "ticketnumber", "description", "statecode", "prioritycode"}}
	})
	recs, _, err := d.Lookup(context.Background(), []grounding.RecordKey{caseKey("CAS-01234-ABCDEF")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"description": "Pulse headphones do not pair with a second phone.", "statecode": "Active", "prioritycode": "High"}
	if !reflect.DeepEqual(recs[0].Fields, want) {
		t.Errorf("fields %v", recs[0].Fields)
	}
}

// TestRelatedDeduplicated: a case whose customer is also its primary
// contact relates to that contact once.
func TestRelatedDeduplicated(t *testing.T) {
	f := newFakeDataverse(t)
	d := provisionDV(t, f, nil)
	recs, _, err := d.Lookup(context.Background(), []grounding.RecordKey{caseKey("CAS-01235-BCDEFG")}, nil)
	if err != nil || len(recs) != 1 {
		t.Fatal(recs, err)
	}
	want := []grounding.RecordKey{{Entity: "contact", Field: "contactid", Value: conYvonne}}
	if !reflect.DeepEqual(recs[0].Related, want) {
		t.Errorf("related %+v", recs[0].Related)
	}
}
