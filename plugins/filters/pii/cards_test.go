package pii

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/groundgate/groundgate/filters"
)

// testdata/cards.tsv is a labelled set of texts written the way people
// write card numbers (positives: label 1) and of numbers that are not
// cards but look alike (hard negatives: label 0): order, tracking, phone,
// IBAN, IMEI, ISBN, invoice and masked card numbers. Each line is
// label, format, Go-quoted text, tab-separated. It is generated once by
// TestGenerateCards with -gencards (seeded, so reproducible) and committed;
// TestCardCatchRate measures the scanner on it.

var genCards = flag.Bool("gencards", false, "regenerate testdata/cards.tsv")

type cardExample struct {
	label  bool
	format string
	text   string
}

// luhnComplete appends the check digit that makes prefix Luhn-valid.
func luhnComplete(prefix string) string {
	for d := byte('0'); d <= '9'; d++ {
		if s := prefix + string(d); luhn([]byte(s)) {
			return s
		}
	}
	panic("unreachable")
}

// eanComplete appends the EAN-13 check digit.
func eanComplete(prefix string) string {
	for d := byte('0'); d <= '9'; d++ {
		if s := prefix + string(d); ean13([]byte(s)) {
			return s
		}
	}
	panic("unreachable")
}

func randDigits(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('0' + r.IntN(10))
	}
	return string(b)
}

// cardNumber returns a Luhn-valid number of a random network and its
// network name.
func cardNumber(r *rand.Rand) (string, string) {
	type net struct {
		name   string
		prefix func() string
		n      []int
	}
	nets := []net{
		{"visa", func() string { return "4" }, []int{16, 16, 16, 13, 19}},
		{"mastercard", func() string { return strconv.Itoa(51 + r.IntN(5)) }, []int{16}},
		{"mastercard2", func() string { return strconv.Itoa(2221 + r.IntN(500)) }, []int{16}},
		{"amex", func() string { return []string{"34", "37"}[r.IntN(2)] }, []int{15}},
		{"discover", func() string { return []string{"6011", "65", "644"}[r.IntN(3)] }, []int{16}},
		{"diners", func() string { return []string{"36", "300", "305", "38"}[r.IntN(4)] }, []int{14}},
		{"jcb", func() string { return strconv.Itoa(3528 + r.IntN(62)) }, []int{16}},
		{"unionpay", func() string { return "62" + strconv.Itoa(12+r.IntN(80)) }, []int{16, 19}},
		{"maestro", func() string { return []string{"5018", "5020", "6304", "6759"}[r.IntN(4)] }, []int{16, 19}},
	}
	nt := nets[r.IntN(len(nets))]
	p := nt.prefix()
	n := nt.n[r.IntN(len(nt.n))]
	return luhnComplete(p + randDigits(r, n-len(p)-1)), nt.name
}

// group splits num by the network's usual grouping.
func group(num string, sep string) string {
	var sizes []int
	switch {
	case len(num) == 15 && (num[:2] == "34" || num[:2] == "37"):
		sizes = []int{4, 6, 5}
	case len(num) == 14:
		sizes = []int{4, 6, 4}
	default:
		for k := 0; k < len(num); k += 4 {
			sizes = append(sizes, min(4, len(num)-k))
		}
	}
	var parts []string
	at := 0
	for _, s := range sizes {
		parts = append(parts, num[at:at+s])
		at += s
	}
	return strings.Join(parts, sep)
}

// jsonEscape writes every non-ASCII rune as a \uXXXX escape.
func jsonEscape(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c < 0x80 {
			b.WriteRune(c)
		} else {
			fmt.Fprintf(&b, "\\u%04x", c)
		}
	}
	return b.String()
}

func fullwidth(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c >= '0' && c <= '9' {
			b.WriteRune(c - '0' + '０')
		} else {
			b.WriteRune(c)
		}
	}
	return b.String()
}

