package pii

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/groundgate/groundgate/filters"
	"github.com/groundgate/groundgate/filters/filterstest"
)

var redactAll = filters.StageActions{Input: filters.Redact, Context: filters.Redact, Output: filters.Redact}

func mustNew(t testing.TB, c PII) *PII {
	t.Helper()
	if !c.Actions.Any() {
		c.Actions = redactAll
	}
	p, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// found returns "category:text" for each finding, in order of position.
func found(p *PII, text string) []string {
	fs := p.Scan(text, filters.StageInput)
	var out []string
	for len(fs) > 0 {
		k := 0
		for i := range fs {
			if fs[i].Start < fs[k].Start {
				k = i
			}
		}
		out = append(out, fs[k].Category+":"+text[fs[k].Start:fs[k].End])
		fs = append(fs[:k], fs[k+1:]...)
	}
	return out
}

type tcase struct {
	text string
	want []string // "category:matched text"
}

func run(t *testing.T, p *PII, cases []tcase) {
	t.Helper()
	for _, tc := range cases {
		got := found(p, tc.text)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%q:\n got  %q\n want %q", tc.text, got, tc.want)
		}
	}
}

func TestEmail(t *testing.T) {
	run(t, mustNew(t, PII{Entities: []string{Email}}), []tcase{
		{"mail jane.doe+tag@example.co.uk today", []string{"email:jane.doe+tag@example.co.uk"}},
		{"<J.Smith@Contoso.com>.", []string{"email:J.Smith@Contoso.com"}},
		{"end: bob@example.org.", []string{"email:bob@example.org"}},
		{"a@b@c.io", []string{"email:b@c.io"}},
		{"x_y%z-1@sub-domain.example.travel", []string{"email:x_y%z-1@sub-domain.example.travel"}},
		{"..dots@example.com", []string{"email:..dots@example.com"}},
		{"user@localhost", nil},               // no TLD
		{"user@example.c0m", nil},             // TLD must be letters
		{"user@-bad.com", nil},                // label starts with '-'
		{"@example.com", nil},                 // no local part
		{"user.@example.com", nil},            // local part ends with '.'
		{"a..b@example.com", nil},             // consecutive dots
		{"twitter @handle and me@ home", nil}, // no domain
		{strings.Repeat("a", 65) + "@example.com", nil},
		{strings.Repeat("a", 64) + "@example.com", []string{"email:" + strings.Repeat("a", 64) + "@example.com"}},
		{"price@5.99 each", nil},
	})
}

func TestPhone(t *testing.T) {
	run(t, mustNew(t, PII{Entities: []string{Phone}}), []tcase{
		// international
		{"call +44 20 7946 0958 now", []string{"phone:+44 20 7946 0958"}},
		{"+1 (415) 555-0100", []string{"phone:+1 (415) 555-0100"}},
		{"+1-415-555-0100", []string{"phone:+1-415-555-0100"}},
		{"+49 30 901820", []string{"phone:+49 30 901820"}},
		{"+33 1 42 68 53 00", []string{"phone:+33 1 42 68 53 00"}},
		{"+81 3-1234-5678", []string{"phone:+81 3-1234-5678"}},
		{"+91 98765 43210", []string{"phone:+91 98765 43210"}},
		{"+86 138 0013 8000", []string{"phone:+86 138 0013 8000"}},
		{"+44 (0)20 7946 0958", []string{"phone:+44 (0)20 7946 0958"}},
		{"+14155550100", []string{"phone:+14155550100"}},
		{"tel:+4930901820", []string{"phone:+4930901820"}},
		{"0044 20 7946 0958", []string{"phone:0044 20 7946 0958"}},
		{"+61 2 9374 4000.", []string{"phone:+61 2 9374 4000"}},
		// North American
		{"(415) 555-0100", []string{"phone:(415) 555-0100"}},
		{"my cell is 415.555.0100.", []string{"phone:415.555.0100"}},
		{"415 555 0100", []string{"phone:415 555 0100"}},
		{"1-800-555-0199", []string{"phone:1-800-555-0199"}},
		// national with trunk 0
		{"020 7946 0958", []string{"phone:020 7946 0958"}},
		{"01 42 68 53 00", []string{"phone:01 42 68 53 00"}},
		{"06-12345678", []string{"phone:06-12345678"}},
		{"Phone: 030 901820", []string{"phone:030 901820"}},
		// not phones
		{"order 4512398876", nil},            // plain digits: order number
		{"order #415-555-0100", nil},         // after '#': an order number
		{"ORD-415-555-0100", nil},            // glued to an identifier
		{"2024-03-15", nil},                  // date
		{"15.03.2024", nil},                  // date
		{"01-02-2024 10", nil},               // date and number
		{"$1,299.99", nil},                   // price
		{"v10.0.19045", nil},                 // version
		{"10.0.19045.2364", nil},             // version
		{"192.168.1.1", nil},                 // IP address
		{"1Z999AA10123456784", nil},          // UPS tracking
		{"9400 1000 0000 0000 0000 00", nil}, // USPS tracking
		{"7489 1234 5678", nil},              // FedEx tracking
		{"123-456-7890", nil},                // area code cannot start with 1
		{"+12", nil},                         // too short
		{"+1234567890123456", nil},           // too long
		{"415-555-0100x", nil},               // glued to a letter
		{"10:30", nil},
	})
}

