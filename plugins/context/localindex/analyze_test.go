package localindex

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestAnalyze(t *testing.T) {
	for in, want := range map[string][]string{
		"How do I reset my router?":          {"reset", "router"},
		"Wi-Fi keeps dropping":               {"wi", "fi", "wifi", "keep", "drop"},
		"USB-C charger, 65W":                 {"usb", "usbc", "charger", "65w"},
		"The TV won't turn on":               {"tv", "turn"},
		"Charging, charged, charges, charge": {"charg", "charg", "charg", "charg"},
		"settings batteries boxes paired":    {"set", "battery", "box", "pair"},
		"Inês called about the Nova 8 Pro":   {"ine", "call", "nova", "8", "pro"},
		"KA-01042 and CAS-01001-K7M2Q9":      {"ka", "01042", "ka01042", "ca", "01001", "k7m2q9", "cas01001k7m2q9"},
		"":                                   nil,
		"!!! ... ---":                        nil,
	} {
		got := analyze(in, nil)
		if !slices.Equal(got, want) {
			t.Errorf("analyze(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStem(t *testing.T) {
	for in, want := range map[string]string{
		"running": "run", "stopped": "stop", "installed": "install", "updates": "updat", "updating": "updat",
		"update": "updat", "phones": "phon", "phone": "phon", "tvs": "tv", "wireless": "wireless", "bus": "bus",
		"being": "being", "string": "string", "quickly": "quick", "agreed": "agre", "agree": "agre", "x200s": "x200s",
	} {
		if got := stem(in); got != want {
			t.Errorf("stem(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzAnalyze checks the query tokenizer on any input: no panic, and every
// term is non-empty, lower-case, valid UTF-8, bounded in length, and the
// same on a second run.
func FuzzAnalyze(f *testing.F) {
	for _, s := range []string{"How do I reset my router?", "Wi-Fi", "won't", "ÀÉÎõü", "a-b-c-d", "\xff\xfe", "CAS-01001-K7M2Q9", "’s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		terms := analyze(s, nil)
		for _, term := range terms {
			if term == "" || !utf8.ValidString(term) || len(term) > maxTermLen {
				t.Fatalf("bad term %q from %q", term, s)
			}
			if strings.ToLower(term) != term && !strings.ContainsFunc(term, func(r rune) bool { return r > 127 }) {
				t.Fatalf("term %q is not lower-case", term)
			}
		}
		if again := analyze(s, nil); !slices.Equal(terms, again) {
			t.Fatalf("not deterministic: %q vs %q", terms, again)
		}
	})
}