var cardSentences = []string{
	"My card number is %s.",
	"Please charge %s for the replacement.",
	"card: %s exp 09/27",
	"The customer read out %s over the phone",
	"Refund to %s please, thanks!",
	"Pay with %s\nExpiry 11/26, CVV 123",
	"Here you go: %s",
	"%s",
	"I used my Visa (%s) yesterday",
	"Can you check why %s was declined?",
	"{\"card\":\"%s\",\"exp\":\"04/28\"}",
	"cc %s",
}

func genCardSet(r *rand.Rand) []cardExample {
	var out []cardExample
	pos := func(format, s string) {
		out = append(out, cardExample{true, format, fmt.Sprintf(cardSentences[r.IntN(len(cardSentences))], s)})
	}
	formats := []struct {
		name string
		f    func(num string) string
	}{
		{"plain", func(n string) string { return n }},
		{"spaces", func(n string) string { return group(n, " ") }},
		{"dashes", func(n string) string { return group(n, "-") }},
		{"dots", func(n string) string { return group(n, ".") }},
		{"double-spaces", func(n string) string { return group(n, "  ") }},
		{"nbsp", func(n string) string { return group(n, "\u00a0") }},
		{"thin-space", func(n string) string { return group(n, "\u2009") }},
		{"en-dash", func(n string) string { return group(n, "\u2013") }},
		{"spaced-dash", func(n string) string { return group(n, " - ") }},
		{"zero-width-between", func(n string) string { return group(n, "\u200b") }},
		{"zero-width-inside", func(n string) string {
			k := 1 + r.IntN(len(n)-2)
			return n[:k] + "\u200b\u200d" + n[k:]
		}},
		{"zero-width-spaced", func(n string) string { return strings.ReplaceAll(group(n, " "), " ", "\u200b \u200c") }},
		{"fullwidth", func(n string) string { return fullwidth(n) }},
		{"fullwidth-spaces", func(n string) string { return fullwidth(group(n, " ")) }},
		{"card-no-dot", func(n string) string { return "card no." + n }},
		{"card-no-dot-spaced", func(n string) string { return "Card No." + group(n, " ") }},
		{"hash", func(n string) string { return "card#" + n }},
		{"colon", func(n string) string { return "CC:" + group(n, "-") }},
		{"equals", func(n string) string { return "card=" + n }},
		{"newline", func(n string) string {
			g := group(n, " ")
			k := strings.Index(g[5:], " ") + 5
			return g[:k] + "\n" + g[k+1:]
		}},
		{"crlf", func(n string) string {
			g := group(n, "-")
			k := strings.Index(g, "-")
			return g[:k] + "\r\n" + g[k+1:]
		}},
		{"parens", func(n string) string { return "(" + group(n, " ") + ")" }},
		{"quoted", func(n string) string { return "'" + n + "'" }},
		{"with-expiry", func(n string) string { return group(n, " ") + " 12/26" }},
		// tool results serialised as ASCII-only JSON (Python's json.dumps)
		{"json-escaped-fullwidth", func(n string) string { return jsonEscape(fullwidth(group(n, " "))) }},
		{"json-escaped-zero-width", func(n string) string { return jsonEscape(group(n, "\u200b")) }},
		{"json-escaped-nbsp", func(n string) string { return jsonEscape(group(n, "\u00a0")) }},
		{"after-expiry", func(n string) string {
			return "exp 0" + strconv.Itoa(1+r.IntN(9)) + "/2" + strconv.Itoa(5+r.IntN(5)) + " " + group(n, " ")
		}},
		{"mixed-separators", func(n string) string {
			g := group(n, " ")
			k := strings.LastIndex(g, " ")
			return g[:k] + "-" + g[k+1:]
		}},
	}
	for _, f := range formats {
		for k := 0; k < 20; k++ {
			num, _ := cardNumber(r)
			pos(f.name, f.f(num))
		}
	}
	neg := func(format, s string) { out = append(out, cardExample{false, format, s}) }
	for k := 0; k < 25; k++ {
		neg("order", fmt.Sprintf("Order #%s shipped today.", randDigits(r, 8+r.IntN(5))))
		neg("order-amazon", fmt.Sprintf("Your order 1%s-%s-%s is on its way", randDigits(r, 2), randDigits(r, 7), randDigits(r, 7)))
		neg("order-dashed", fmt.Sprintf("Reference ORD-%s-%s", randDigits(r, 4), randDigits(r, 6)))
		neg("ups", fmt.Sprintf("UPS tracking 1Z%s%s", strings.ToUpper(fmt.Sprintf("%03x", r.IntN(4096))), randDigits(r, 13)))
		neg("usps", fmt.Sprintf("USPS: 9400 %s %s %s %s %s", randDigits(r, 4), randDigits(r, 4), randDigits(r, 4), randDigits(r, 4), randDigits(r, 2)))
		neg("usps-plain", fmt.Sprintf("tracking 92%s", randDigits(r, 20)))
		neg("fedex", fmt.Sprintf("FedEx %s %s %s", randDigits(r, 4), randDigits(r, 4), randDigits(r, 4)))
		neg("fedex-ground", fmt.Sprintf("FedEx Ground 96%s", randDigits(r, 20)))
		neg("phone-us", fmt.Sprintf("Call +1 (%s) 555-%s", randDigits(r, 3), randDigits(r, 4)))
		neg("phone-intl", fmt.Sprintf("Reach me on +44 20 %s %s or 0049 30 %s %s", randDigits(r, 4), randDigits(r, 4), randDigits(r, 4), randDigits(r, 4)))
		neg("iban-de", "IBAN DE89 3704 0044 0532 0130 00 please")
		neg("iban-fr", fmt.Sprintf("FR76 %s %s %s %s %s %s", randDigits(r, 4), randDigits(r, 4), randDigits(r, 4), randDigits(r, 4), randDigits(r, 4), randDigits(r, 3)))
		neg("imei", fmt.Sprintf("IMEI %s", luhnComplete("35"+randDigits(r, 12))))
		neg("isbn", fmt.Sprintf("ISBN 978-%d-%s-%s-%d", r.IntN(10), randDigits(r, 3), randDigits(r, 5), r.IntN(10)))
		neg("ean", fmt.Sprintf("barcode %s", eanComplete("4"+strconv.Itoa(r.IntN(5))+randDigits(r, 10))))
		neg("invoice", fmt.Sprintf("Invoice INV-%s-%s", randDigits(r, 4), randDigits(r, 4)))
		neg("masked", fmt.Sprintf("card ending **** **** **** %s", randDigits(r, 4)))
		neg("masked-x", fmt.Sprintf("XXXX-XXXX-XXXX-%s on file", randDigits(r, 4)))
		neg("ssn", fmt.Sprintf("SSN %s-%s-%s", randDigits(r, 3), randDigits(r, 2), randDigits(r, 4)))
		neg("amount", fmt.Sprintf("Total $%d,%s.%s", 1+r.IntN(9), randDigits(r, 3), randDigits(r, 2)))
		neg("timestamp", fmt.Sprintf("log id %s", randDigits(r, 17)))
		neg("date-time", fmt.Sprintf("on 2025-%02d-%02d 10:%02d", 1+r.IntN(12), 1+r.IntN(28), r.IntN(60)))
		neg("serial", fmt.Sprintf("serial VN%s%s", randDigits(r, 4), randDigits(r, 6)))
		neg("account", fmt.Sprintf("account number %s", randDigits(r, 10)))
		neg("ip", fmt.Sprintf("from 10.%d.%d.%d", r.IntN(256), r.IntN(256), r.IntN(256)))
		neg("two-phones", fmt.Sprintf("555 %s 555 %s", randDigits(r, 4), randDigits(r, 4)))
	}
	return out
}