func TestCreditCard(t *testing.T) {
	run(t, mustNew(t, PII{Entities: []string{CreditCard}}), []tcase{
		{"card 4111 1111 1111 1111 exp 12/27", []string{"credit_card:4111 1111 1111 1111"}},
		{"4111111111111111", []string{"credit_card:4111111111111111"}},
		{"4111-1111-1111-1111.", []string{"credit_card:4111-1111-1111-1111"}},
		{"5555 5555 5555 4444", []string{"credit_card:5555 5555 5555 4444"}}, // Mastercard
		{"2223 0031 2200 3222", []string{"credit_card:2223 0031 2200 3222"}}, // Mastercard 2-series
		{"3782 822463 10005", []string{"credit_card:3782 822463 10005"}},     // Amex 4-6-5
		{"378282246310005", []string{"credit_card:378282246310005"}},         // Amex plain
		{"6011 1111 1111 1117", []string{"credit_card:6011 1111 1111 1117"}}, // Discover
		{"3530 1113 3330 0000", []string{"credit_card:3530 1113 3330 0000"}}, // JCB
		{"Card:4012888888881881", []string{"credit_card:4012888888881881"}},  // ':' is fine
		{"4111 1111 1111 1112", nil},                                         // Luhn fails
		{"4111111111111112", nil},                                            // Luhn fails
		{"1234 5678 9012 3452", nil},                                         // Luhn ok, no issuer
		{"4111 1111 1111 1111 1", nil},                                       // 17 digits: no Visa length
		{"41111 11111 111111", nil},                                          // odd grouping
		{"4111 1111-1111 1111", []string{"credit_card:4111 1111-1111 1111"}}, // mixed separators, card grouping
		{"charged $12 4111 1111 1111 1111 today", []string{"credit_card:4111 1111 1111 1111"}},
		{"ref 77 4111111111111111", []string{"credit_card:4111111111111111"}},
		{"9400 4111 1111 1111 1111", nil}, // fours joined alike: one number
		{"card no.4111.1111.1111.1111", []string{"credit_card:4111.1111.1111.1111"}},
		{"４１１１ １１１１ １１１１ １１１１", []string{"credit_card:４１１１ １１１１ １１１１ １１１１"}},
		{"4111\u200b1111\u200b1111\u200b1111", []string{"credit_card:4111\u200b1111\u200b1111\u200b1111"}},
		{"ORD-4111111111111111", nil},        // glued
		{"4111111111111111.50", nil},         // decimal
		{"9400 1000 0000 0000 0000 00", nil}, // tracking
		{"$4111111111111111", nil},
	})
}

