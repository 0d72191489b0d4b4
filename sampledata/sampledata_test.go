package sampledata_test

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/groundgate/groundgate/grounding"
	"github.com/groundgate/groundgate/plugins/context/records"
	"github.com/groundgate/groundgate/sampledata"
)

// TestArticles: every article parses, its number matches its file name,
// numbers are unique, cross-references point at existing articles, and
// every article has keywords, a description and real content.
func TestArticles(t *testing.T) {
	files, err := fs.Glob(sampledata.FS, sampledata.ArticlesDir+"/*.md")
	if err != nil || len(files) < 50 {
		t.Fatalf("%d article files, err %v", len(files), err)
	}
	numbers := map[string]bool{}
	var all []grounding.Article
	for _, f := range files {
		b, _ := fs.ReadFile(sampledata.FS, f)
		arts, err := grounding.ParseArticleFile(f, b)
		if err != nil {
			t.Fatal(err)
		}
		a := arts[0]
		if a.Number+".md" != path.Base(f) || numbers[a.Number] {
			t.Errorf("%s: number %s", f, a.Number)
		}
		numbers[a.Number] = true
		if len(a.Keywords) < 3 || a.Description == "" || len(strings.Fields(a.Content)) < 80 || a.URL != "https://support.contoso.example/kb/"+a.Number {
			t.Errorf("%s: thin article (%d keywords, %d words)", f, len(a.Keywords), len(strings.Fields(a.Content)))
		}
		all = append(all, a)
	}
	ref := regexp.MustCompile(`KA-\d{5}`)
	for _, a := range all {
		for _, r := range ref.FindAllString(a.Content, -1) {
			if !numbers[r] {
				t.Errorf("%s refers to missing %s", a.Number, r)
			}
		}
	}
}

// TestRecords: the CRM tables load, case numbers follow the pattern, and
// every case's customer and contact resolve.
func TestRecords(t *testing.T) {
	l, err := records.Load("", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := l.Counts()
	if c["account"] < 10 || c["contact"] < 20 || c["incident"] < 30 || c["knowledgearticle"] < 50 {
		t.Fatalf("counts %v", c)
	}
	var doc struct {
		Value []map[string]any `json:"value"`
	}
	b, _ := fs.ReadFile(sampledata.FS, "incidents.json")
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	pat := regexp.MustCompile(`^` + grounding.KeyKinds[0].Pattern + `$`)
	for _, row := range doc.Value {
		n, _ := row["ticketnumber"].(string)
		if !pat.MatchString(n) {
			t.Errorf("ticket number %q", n)
		}
		recs, _, _ := grounding.Resolve(context.Background(), l, []grounding.RecordKey{{Entity: "incident", Field: "ticketnumber", Value: n}}, nil,
			grounding.RecordsQuery{Entities: []string{"incident", "contact"}})
		if len(recs) != 2 || recs[0].Fields["customerid"] == "" || recs[0].Owner.BusinessUnitName == "" || recs[0].Owner.TeamName == "" {
			t.Errorf("%s: %d records, fields %v", n, len(recs), recs)
		}
	}
}

// TestQuestions: the labelled retrieval set is large enough and every
// label names an existing article.
func TestQuestions(t *testing.T) {
	b, err := os.ReadFile("eval/questions.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Questions []struct {
			Q        string   `json:"q"`
			Articles []string `json:"articles"`
		} `json:"questions"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Questions) < 60 {
		t.Fatalf("%d questions", len(f.Questions))
	}
	for _, q := range f.Questions {
		if len(q.Articles) == 0 {
			t.Errorf("%q has no label", q.Q)
		}
		for _, a := range q.Articles {
			if _, err := fs.Stat(sampledata.FS, sampledata.ArticlesDir+"/"+a+".md"); err != nil {
				t.Errorf("%q: label %s does not exist", q.Q, a)
			}
		}
	}
}
