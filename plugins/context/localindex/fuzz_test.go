package localindex

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// FuzzDocuments: any mapping and any JSON; compiling refuses what it
// cannot run, and what compiles walks the file without panicking, each
// document with the location or id it was given.
func FuzzDocuments(f *testing.F) {
	f.Add("*.*.faqs.*", "question", "answer", "../../name", "$1", []byte(`{"hotel":{"1":{"name":"AVALON","faqs":{"0":{"question":"q","answer":"a"}}}}}`))
	f.Add("*", "title", "body", "entity", "'x'", []byte(`[{"title":"t","body":["a",{"b":"c"},3,true,null]},{"title":1}]`))
	f.Add("a.*", "../x", "$1", "../../y", "z.w", []byte(`{"a":[[1],{"x":2}]}`))
	f.Add("*.*", "$2", "..", "'", "$9", []byte(`"just a string"`))
	f.Fuzz(func(t *testing.T, each, title, body, entity, meta string, data []byte) {
		d := &Documents{Paths: []string{"x.json"}, Each: each, Title: title, Body: []string{body}, Entity: entity, Metadata: map[string]string{"m": meta}}
		m, err := d.compile()
		if err != nil || !gjson.ValidBytes(data) {
			return
		}
		n := 0
		err = m.walk(gjson.ParseBytes(data), func(loc located) error {
			a := m.article(loc)
			if a.ID == "" && len(loc.keys) > 0 {
				t.Fatalf("no id for %v", loc.keys)
			}
			if len(loc.captures) != m.stars {
				t.Fatalf("%d captures for %d wildcards", len(loc.captures), m.stars)
			}
			n++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzEntityFind: any conversation text; names found are names of the
// table, each once.
func FuzzEntityFind(f *testing.F) {
	f.Add("Is the A and B Guesthouse clean? What about the Ashly or City Centre North B & B?")
	f.Add("the north side of town, maharaja tandori, rosa's")
	f.Add("\xff\xfe ASHLEY-HOTEL’s")
	tab := testTable()
	f.Fuzz(func(t *testing.T, text string) {
		ms := tab.find(text, 0, 1, nil, &scratch{})
		seen := map[int32]bool{}
		for _, m := range ms {
			if m.entity < 0 || int(m.entity) >= len(tab.names) || seen[m.entity] {
				t.Fatalf("mention %+v", m)
			}
			seen[m.entity] = true
		}
		words, caps := nameWords(text, nil, new([]bool))
		if len(words) != len(caps) {
			t.Fatalf("%d words, %d capitals", len(words), len(caps))
		}
		for _, w := range words {
			if w == "" || (utf8.ValidString(text) && !utf8.ValidString(w)) || strings.ContainsAny(w, " '") {
				t.Fatalf("word %q", w)
			}
		}
	})
}
