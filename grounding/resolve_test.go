package grounding

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestScopeAllows(t *testing.T) {
	fabrikam := Owner{AccountID: "A1", AccountNumber: "ACC-100231", BusinessUnitID: "BU-B", BusinessUnitName: "Business Support", TeamID: "T2", TeamName: "Tier 2 Devices"}
	consumer := Owner{BusinessUnitID: "BU-C", BusinessUnitName: "Consumer Support", TeamID: "T1", TeamName: "Tier 1 Devices"}
	for _, tc := range []struct {
		name  string
		scope *Scope
		owner Owner
		want  bool
	}{
		{"nil scope is unrestricted", nil, fabrikam, true},
		{"empty scope sees no customer record", &Scope{}, fabrikam, false},
		{"empty scope sees public records", &Scope{}, Owner{Public: true}, true},
		{"account by number", &Scope{Accounts: []string{"acc-100231"}}, fabrikam, true},
		{"account by id", &Scope{Accounts: []string{"a1"}}, fabrikam, true},
		{"other account", &Scope{Accounts: []string{"ACC-100232"}}, fabrikam, false},
		{"account scope, record without account", &Scope{Accounts: []string{"ACC-100231"}}, consumer, false},
		{"business unit by name", &Scope{BusinessUnits: []string{"consumer support"}}, consumer, true},
		{"business unit by id", &Scope{BusinessUnits: []string{"BU-B"}}, fabrikam, true},
		{"team by name", &Scope{Teams: []string{"Tier 1 Devices"}}, consumer, true},
		{"team mismatch", &Scope{Teams: []string{"Billing"}}, consumer, false},
		{"any dimension suffices", &Scope{Accounts: []string{"ACC-1"}, Teams: []string{"Tier 2 Devices"}}, fabrikam, true},
		{"empty entries never match empty owner fields", &Scope{Accounts: []string{""}, Teams: []string{""}}, Owner{}, false},
	} {
		if got := tc.scope.Allows(tc.owner); got != tc.want {
			t.Errorf("%s: got %v", tc.name, got)
		}
	}
}

// memSource is a RecordSource over a fixed list; leaky returns records
// whatever the scope (a buggy third-party source).
type memSource struct {
	recs  []Record
	leaky bool
	err   error
	calls [][]RecordKey
}

func (m *memSource) Lookup(_ context.Context, keys []RecordKey, scope *Scope) ([]Record, []Denied, error) {
	m.calls = append(m.calls, keys)
	if m.err != nil {
		return nil, nil, m.err
	}
	var out []Record
	var den []Denied
	for _, k := range keys {
		for _, r := range m.recs {
			v := ""
			switch k.Field {
			case r.Entity + "id":
				v = r.ID
			case "ticketnumber", "accountnumber":
				v = r.Number
			default:
				v = r.Fields[k.Field]
			}
			if r.Entity != k.Entity || !strings.EqualFold(v, k.Value) {
				continue
			}
			if !m.leaky && !scope.Allows(r.Owner) {
				den = append(den, Denied{Key: k, Entity: r.Entity, ID: r.ID, Reason: ReasonOutOfScope})
				continue
			}
			out = append(out, r)
		}
	}
	return out, den, nil
}

func crm() *memSource {
	acme := Owner{AccountID: "acc-1", AccountNumber: "ACC-000001"}
	other := Owner{AccountID: "acc-2", AccountNumber: "ACC-000002"}
	return &memSource{recs: []Record{
		{Entity: "incident", ID: "inc-1", Number: "CAS-00001-AAAAAA", Title: "Acme case", Owner: acme,
			Related: []RecordKey{{Entity: "account", Field: "accountid", Value: "acc-1"}, {Entity: "contact", Field: "contactid", Value: "con-1"}}},
		{Entity: "incident", ID: "inc-2", Number: "CAS-00002-BBBBBB", Title: "Other customer's case", Owner: other,
			Fields: map[string]string{"description": "secret of another customer"}},
		{Entity: "account", ID: "acc-1", Number: "ACC-000001", Title: "Acme", Owner: acme},
		{Entity: "contact", ID: "con-1", Title: "Ann Acme", Owner: acme},
		{Entity: "annotation", ID: "note-1", Title: "Call", Owner: acme, Fields: map[string]string{"objectid": "inc-1"}},
		{Entity: "annotation", ID: "note-2", Title: "Call 2", Owner: acme, Fields: map[string]string{"objectid": "inc-1"}},
	}}
}

