package records

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/groundgate/groundgate/grounding"
)

func sample(t testing.TB) *Loaded {
	t.Helper()
	l, err := Load("", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func key(entity, field, value string) grounding.RecordKey {
	return grounding.RecordKey{Entity: entity, Field: field, Value: value, From: "test"}
}

func TestEmbeddedSampleData(t *testing.T) {
	c := sample(t).Counts()
	if c["account"] != 10 || c["contact"] != 24 || c["incident"] != 30 || c["annotation"] != 19 || c["knowledgearticle"] != 60 {
		t.Fatalf("counts %v", c)
	}
}

func TestLookupRecordShapes(t *testing.T) {
	l := sample(t)
	recs, den, err := l.Lookup(context.Background(), []grounding.RecordKey{key("incident", "ticketnumber", "cas-01009-t1n9w3")}, nil)
	if err != nil || len(den) != 0 || len(recs) != 1 {
		t.Fatalf("%v %v %v", recs, den, err)
	}
	r := recs[0]
	if r.Entity != "incident" || r.Number != "CAS-01009-T1N9W3" || r.Title != "TV does not turn on, red light blinks five times" {
		t.Fatalf("%+v", r)
	}
	want := map[string]string{
		"statecode": "Active", "statuscode": "In Progress", "prioritycode": "High", "casetypecode": "Problem",
		"customerid": "Rivera Household", "primarycontactid": "Lucía Rivera", "productid": "Vista QX55", "productserialnumber": "VN2307A55128",
	}
	for k, v := range want {
		if r.Fields[k] != v {
			t.Errorf("field %s = %q, want %q", k, r.Fields[k], v)
		}
	}
	for k := range r.Fields {
		if strings.Contains(k, "owning") || strings.HasPrefix(k, "_") || strings.Contains(k, "@") {
			t.Errorf("field %q should not reach the model", k)
		}
	}
	if r.Owner.AccountNumber != "ACC-100237" || r.Owner.BusinessUnitName != "Consumer Support" || r.Owner.TeamName != "Tier 1 Devices" {
		t.Fatalf("owner %+v", r.Owner)
	}
	if len(r.Related) != 2 || r.Related[0].Entity != "account" || r.Related[1].Entity != "contact" {
		t.Fatalf("related %v", r.Related)
	}

	// A contact by email; its owner is its parent account.
	recs, _, _ = l.Lookup(context.Background(), []grounding.RecordKey{key("contact", "emailaddress1", "Lucia.Rivera@mailbox.example")}, nil)
	if len(recs) != 1 || recs[0].Title != "Lucía Rivera" || recs[0].Owner.AccountNumber != "ACC-100237" || recs[0].Fields["parentcustomerid"] != "Rivera Household" {
		t.Fatalf("%+v", recs)
	}
	// Notes of a case, by lookup column (either spelling).
	for _, f := range []string{"objectid", "_objectid_value"} {
		recs, _, _ = l.Lookup(context.Background(), []grounding.RecordKey{key("annotation", f, recs0ID(t, l, "CAS-01001-K7M2Q9"))}, nil)
		if len(recs) != 2 || recs[0].Owner.AccountNumber != "ACC-100231" {
			t.Fatalf("%s: %+v", f, recs)
		}
	}
	// A knowledge article is public.
	recs, _, _ = l.Lookup(context.Background(), []grounding.RecordKey{key("knowledgearticle", "articlepublicnumber", "KA-01044")}, &grounding.Scope{})
	if len(recs) != 1 || !recs[0].Owner.Public || !strings.Contains(recs[0].Fields["content"], "excess") {
		t.Fatalf("%+v", recs)
	}
	// Unknown keys find nothing.
	recs, den, err = l.Lookup(context.Background(), []grounding.RecordKey{key("incident", "ticketnumber", "CAS-99999-ZZZZZZ"), key("nosuch", "x", "y")}, nil)
	if len(recs)+len(den) != 0 || err != nil {
		t.Fatal("unknown keys matched")
	}
}

func recs0ID(t *testing.T, l *Loaded, ticket string) string {
	recs, _, _ := l.Lookup(context.Background(), []grounding.RecordKey{key("incident", "ticketnumber", ticket)}, nil)
	if len(recs) != 1 {
		t.Fatalf("case %s not found", ticket)
	}
	return recs[0].ID
}

// TestAccessControl: principals scoped by account, business unit or team
// get only their records; the rest is denied, never returned.
func TestAccessControl(t *testing.T) {
	l := sample(t)
	keys := []grounding.RecordKey{
		key("incident", "ticketnumber", "CAS-01001-K7M2Q9"),                  // Fabrikam (Business Support, Tier 2)
		key("incident", "ticketnumber", "CAS-01009-T1N9W3"),                  // Rivera household (Consumer Support, Tier 1)
		key("incident", "ticketnumber", "CAS-01014-N8B2H4"),                  // Tom Whitfield, no account (Consumer Support, Tier 1)
		key("contact", "emailaddress1", "camille.moreau@cohowinery.example"), // Coho Winery (Business Support, Billing)
	}
	for _, tc := range []struct {
		name   string
		scope  *grounding.Scope
		allow  string
		denied string
	}{
		{"unrestricted", nil, "CAS-01001-K7M2Q9 CAS-01009-T1N9W3 CAS-01014-N8B2H4 Camille Moreau", ""},
		{"one account", &grounding.Scope{Accounts: []string{"ACC-100231"}}, "CAS-01001-K7M2Q9", "incident incident incident contact"[len("incident "):]},
		{"business unit", &grounding.Scope{BusinessUnits: []string{"Consumer Support"}}, "CAS-01009-T1N9W3 CAS-01014-N8B2H4", "incident contact"},
		{"team by id", &grounding.Scope{Teams: []string{"02552e87-f828-5f3c-a209-a257d1e7d534"}}, "Camille Moreau", "incident incident incident"},
		{"empty scope", &grounding.Scope{}, "", "incident incident incident contact"},
	} {
		recs, den, err := l.Lookup(context.Background(), keys, tc.scope)
		if err != nil {
			t.Fatal(err)
		}
		var got, gotDen []string
		for _, r := range recs {
			if r.Number != "" {
				got = append(got, r.Number)
			} else {
				got = append(got, r.Title)
			}
			if !tc.scope.Allows(r.Owner) {
				t.Fatalf("%s: returned a record outside the scope", tc.name)
			}
		}
		for _, d := range den {
			gotDen = append(gotDen, d.Entity)
			if d.Reason != grounding.ReasonOutOfScope || d.ID == "" || d.Key.From != "test" {
				t.Fatalf("%s: denied entry %+v", tc.name, d)
			}
		}
		if strings.Join(got, " ") != tc.allow || strings.Join(gotDen, " ") != tc.denied {
			t.Errorf("%s: allowed %q denied %q", tc.name, strings.Join(got, " "), strings.Join(gotDen, " "))
		}
	}
	// Resolve with a scope: related records of an allowed case that are
	// outside the scope are denied too (none here), and notes follow.
	recs, den, _ := grounding.Resolve(context.Background(), l, keys[:2], &grounding.Scope{Accounts: []string{"ACC-100231"}},
		grounding.RecordsQuery{Entities: []string{"incident", "contact", "account"}, Notes: true})
	if len(recs) != 5 || len(den) != 1 || den[0].Key.Value != "CAS-01009-T1N9W3" {
		t.Fatalf("resolve: %d records, denied %+v", len(recs), den)
	}
}

func TestLoadDirJSONAndCSV(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("accounts.csv", "\ufeffaccountid,name,accountnumber,_owningteam_value@OData.Community.Display.V1.FormattedValue\n"+
		"a1,\"Acme, Inc.\",ACC-000001,Tier 1 Devices\n"+
		"a2,Globex,ACC-000002,\n")
	write("incidents.json", `[
		{"incidentid":"i1","ticketnumber":"CAS-00001-AAAAAA","title":"Broken","statecode":1,"prioritycode":3,"_customerid_value":"a1","description":"x"},
		{"incidentid":"i2","ticketnumber":"CAS-00002-BBBBBB","title":"Other","_customerid_value":"a2","@odata.etag":"W/1","nested":{"a":1},"isescalated":true}
	]`)
	write("knowledgearticles/one.md", "---\narticlepublicnumber: KA-00001\ntitle: One\n---\nBody")
	write("knowledgearticles/two.json", `{"articlepublicnumber":"KA-00002","title":"Two","content":"<p>Two</p>","statecode":3}`)
	l, err := Load(dir, nil, map[string][]string{"incident": {"description", "statecode", "prioritycode", "customerid", "isescalated"}})
	if err != nil {
		t.Fatal(err)
	}
	// The case's owner is its customer account; the account's owning
	// team (a formatted value only) scopes the account itself.
	recs, _, _ := l.Lookup(context.Background(), []grounding.RecordKey{key("incident", "ticketnumber", "CAS-00001-AAAAAA")}, &grounding.Scope{Accounts: []string{"acc-000001"}})
	if len(recs) != 1 {
		t.Fatal("case not found or denied")
	}
	acc, den, _ := l.Lookup(context.Background(), []grounding.RecordKey{key("account", "accountnumber", "ACC-000001"), key("account", "accountnumber", "ACC-000002")}, &grounding.Scope{Teams: []string{"tier 1 devices"}})
	if len(acc) != 1 || acc[0].Title != "Acme, Inc." || len(den) != 1 {
		t.Fatalf("accounts by team: %v denied %v", acc, den)
	}
	f := recs[0].Fields
	// Picklist labels without formatted values; lookups named after their target.
	if f["statecode"] != "Resolved" || f["prioritycode"] != "Low" || f["customerid"] != "Acme, Inc." || len(f) != 4 {
		t.Fatalf("fields %v", f)
	}
	recs, _, _ = l.Lookup(context.Background(), []grounding.RecordKey{key("incident", "ticketnumber", "CAS-00002-BBBBBB")}, nil)
	if recs[0].Fields["isescalated"] != "true" {
		t.Fatalf("bool column: %v", recs[0].Fields)
	}
	arts, _ := l.Articles(context.Background())
	if len(arts) != 2 || arts[1].Content != "Two" {
		t.Fatalf("articles %+v", arts)
	}
	// files override dir entries.
	write("other.csv", "incidentid,ticketnumber,title\ni9,CAS-00009-CCCCCC,Elsewhere\n")
	l, err = Load(dir, map[string]string{"incident": filepath.Join(dir, "other.csv")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c := l.Counts(); c["incident"] != 1 || c["account"] != 2 {
		t.Fatalf("counts %v", c)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct{ file, data, want string }{
		"no id":         {"contacts.json", `[{"fullname":"x"}]`, "contact row 1 has no contactid"},
		"duplicate id":  {"contacts.json", `[{"contactid":"c1"},{"contactid":"C1"}]`, "contactid C1 appears twice"},
		"bad json":      {"contacts.json", "[\n{\"contactid\": }]", "contacts.json: line 2"},
		"csv width":     {"accounts.csv", "accountid,name\na1\n", "accounts.csv: record on line 2"},
		"csv no header": {"accounts.csv", "", "empty file"},
		"csv dup col":   {"accounts.csv", "accountid,accountid\n", `column "accountid" is named twice`},
	} {
		d := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		os.MkdirAll(d, 0o700)
		os.WriteFile(filepath.Join(d, tc.file), []byte(tc.data), 0o600)
		_, err := Load(d, nil, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}
	if _, err := Load(t.TempDir(), nil, nil); err == nil || !strings.Contains(err.Error(), "no data files") {
		t.Errorf("empty dir: %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing"), nil, nil); err == nil {
		t.Error("missing dir accepted")
	}
}

func TestProvisionAndValidate(t *testing.T) {
	s := new(Source)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := s.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	recs, _, err := s.Lookup(context.Background(), []grounding.RecordKey{key("account", "accountnumber", "ACC-100240")}, nil)
	if err != nil || len(recs) != 1 || recs[0].Title != "Wingtip Toys" {
		t.Fatalf("%v %v", recs, err)
	}
	arts, _ := s.Articles(context.Background())
	if len(arts) != 60 {
		t.Fatalf("%d articles", len(arts))
	}
	defer s.Cleanup()
	for cfg, want := range map[string]string{
		`{"files": {"ticket": "x.csv"}}`:         `files: unknown entity "ticket"`,
		`{"columns": {"incident": ["bad col"]}}`: `bad column name`,
		`{"columns": {"case": ["title"]}}`:       `columns: unknown entity "case"`,
	} {
		var s Source
		json.Unmarshal([]byte(cfg), &s)
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", cfg, err)
		}
	}
	if _, _, err := new(Source).Lookup(context.Background(), nil, nil); err == nil {
		t.Error("unprovisioned source answered")
	}
}

func TestCaddyfile(t *testing.T) {
	var s Source
	err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`records /srv/crm {
		file incident /srv/crm/cases.csv
		file knowledgearticle /srv/kb
		columns incident description statecode
		columns incident customerid
	}`))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(&s)
	if string(got) != `{"dir":"/srv/crm","files":{"incident":"/srv/crm/cases.csv","knowledgearticle":"/srv/kb"},"columns":{"incident":["description","statecode","customerid"]}}` {
		t.Fatalf("%s", got)
	}
	for input, want := range map[string]string{
		"records {\n colour blue\n}":                       `unrecognized records subdirective "colour"`,
		"records a b":                                      `wrong argument count`,
		"records {\n file incident\n}":                     `file: expected <entity> <path>`,
		"records {\n file ticket x.csv\n}":                 `file: unknown entity "ticket"`,
		"records {\n file incident a\n file incident b\n}": `given twice`,
		"records {\n columns incident\n}":                  `columns: expected <entity> <column...>`,
		"records {\n columns case title\n}":                `columns: unknown entity "case"`,
		"records {\n dir\n}":                               `wrong argument count`,
	} {
		var s Source
		err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", input, err, want)
		}
	}
}
