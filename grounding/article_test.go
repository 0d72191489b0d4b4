package grounding

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseMarkdown(t *testing.T) {
	arts, err := ParseArticleFile("kb/KA-01042.md", []byte(`---
articlepublicnumber: KA-01042
title: "Find the serial number: all products"
description: Where to look.
keywords: serial number, label; imei
url: https://support.contoso.example/kb/KA-01042
knowledgearticleid: 5c1f0f1e-0000-4000-8000-000000000042
isinternal: true
---
## Where

On the back.
`))
	if err != nil {
		t.Fatal(err)
	}
	want := Article{ID: "5c1f0f1e-0000-4000-8000-000000000042", Number: "KA-01042", Title: "Find the serial number: all products",
		URL: "https://support.contoso.example/kb/KA-01042", Description: "Where to look.", Keywords: []string{"serial number", "label", "imei"},
		Content: "## Where\n\nOn the back.", Internal: true}
	if len(arts) != 1 || !reflect.DeepEqual(arts[0], want) {
		t.Fatalf("got %+v", arts)
	}
}

func TestParseMarkdownDefaults(t *testing.T) {
	// No front matter: title from the first heading, number and id from
	// the file name; CRLF line ends; keywords as a YAML list.
	arts, err := ParseArticleFile("dir/pairing-guide.markdown", []byte("# Pairing guide\r\n\r\nHold the button.\r\n"))
	if err != nil || len(arts) != 1 {
		t.Fatal(err)
	}
	if a := arts[0]; a.Title != "Pairing guide" || a.Number != "pairing-guide" || a.ID != "pairing-guide" || a.Content != "Hold the button." {
		t.Fatalf("%+v", a)
	}
	arts, err = ParseArticleFile("x.md", []byte("---\narticlepublicnumber: KA-7\nkeywords:\n  - a\n  - ' b '\n---\nbody"))
	if err != nil || !reflect.DeepEqual(arts[0].Keywords, []string{"a", "b"}) || arts[0].ID != "KA-7" || arts[0].Title != "KA-7" {
		t.Fatalf("%+v %v", arts, err)
	}
}

func TestParseArticleErrors(t *testing.T) {
	for name, tc := range map[string]struct{ file, data, want string }{
		"unknown key":        {"a.md", "---\ntitel: x\n---\nbody", "a.md: front matter: line 2: field titel not found"},
		"unclosed":           {"a.md", "---\ntitle: x\nbody", "a.md: front matter is not closed"},
		"bad yaml":           {"a.md", "---\ntitle: [x\n---\n", "a.md: front matter:"},
		"keywords map":       {"a.md", "---\nkeywords: {a: b}\n---\n", "keywords must be a string or a list"},
		"wrong type":         {"a.md", "---\nisinternal: maybe\n---\n", "a.md: front matter:"},
		"extension":          {"a.txt", "hello", "a.txt: unknown article file type"},
		"not utf-8":          {"a.md", "\xff\xfe", "not valid UTF-8"},
		"json syntax":        {"a.json", `{"title": }`, "a.json:"},
		"json value type":    {"a.json", `{"value": 3}`, `"value" must be an array`},
		"json scalar":        {"a.json", `"x"`, "expected a JSON object or array"},
		"json rows need ids": {"a.json", `[{"title":"a"},{"title":"b"}]`, "neither articlepublicnumber nor knowledgearticleid"},
	} {
		_, err := ParseArticleFile(tc.file, []byte(tc.data))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}
}

func TestParseHTMLArticle(t *testing.T) {
	arts, err := ParseArticleFile("kb/ka.html", []byte(`<!doctype html><html><head>
<title>Reset a Vista TV</title>
<meta name="description" content="Soft and factory reset.">
<meta name="keywords" content="tv, reset">
<meta name="articlepublicnumber" content="KA-01009">
<style>p{color:red}</style><script>alert("x")</script>
</head><body>
<h1>Reset a Vista TV</h1>
<h2>Restart first</h2>
<p>Hold the <b>power</b> button<br>for 5 seconds.</p>
<ul><li>Apps crash</li><li>Menus slow</li></ul>
<table><tr><td>PIN</td><td>0000</td></tr></table>
</body></html>`))
	if err != nil || len(arts) != 1 {
		t.Fatal(err)
	}
	a := arts[0]
	if a.Title != "Reset a Vista TV" || a.Number != "KA-01009" || a.Description != "Soft and factory reset." || !reflect.DeepEqual(a.Keywords, []string{"tv", "reset"}) {
		t.Fatalf("%+v", a)
	}
	want := "## Restart first\n\nHold the power button for 5 seconds.\n\n- Apps crash\n- Menus slow\n\nPIN 0000"
	if a.Content != want {
		t.Fatalf("content %q\nwant    %q", a.Content, want)
	}
}

func TestParseArticlesJSON(t *testing.T) {
	arts, err := ParseArticleFile("export.json", []byte(`{"@odata.context":"x","value":[
		{"knowledgearticleid":"g1","articlepublicnumber":"KA-1","title":"One","content":"<p>Hello <i>world</i></p>","keywords":"a,b","statecode":3,"isinternal":false},
		{"knowledgearticleid":"g2","articlepublicnumber":"KA-2","title":"Draft","content":"x","statecode":0},
		{"knowledgearticleid":"g3","articlepublicnumber":"KA-3","title":"Plain","content":"5 < 6 and plain text","isinternal":true}
	]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(arts) != 2 || arts[0].Content != "Hello world" || arts[0].ID != "g1" || !reflect.DeepEqual(arts[0].Keywords, []string{"a", "b"}) {
		t.Fatalf("%+v", arts)
	}
	if arts[1].Content != "5 < 6 and plain text" || !arts[1].Internal {
		t.Fatalf("%+v", arts[1])
	}
	one, err := ParseArticleFile("one.json", []byte(`{"articlepublicnumber":"KA-9","title":"T","content":"c"}`))
	if err != nil || len(one) != 1 || one[0].ID != "KA-9" {
		t.Fatalf("%+v %v", one, err)
	}
}

func TestSplitFrontMatter(t *testing.T) {
	for in, want := range map[string][2]string{
		"---\na: 1\n---\nbody":    {"a: 1\n", "body"},
		"---\r\na: 1\r\n---\r\nb": {"a: 1\r\n", "b"},
		"---\na: 1\n...\nbody":    {"a: 1\n", "body"},
		"---\na: 1\n---":          {"a: 1\n", ""},
		"no front matter":         {"", "no front matter"},
		"\ufeff---\n---\nbody":    {"", "body"},
		"--- not a fence\n---\nb": {"", "--- not a fence\n---\nb"},
	} {
		fm, body, err := SplitFrontMatter([]byte(in))
		if err != nil || string(fm) != want[0] || string(body) != want[1] {
			t.Errorf("%q: fm %q body %q err %v", in, fm, body, err)
		}
	}
}