func ids(recs []Record) string {
	var s []string
	for _, r := range recs {
		s = append(s, r.ID)
	}
	return strings.Join(s, ",")
}

func TestResolveAccessControl(t *testing.T) {
	acmeOnly := &Scope{Accounts: []string{"ACC-000001"}}
	keys := []RecordKey{
		{Entity: "incident", Field: "ticketnumber", Value: "CAS-00001-AAAAAA", From: "header x-groundgate-case"},
		{Entity: "incident", Field: "ticketnumber", Value: "CAS-00002-BBBBBB", From: "message"},
	}
	for _, leaky := range []bool{false, true} {
		src := crm()
		src.leaky = leaky
		recs, denied, err := Resolve(context.Background(), src, keys, acmeOnly, RecordsQuery{Entities: []string{"incident"}})
		if err != nil {
			t.Fatal(err)
		}
		if ids(recs) != "inc-1" {
			t.Fatalf("leaky=%v: records %s", leaky, ids(recs))
		}
		if len(denied) != 1 || denied[0].ID != "inc-2" || denied[0].Entity != "incident" || denied[0].Reason != ReasonOutOfScope {
			t.Fatalf("leaky=%v: denied %+v", leaky, denied)
		}
		if denied[0].Key.Value != "CAS-00002-BBBBBB" || denied[0].Key.From != "message" {
			t.Fatalf("leaky=%v: denied key %+v", leaky, denied[0].Key)
		}
		for _, r := range recs {
			for _, v := range r.Fields {
				if strings.Contains(v, "secret") {
					t.Fatal("another customer's data leaked")
				}
			}
		}
	}
	// Unrestricted sees both.
	recs, denied, _ := Resolve(context.Background(), crm(), keys, nil, RecordsQuery{Entities: []string{"incident"}})
	if ids(recs) != "inc-1,inc-2" || len(denied) != 0 {
		t.Fatalf("nil scope: %s %v", ids(recs), denied)
	}
}

func TestResolveRelatedAndNotes(t *testing.T) {
	key := []RecordKey{{Entity: "incident", Field: "ticketnumber", Value: "cas-00001-aaaaaa"}}
	for _, tc := range []struct {
		q    RecordsQuery
		want string
	}{
		{RecordsQuery{}, "inc-1,acc-1,con-1"}, // default entities
		{RecordsQuery{Entities: []string{"incident"}}, "inc-1"},
		{RecordsQuery{Entities: []string{"incident", "contact"}}, "inc-1,con-1"},
		{RecordsQuery{Entities: []string{"incident", "contact"}, Notes: true}, "inc-1,con-1,note-1,note-2"},
		{RecordsQuery{Entities: []string{"incident", "contact"}, Notes: true, Max: 2}, "inc-1,con-1"},
		{RecordsQuery{Entities: []string{"contact"}}, "con-1"}, // the case itself is not wanted, its contact is
	} {
		src := crm()
		recs, _, err := Resolve(context.Background(), src, key, nil, tc.q)
		if err != nil || ids(recs) != tc.want {
			t.Errorf("%+v: got %s (%v), want %s", tc.q, ids(recs), err, tc.want)
		}
		if len(src.calls) > 2 {
			t.Errorf("%+v: %d lookups, want at most 2 (keys, then related)", tc.q, len(src.calls))
		}
	}
}

func TestResolveErrorsAndEmpty(t *testing.T) {
	recs, den, err := Resolve(context.Background(), crm(), nil, nil, RecordsQuery{})
	if recs != nil || den != nil || err != nil {
		t.Fatal("no keys should do nothing")
	}
	boom := errors.New("dataverse unreachable")
	_, _, err = Resolve(context.Background(), &memSource{err: boom}, []RecordKey{{Entity: "incident", Field: "ticketnumber", Value: "x"}}, nil, RecordsQuery{})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
}