func TestIBAN(t *testing.T) {
	run(t, mustNew(t, PII{Entities: []string{IBAN}}), []tcase{
		{"IBAN DE89 3704 0044 0532 0130 00 please", []string{"iban:DE89 3704 0044 0532 0130 00"}},
		{"DE89370400440532013000", []string{"iban:DE89370400440532013000"}},
		{"GB82 WEST 1234 5698 7654 32.", []string{"iban:GB82 WEST 1234 5698 7654 32"}},
		{"FR14 2004 1010 0505 0001 3M02 606", []string{"iban:FR14 2004 1010 0505 0001 3M02 606"}},
		{"NL91ABNA0417164300", []string{"iban:NL91ABNA0417164300"}},
		{"gb82west12345698765432", []string{"iban:gb82west12345698765432"}},
		{"NO9386011117947", []string{"iban:NO9386011117947"}},
		{"DE89 3704 0044 0532 0130 01", nil},   // mod-97 fails
		{"DE88370400440532013000", nil},        // check digits wrong
		{"DE89 3704 0044 0532 0130 0012", nil}, // too long for DE
		{"DE89 3704 0044 0532 0130", nil},      // too short
		{"XX89370400440532013000", nil},        // unknown country
		{"ADE89370400440532013000", nil},       // glued
		{"ab12", nil},
	})
}

func TestSSN(t *testing.T) {
	run(t, mustNew(t, PII{Entities: []string{SSN}}), []tcase{
		{"SSN 123-45-6789.", []string{"ssn:123-45-6789"}},
		{"ssn:536 22 4512", []string{"ssn:536 22 4512"}},
		{"000-12-3456", nil},
		{"666-12-3456", nil},
		{"900-12-3456", nil},
		{"999-12-3456", nil},
		{"123-00-4567", nil},
		{"123-45-0000", nil},
		{"078-05-1120", nil},
		{"123-45-67890", nil},
		{"123-45-6789-1", nil},
		{"123 45-6789", nil}, // mixed separators
		{"123456789", nil},   // unseparated: too ambiguous
		{"A123-45-6789", nil},
		{"2024-03-15", nil},
	})
}

func TestIP(t *testing.T) {
	run(t, mustNew(t, PII{Entities: []string{IPv4, IPv6}}), []tcase{
		{"from 192.168.1.10 and 8.8.8.8.", []string{"ipv4:192.168.1.10", "ipv4:8.8.8.8"}},
		{"http://10.0.0.1:8080/x", []string{"ipv4:10.0.0.1"}},
		{"255.255.255.255 0.0.0.0", []string{"ipv4:255.255.255.255", "ipv4:0.0.0.0"}},
		{"256.1.1.1", nil},
		{"01.2.3.4", nil},
		{"1.2.3", nil},
		{"10.0.19045.2364", nil}, // version string
		{"v1.2.3.4", nil},
		{"1.2.3.4.5", nil},
		{"2001:db8::1", []string{"ipv6:2001:db8::1"}},
		{"addr 2001:0db8:85a3:0000:0000:8a2e:0370:7334.", []string{"ipv6:2001:0db8:85a3:0000:0000:8a2e:0370:7334"}},
		{"::1 is loopback", []string{"ipv6:::1"}},
		{"fe80::1ff:fe23:4567:890a", []string{"ipv6:fe80::1ff:fe23:4567:890a"}},
		{"::ffff:192.0.2.128", []string{"ipv6:::ffff:192.0.2.128"}},
		{"[2001:db8::8a2e:370:7334]:443", []string{"ipv6:2001:db8::8a2e:370:7334"}},
		{"FE80::A", []string{"ipv6:FE80::A"}},
		{"10:30:45", nil},          // time
		{"00:1A:2B:3C:4D:5E", nil}, // MAC address
		{"std::vector", nil},
		{"face:beef", nil},
		{"::", nil},
		{"2001:db8::1g", nil},
	})
}