func TestGenerateCards(t *testing.T) {
	if !*genCards {
		t.Skip("run with -gencards to regenerate testdata/cards.tsv")
	}
	set := genCardSet(rand.New(rand.NewPCG(7, 11)))
	var b strings.Builder
	b.WriteString("# label\tformat\ttext (Go-quoted); generated by TestGenerateCards\n")
	for _, e := range set {
		l := "0"
		if e.label {
			l = "1"
		}
		fmt.Fprintf(&b, "%s\t%s\t%s\n", l, e.format, strconv.Quote(e.text))
	}
	if err := os.WriteFile("testdata/cards.tsv", []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func loadCards(t *testing.T) []cardExample {
	f, err := os.Open("testdata/cards.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []cardExample
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		parts := strings.SplitN(line, "\t", 3)
		if len(parts) != 3 {
			t.Fatalf("bad line %q", line)
		}
		text, err := strconv.Unquote(parts[2])
		if err != nil {
			t.Fatalf("bad text %q: %v", parts[2], err)
		}
		out = append(out, cardExample{parts[0] == "1", parts[1], text})
	}
	return out
}

// TestCardCatchRate: every card written in any of the formats is caught
// whole (the redaction leaves none of its digits), and no hard negative
// is flagged; streamed scanning finds the same.
func TestCardCatchRate(t *testing.T) {
	p := mustNew(t, PII{Entities: []string{CreditCard}})
	set := loadCards(t)
	type tally struct{ n, hit int }
	byFormat := map[string]*tally{}
	var tp, fn, fp, tn int
	for _, e := range set {
		fs := p.Scan(e.text, filters.StageInput)
		hit := len(fs) > 0
		if hit && e.label {
			// caught whole: no digit of the number is left outside the findings
			left := []byte(e.text)
			for _, f := range fs {
				for i := f.Start; i < f.End; i++ {
					left[i] = 'x'
				}
			}
			if n := countDigits(string(left)); n >= 6 && !strings.Contains(e.format, "expiry") && !strings.Contains(e.text, "CVV") && !strings.Contains(e.text, "exp") {
				hit = false
			}
		}
		if byFormat[e.format] == nil {
			byFormat[e.format] = &tally{}
		}
		byFormat[e.format].n++
		if hit {
			byFormat[e.format].hit++
		}
		switch {
		case e.label && hit:
			tp++
		case e.label:
			fn++
			t.Logf("missed %s: %q", e.format, e.text)
		case hit:
			fp++
			t.Logf("false positive %s: %q", e.format, e.text)
		default:
			tn++
		}
		// The stream scanner must agree, however the text is split.
		if sf := scanSplit(p, e.text, 1+len(e.text)/3); (len(sf) > 0) != (len(fs) > 0) {
			t.Errorf("stream disagrees on %q: %d vs %d findings", e.text, len(sf), len(fs))
		}
	}
	var names []string
	for k := range byFormat {
		names = append(names, k)
	}
	sort.Strings(names)
	var rep strings.Builder
	for _, k := range names {
		fmt.Fprintf(&rep, " %s=%d/%d", k, byFormat[k].hit, byFormat[k].n)
	}
	catch := float64(tp) / float64(tp+fn)
	fpr := float64(fp) / float64(fp+tn)
	t.Logf("cards: catch rate %.3f (%d/%d), false positives %.3f (%d/%d)\n%s", catch, tp, tp+fn, fpr, fp, fp+tn, rep.String())
	if catch < 0.99 || fpr > 0.01 {
		t.Errorf("catch rate %.3f (want >= 0.99), false-positive rate %.3f (want <= 0.01)", catch, fpr)
	}
}

func countDigits(s string) int {
	n := 0
	for _, c := range s {
		if (c >= '0' && c <= '9') || (c >= '０' && c <= '９') {
			n++
		}
	}
	return n
}

// scanSplit scans text as a stream split at byte k.
func scanSplit(p *PII, text string, k int) []filters.Finding {
	var out []filters.Finding
	k = min(k, len(text))
	fs, h := p.ScanStream(text[:k], 0, false, filters.StageOutput)
	out = append(out, fs...)
	for {
		fs, h2 := p.ScanStream(text, h, true, filters.StageOutput)
		out = append(out, fs...)
		if h2 >= len(text) {
			break
		}
		h = h2
	}
	return out
}
