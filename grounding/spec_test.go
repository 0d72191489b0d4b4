package grounding_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/groundgate/groundgate/grounding"
	"github.com/groundgate/groundgate/plugins/context/records"
	"github.com/groundgate/groundgate/policies"
	"github.com/groundgate/groundgate/tokens"
)

// The context sections the example policies carried (and will carry once
// the gateway enforces them) decode strictly into ContextSpec and compile.
func TestExampleContextSectionsDecode(t *testing.T) {
	sections := map[string]string{
		"ask_question":   "  articles:\n    index: knowledge\n    top: 3\n",
		"draft_email":    "  records:\n    entities: [incident, contact]\n  articles:\n    index: knowledge\n    top: 3\n",
		"summarize_case": "  records:\n    entities: [incident, contact]\n    include_notes: true\n",
		"full": `  max_tokens: 1500
  records:
    source: crm
    entities: [incident, contact, account]
    include_notes: true
    max: 4
    keys:
      - {header: x-groundgate-case, kind: case}
      - {metadata: customer_email, kind: email}
      - {user: true, kind: contact.contactid}
      - {message: true, kind: case}
      - {message: true, kind: incident.ticketnumber, pattern: '(?i)case\s+#?(\d{5})'}
  articles:
    index: knowledge
    top: 4
    per_article: 1
    exclude_internal: true
`,
	}
	files := map[string][]byte{}
	for name, sec := range sections {
		files[name+".yaml"] = []byte("name: " + strings.ReplaceAll(name, "_", "-") + "\nmatch: {model: " + name + "}\ncontext:\n" + sec +
			"meta_prompt:\n  template: \"{{.Records}} {{.Articles}}\"\n")
	}
	set, err := policies.Parse(files)
	if err != nil {
		t.Fatal(err)
	}
	for name := range sections {
		p := set.Policy(strings.ReplaceAll(name, "_", "-"))
		var spec grounding.ContextSpec
		if err := p.Context.Decode(&spec); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		plan, err := grounding.Compile(spec)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		switch name {
		case "summarize_case":
			if !plan.Spec.Records.IncludeNotes || plan.Spec.Articles != nil || len(plan.Spec.Records.Keys) != 3 {
				t.Fatalf("%s: %+v", name, plan.Spec.Records)
			}
		case "full":
			r, a := plan.Spec.Records, plan.Spec.Articles
			if plan.Spec.MaxTokens != 1500 || r.Source != "crm" || r.Max != 4 || len(r.Keys) != 5 || !r.Keys[2].User || a.Top != 4 || a.PerArticle != 1 || !a.ExcludeInternal {
				t.Fatalf("full: %+v %+v %+v", plan.Spec, r, a)
			}
			keys := plan.Keys(http.Header{"X-Groundgate-Case": {"CAS-01234-X1Y2Z3"}}, []byte(`{"messages":[{"role":"user","content":"see case #55555"}]}`))
			if len(keys) != 2 || keys[1].Value != "55555" {
				t.Fatalf("keys %v", keys)
			}
		}
	}
}

