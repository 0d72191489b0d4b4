package grounding

import (
	"net/http"
	"strings"
	"testing"
)

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func keyStrings(keys []RecordKey) string {
	var b []string
	for _, k := range keys {
		b = append(b, k.String()+" <"+k.From+">")
	}
	return strings.Join(b, "; ")
}

func TestExtract(t *testing.T) {
	caseHeader := KeySpec{Header: "x-groundgate-case", Kind: "case"}
	caseMsg := KeySpec{Message: true, Kind: "case"}
	tests := []struct {
		name   string
		specs  []KeySpec
		header http.Header
		body   string
		want   string
	}{
		{"header", []KeySpec{caseHeader}, hdr("X-Groundgate-Case", "CAS-01234-X1Y2Z3"), `{}`,
			"incident.ticketnumber=CAS-01234-X1Y2Z3 <header x-groundgate-case>"},
		{"header lower-case value is normalised", []KeySpec{caseHeader}, hdr("x-groundgate-case", " cas-01234-x1y2z3 "), ``,
			"incident.ticketnumber=CAS-01234-X1Y2Z3 <header x-groundgate-case>"},
		{"header with several values and repeats", []KeySpec{caseHeader}, hdr("x-groundgate-case", "CAS-00001-AAAAAA, CAS-00002-BBBBBB", "x-groundgate-case", "CAS-00001-AAAAAA"), ``,
			"incident.ticketnumber=CAS-00001-AAAAAA <header x-groundgate-case>; incident.ticketnumber=CAS-00002-BBBBBB <header x-groundgate-case>"},
		{"header value must match entirely", []KeySpec{caseHeader}, hdr("x-groundgate-case", "CAS-01234-X1Y2Z3' or 1 eq 1"), ``, ""},
		{"header absent", []KeySpec{caseHeader}, hdr(), `{"user":"x"}`, ""},
		{"metadata string", []KeySpec{{Metadata: "case_number", Kind: "case"}}, nil,
			`{"metadata":{"case_number":"CAS-11111-ABC123"},"messages":[]}`,
			"incident.ticketnumber=CAS-11111-ABC123 <metadata case_number>"},
		{"metadata array", []KeySpec{{Metadata: "emails", Kind: "email"}}, nil,
			`{"metadata":{"emails":["Maria@Contoso.example", 5, "not an email", "bo@x.example"]}}`,
			"contact.emailaddress1=maria@contoso.example <metadata emails>; contact.emailaddress1=bo@x.example <metadata emails>"},
		{"metadata key with dots is literal", []KeySpec{{Metadata: "crm.case", Kind: "case"}}, nil,
			`{"metadata":{"crm":{"case":"CAS-22222-ABCDEF"},"crm.case":"CAS-33333-ABCDEF"}}`,
			"incident.ticketnumber=CAS-33333-ABCDEF <metadata crm.case>"},
		{"metadata not an object", []KeySpec{{Metadata: "case_number", Kind: "case"}}, nil, `{"metadata":"CAS-11111-ABC123"}`, ""},
		{"user field", []KeySpec{{User: true, Kind: "email"}}, nil, `{"user":"Tom.Whitfield@inbox.example"}`,
			"contact.emailaddress1=tom.whitfield@inbox.example <user>"},
		{"user field not matching", []KeySpec{{User: true, Kind: "email"}}, nil, `{"user":"user-1234"}`, ""},
		{"user field with custom kind", []KeySpec{{User: true, Kind: "contact.contactid"}}, nil, `{"user":"5c1f0f1e-0000-4000-8000-000000000001"}`,
			"contact.contactid=5c1f0f1e-0000-4000-8000-000000000001 <user>"},
		{"message: last user message only", []KeySpec{caseMsg}, nil,
			`{"messages":[{"role":"user","content":"about CAS-00001-AAAAAA"},{"role":"assistant","content":"CAS-00009-ZZZZZZ"},{"role":"user","content":"and case cas-00002-bbbbbb, also CAS-00003-CCCCCC."},{"role":"system","content":"CAS-00004-DDDDDD"}]}`,
			"incident.ticketnumber=CAS-00002-BBBBBB <message>; incident.ticketnumber=CAS-00003-CCCCCC <message>"},
		{"message: content parts", []KeySpec{caseMsg, {Message: true, Kind: "email"}, {Message: true, Kind: "account"}, {Message: true, Kind: "article"}}, nil,
			`{"messages":[{"role":"user","content":[{"type":"text","text":"Case CAS-01234-X1Y2Z3 for acc-100231"},{"type":"image_url","image_url":{"url":"CAS-99999-IMAGE1"}},{"type":"text","text":"write to lucia.rivera@mailbox.example per KA-01044"}]}]}`,
			"incident.ticketnumber=CAS-01234-X1Y2Z3 <message>; contact.emailaddress1=lucia.rivera@mailbox.example <message>; account.accountnumber=ACC-100231 <message>; knowledgearticle.articlepublicnumber=KA-01044 <message>"},
		{"message: no partial matches", []KeySpec{caseMsg}, nil,
			`{"messages":[{"role":"user","content":"XCAS-01234-X1Y2Z3 and CAS-01234-X1Y2Z34 and CAS-1234-X1Y2Z3"}]}`, ""},
		{"message: custom pattern with a group", []KeySpec{{Message: true, Kind: "incident.ticketnumber", Pattern: `(?i)case\s+#?(\d{5})`}}, nil,
			`{"messages":[{"role":"user","content":"see case #01234 please"}]}`,
			"incident.ticketnumber=01234 <message>"},
		{"invalid JSON body: headers still work", []KeySpec{caseHeader, caseMsg}, hdr("x-groundgate-case", "CAS-01234-X1Y2Z3"), `{"messages":[`,
			"incident.ticketnumber=CAS-01234-X1Y2Z3 <header x-groundgate-case>"},
		{"same key from two sources is kept once, first source wins", []KeySpec{caseHeader, caseMsg}, hdr("x-groundgate-case", "CAS-01234-X1Y2Z3"),
			`{"messages":[{"role":"user","content":"CAS-01234-X1Y2Z3"}]}`,
			"incident.ticketnumber=CAS-01234-X1Y2Z3 <header x-groundgate-case>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x, err := NewExtractor(tc.specs)
			if err != nil {
				t.Fatal(err)
			}
			got := keyStrings(x.Extract(tc.header, []byte(tc.body)))
			if got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestExtractLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"messages":[{"role":"user","content":"`)
	for i := 0; i < 100; i++ {
		b.WriteString("CAS-")
		b.WriteString(strings.Repeat("0", 5-len(itoa(i))) + itoa(i))
		b.WriteString("-AAAAAA ")
	}
	b.WriteString(`"}]}`)
	keys, err := Extract([]KeySpec{{Message: true, Kind: "case"}}, nil, []byte(b.String()))
	if err != nil || len(keys) != MaxKeys {
		t.Fatalf("%d keys, err %v", len(keys), err)
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var d []byte
	for ; i > 0; i /= 10 {
		d = append([]byte{byte('0' + i%10)}, d...)
	}
	return string(d)
}

func TestKeySpecErrors(t *testing.T) {
	for _, tc := range []struct {
		spec KeySpec
		want string
	}{
		{KeySpec{Kind: "case"}, "exactly one of header, metadata, user or message (got 0)"},
		{KeySpec{Header: "h", Message: true, Kind: "case"}, "(got 2)"},
		{KeySpec{Header: "h"}, "kind is required"},
		{KeySpec{Header: "h", Kind: "ticket"}, `unknown kind "ticket"`},
		{KeySpec{Header: "h", Kind: "salesorder.name"}, `unknown kind "salesorder.name"`},
		{KeySpec{Header: "h", Kind: "incident.Ticket Number"}, "unknown kind"},
		{KeySpec{Message: true, Kind: "contact.contactid"}, "has no built-in pattern"},
		{KeySpec{Message: true, Kind: "case", Pattern: "("}, "pattern:"},
		{KeySpec{Message: true, Kind: "case", Pattern: "(a)(b)"}, "at most one capturing group"},
	} {
		_, err := NewExtractor([]KeySpec{{Header: "ok", Kind: "case"}, tc.spec})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "keys[1]: ") {
			t.Errorf("%+v: err = %v, want %q", tc.spec, err, tc.want)
		}
	}
}

func TestLastUserTextNoUser(t *testing.T) {
	x, _ := NewExtractor([]KeySpec{{Message: true, Kind: "case"}})
	for _, body := range []string{`{}`, `{"messages":"CAS-01234-X1Y2Z3"}`, `{"messages":[{"role":"system","content":"CAS-01234-X1Y2Z3"}]}`, `[]`, ``} {
		if keys := x.Extract(nil, []byte(body)); len(keys) != 0 {
			t.Errorf("%s: %v", body, keys)
		}
	}
}