func TestCustomAndOverrides(t *testing.T) {
	p := mustNew(t, PII{
		Actions:   filters.StageActions{Input: filters.Redact, Output: filters.Redact},
		Overrides: map[string]filters.StageActions{CreditCard: {Input: filters.Block, Output: filters.Block}, "employee_id": {Output: filters.Annotate}},
		Custom:    []Custom{{Name: "employee_id", Pattern: `\bEMP-\d{6}\b`}, {Name: "order", Pattern: `ORD-\d{8}`, Actions: &filters.StageActions{Context: filters.Annotate}}},
	})
	c := filters.MustChain([]filters.Filter{p}, filters.Options{})
	r := c.Run("mail a@example.com about EMP-123456 and ORD-12345678", filters.StageInput)
	if r.Blocked || r.Text != "mail [REDACTED:email] about EMP-123456 and ORD-12345678" {
		t.Errorf("input: %+v", r)
	}
	r = c.Run("EMP-123456", filters.StageOutput)
	if len(r.Findings) != 1 || r.Findings[0].Action != filters.Annotate || r.Text != "EMP-123456" {
		t.Errorf("output custom: %+v", r)
	}
	r = c.Run("ORD-12345678", filters.StageContext)
	if len(r.Findings) != 1 || r.Findings[0].Category != "order" {
		t.Errorf("context custom: %+v", r)
	}
	if r := c.Run("pay with 4111 1111 1111 1111", filters.StageInput); !r.Blocked {
		t.Error("card not blocked")
	}
	if !p.Active(filters.StageContext) {
		t.Error("context inactive")
	}
}

func TestProvisionErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  PII
		want string
	}{
		{PII{Entities: []string{"passport"}, Actions: redactAll}, `unknown entity type "passport"`},
		{PII{Overrides: map[string]filters.StageActions{"nope": {}}, Actions: redactAll}, `override for unknown entity type "nope"`},
		{PII{Custom: []Custom{{Name: "x", Pattern: "("}}, Actions: redactAll}, "missing closing"},
		{PII{Custom: []Custom{{Name: "email", Pattern: "x"}}, Actions: redactAll}, "already used"},
		{PII{Custom: []Custom{{Name: "x", Pattern: "a?"}}, Actions: redactAll}, "empty string"},
		{PII{}, "no entity type has an action"},
	} {
		_, err := New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

var streamTexts = []string{
	"Hi, I'm Jane (jane.doe+orders@example.co.uk, +44 20 7946 0958). Card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00.",
	"SSN 123-45-6789; server 192.168.1.10 and 2001:db8::1; call (415) 555-0100 or 020 7946 0958.",
	"Order ORD-20240303-7781 shipped 2024-03-15, tracking 1Z999AA10123456784, firmware v2.3.14, total $1,299.99.",
	"a@b@c.io x@y.z 4111111111111111 +14155550100 ::ffff:192.0.2.128 10.0.19045.2364 GB82WEST12345698765432",
	"café é@example.com ñ 415.555.0100 — 日本 ::1",
	"4111 1111 1111 1111 1 and 378282246310005 and 3782 822463 10005",
}

func TestStreamEqualsWhole(t *testing.T) {
	rnd := rand.New(rand.NewPCG(11, 12))
	p := mustNew(t, PII{Custom: []Custom{{Name: "order", Pattern: `ORD-\d{8}-\d{4}`}}})
	c := filters.MustChain([]filters.Filter{p}, filters.Options{})
	for _, text := range streamTexts {
		filterstest.Check(t, c, filters.StageOutput, text, rnd, 200)
	}
	// block mid-stream
	pb := mustNew(t, PII{Overrides: map[string]filters.StageActions{CreditCard: {Output: filters.Block}}})
	cb := filters.MustChain([]filters.Filter{pb}, filters.Options{})
	if r := filterstest.Check(t, cb, filters.StageOutput, streamTexts[0], rnd, 200); !r.Blocked {
		t.Error("not blocked")
	}
}

func TestUnmarshalCaddyfile(t *testing.T) {
	in := "pii {\n input redact\n output redact\n context detect\n entities email phone credit_card\n entity credit_card {\n  input block\n  output block\n }\n custom employee_id `EMP-\\d{6}` {\n  output annotate\n }\n custom order `ORD-\\d{8}`\n max_match 64\n}"
	var p PII
	if err := p.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(&p)
	want := `{"entities":["email","phone","credit_card"],"actions":{"input":"redact","context":"annotate","output":"redact"},"overrides":{"credit_card":{"input":"block","output":"block"}},"custom":[{"name":"employee_id","pattern":"EMP-\\d{6}","actions":{"output":"annotate"}},{"name":"order","pattern":"ORD-\\d{8}"}],"max_match":64}`
	if string(js) != want {
		t.Errorf("got  %s\nwant %s", js, want)
	}
	for in, want := range map[string]string{
		"pii {\n bogus\n}":                       `unrecognized pii subdirective "bogus"`,
		"pii x":                                  "wrong argument count",
		"pii {\n entities\n}":                    "wrong argument count",
		"pii {\n entity\n}":                      "wrong argument count",
		"pii {\n entity email\n}":                "entity email: no actions",
		"pii {\n entity email {\n  foo x\n }\n}": `unrecognized pii entity subdirective "foo"`,
		"pii {\n custom a\n}":                    "wrong argument count",
		"pii {\n custom a b {\n  bar\n }\n}":     `unrecognized pii custom subdirective "bar"`,
		"pii {\n output shred\n}":                `unknown action "shred"`,
		"pii {\n max_match x\n}":                 "want an integer",
	} {
		var p PII
		err := p.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", in, err, want)
		}
	}
}