func TestContextSectionStrictErrors(t *testing.T) {
	policy := `name: p
default: true
context:
  max_tokens: 1000
  records:
    entities: [incident]
    keys:
      - header: x-case
        kind: case
        patern: x
  artciles:
    top: 3
meta_prompt:
  template: "{{.Records}}"
`
	set, err := policies.Parse(map[string][]byte{"p.yaml": []byte(policy)})
	if err != nil {
		t.Fatal(err)
	}
	var spec grounding.ContextSpec
	err = set.Policy("p").Context.Decode(&spec)
	if err == nil {
		t.Fatal("unknown fields accepted")
	}
	for _, want := range []string{`p.yaml:10`, `"patern"`, `p.yaml:11`, `"artciles"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestCompile(t *testing.T) {
	plan, err := grounding.Compile(grounding.ContextSpec{Records: &grounding.RecordsSpec{}, Articles: &grounding.ArticlesSpec{}})
	if err != nil {
		t.Fatal(err)
	}
	s := plan.Spec
	if s.MaxTokens != 2000 || s.Records.Max != 5 || !slices.Equal(s.Records.Entities, []string{"incident", "contact", "account"}) ||
		len(s.Records.Keys) != 3 || s.Articles.Top != 3 || s.Articles.PerArticle != 2 {
		t.Fatalf("defaults: %+v %+v %+v", s, *s.Records, *s.Articles)
	}
	_, err = grounding.Compile(grounding.ContextSpec{MaxTokens: -1,
		Records:  &grounding.RecordsSpec{Entities: []string{"incidnet"}, Keys: []grounding.KeySpec{{Kind: "case"}}, Max: -2},
		Articles: &grounding.ArticlesSpec{Top: -1}})
	for _, want := range []string{"max_tokens", `unknown entity "incidnet"`, "records.keys[0]", "records.max", "articles.top"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err %v does not mention %s", err, want)
		}
	}
}

// fakeIndex returns fixed hits, or an error.
type fakeIndex struct {
	hits  []grounding.Hit
	err   error
	query string
	k     int
	f     grounding.Filter
}

func (f *fakeIndex) Search(_ context.Context, q string, k int, filter grounding.Filter) ([]grounding.Hit, error) {
	f.query, f.k, f.f = q, k, filter
	return f.hits, f.err
}

func TestGround(t *testing.T) {
	crm, err := records.Load("", nil, nil) // embedded sample data
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := tokens.ForModel("gpt-4o")
	idx := &fakeIndex{hits: []grounding.Hit{
		{Chunk: grounding.Chunk{ArticleID: "ka4", Number: "KA-01004", Title: "Update", ChunkID: "0", Text: "Use a FAT32 USB stick."}, Score: 2},
		{Chunk: grounding.Chunk{ArticleID: "ka41", Number: "KA-01041", Title: "Recover", ChunkID: "0", Text: "Repeat the USB update."}, Score: 1},
	}}
	plan, err := grounding.Compile(grounding.ContextSpec{
		MaxTokens: 3000,
		Records:   &grounding.RecordsSpec{Entities: []string{"incident", "contact"}, IncludeNotes: true},
		Articles:  &grounding.ArticlesSpec{Top: 2, ExcludeInternal: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"Hotel TVs stuck after update, see CAS-01001-K7M2Q9 and also CAS-01009-T1N9W3"}]}`)
	h := http.Header{}
	// Scope: the Fabrikam account only. CAS-01009 belongs to the Rivera
	// household: denied, never packed.
	scope := &grounding.Scope{Accounts: []string{"ACC-100231"}}
	res, err := plan.Ground(context.Background(), grounding.Sources{Records: crm, Index: idx}, grounding.Request{Header: h, Body: body}, scope, enc)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Keys) != 2 || len(res.Denied) != 1 || res.Denied[0].Key.Value != "CAS-01009-T1N9W3" || res.Denied[0].Entity != "incident" {
		t.Fatalf("keys %v denied %v", res.Keys, res.Denied)
	}
	var got []string
	for _, r := range res.Packed.Records {
		got = append(got, r.Entity+":"+r.Title)
	}
	want := []string{"incident:Hotel room TVs stuck on logo after overnight update", "contact:Inês Carvalho", "annotation:Phone call with Inês", "annotation:USB recovery result"}
	if !slices.Equal(got, want) {
		t.Fatalf("records %q", got)
	}
	for _, r := range res.Packed.Records {
		if strings.Contains(r.Fields["description"], "Vista QX55 in the living room") {
			t.Fatal("the denied case reached the context")
		}
	}
	if idx.query != "Hotel TVs stuck after update, see CAS-01001-K7M2Q9 and also CAS-01009-T1N9W3" || idx.k != 6 || !idx.f.ExcludeInternal || idx.f.PerArticle != 2 {
		t.Fatalf("search called with %q k=%d %+v", idx.query, idx.k, idx.f)
	}
	if len(res.Packed.Articles) != 2 || res.Packed.Articles[1].Ref != "doc2" || res.Packed.Tokens > 3000 || res.Hits != 2 {
		t.Fatalf("packed %+v", res.Packed)
	}

	// The index fails: records still come back, with the error.
	idx.err = errors.New("index down")
	res, err = plan.Ground(context.Background(), grounding.Sources{Records: crm, Index: idx}, grounding.Request{Header: h, Body: body}, scope, enc)
	if err == nil || !strings.Contains(err.Error(), "articles: index down") || len(res.Packed.Records) != 4 || len(res.Packed.Articles) != 0 {
		t.Fatalf("err %v, %d records", err, len(res.Packed.Records))
	}

	// No records section, no keys: only articles; the header key source.
	idx.err = nil
	plan2, _ := grounding.Compile(grounding.ContextSpec{Articles: &grounding.ArticlesSpec{}})
	res, err = plan2.Ground(context.Background(), grounding.Sources{Records: crm, Index: idx}, grounding.Request{Header: h, Body: body}, nil, enc)
	if err != nil || len(res.Packed.Records) != 0 || len(res.Packed.Articles) != 2 || res.Keys != nil {
		t.Fatalf("%+v %v", res, err)
	}
	h.Set("x-groundgate-case", "CAS-01014-N8B2H4")
	plan3, _ := grounding.Compile(grounding.ContextSpec{Records: &grounding.RecordsSpec{Entities: []string{"incident"}}})
	res, err = plan3.Ground(context.Background(), grounding.Sources{Records: crm}, grounding.Request{Header: h, Body: []byte(`{"messages":[]}`)}, nil, enc)
	if err != nil || len(res.Packed.Records) != 1 || res.Packed.Records[0].Number != "CAS-01014-N8B2H4" {
		t.Fatalf("%+v %v", res.Packed.Records, err)
	}
}