// FuzzScan: findings are in range, each entity's text validates on its
// own, and a two-piece stream gives the whole-text result.
func FuzzScan(f *testing.F) {
	for _, s := range streamTexts {
		f.Add(s, len(s)/2)
	}
	f.Add("+1 (415) 555-0100", 3)
	f.Add("DE89 3704 0044 0532 0130 00", 10)
	f.Add("fe80::1ff:fe23:4567:890a", 7)
	for _, s := range []string{"card no.4111.1111.1111.1111 ok", "４１１１ １１１１ １１１１ １１１１",
		"4111\u200b1111\u200d1111 1111\n", "3782 822463 10005 12/26", "4111 1111\r\n1111 1111. 5500 0000 0000 0004",
		"card#4111111111111111=", "9400 1000 0000 0000 0000 00", "4111\u00a01111\u2009\u20091111\u20131111"} {
		f.Add(s, 9)
	}
	p := mustNew(f, PII{Custom: []Custom{{Name: "order", Pattern: `ORD-\d{8}`}}})
	c := filters.MustChain([]filters.Filter{p}, filters.Options{})
	f.Fuzz(func(t *testing.T, text string, split int) {
		fs := p.Scan(text, filters.StageOutput)
		for _, x := range fs {
			if x.Start < 0 || x.End > len(text) || x.Start >= x.End {
				t.Fatalf("bad span %+v in %q", x, text)
			}
			// an entity found alone is found again, whole
			sub := text[x.Start:x.End]
			again := false
			for _, y := range p.Scan(" "+sub+" ", filters.StageOutput) {
				if y.Category == x.Category && y.Start == 1 && y.End == 1+len(sub) {
					again = true
				}
			}
			if !again && x.Category != "order" {
				t.Fatalf("%s %q found in %q but not alone", x.Category, sub, text)
			}
		}
		i := (split%(len(text)+1) + len(text) + 1) % (len(text) + 1)
		whole := c.Run(text, filters.StageOutput)
		got, v, _ := filterstest.Stream(c, filters.StageOutput, []string{text[:i], text[i:]})
		if v != filters.Pass || got != whole.Text {
			t.Fatalf("%q split %d: stream %q, whole %q", text, i, got, whole.Text)
		}
	})
}

func benchText(withPII bool) string {
	base := "Hi, I ordered the X200 wireless headphones on March 3rd (order ORD-20240303-7781) and they arrived with a cracked case. " +
		"The left earbud doesn't charge and the app says firmware 2.3.14 is current. Could you send a replacement or refund? "
	if withPII {
		base += "You can reach me at jane.doe@example.com or +44 20 7946 0958. "
	}
	return strings.Repeat(base, 12)[:2048]
}

func BenchmarkScan2KB(b *testing.B) {
	p := mustNew(b, PII{})
	for _, withPII := range []bool{false, true} {
		text := benchText(withPII)
		b.Run(fmt.Sprintf("pii=%v", withPII), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				p.Scan(text, filters.StageInput)
			}
		})
	}
}
