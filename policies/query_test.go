package policies

import (
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
)

// contextWithQuery is the part of a context section that holds a query.
type contextWithQuery struct {
	Articles struct {
		Top   int           `yaml:"top"`
		Query *ArticleQuery `yaml:"query"`
	} `yaml:"articles"`
}

func decodeQuery(t *testing.T, src string) (*ArticleQuery, error) {
	t.Helper()
	s, err := parseOne("p/q.yaml", src)
	if err != nil {
		t.Fatal(err)
	}
	var c contextWithQuery
	err = s.Policy("q").Context.Decode(&c)
	return c.Articles.Query, err
}

func TestArticleQueryDecode(t *testing.T) {
	q, err := decodeQuery(t, `name: q
context:
  articles:
    top: 3
    query:
      turns: 2
      decay: 0.25
      assistant: 0
      lookback: 20
      entities: filter
      match:
        - {field: product, metadata: product, mode: filter}
        - {field: entity, record: account.name}
      rewrite:
        source: mini
        max_tokens: 32
        keep: false
`)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Validate(); err != nil {
		t.Fatal(err)
	}
	d := q.WithDefaults()
	if d.Turns != 2 || d.Decay != 0.25 || *d.Assistant != 0 || d.Lookback != 20 || d.Entities != ModeFilter ||
		len(d.Match) != 2 || d.Match[0].Mode != ModeFilter || d.Match[1].Mode != ModeBoost || d.Match[1].Record != "account.name" ||
		d.Rewrite.Source != "mini" || d.Rewrite.MaxTokens != 32 || d.Rewrite.InputTokens != DefaultRewriteInput || *d.Rewrite.Keep {
		t.Fatalf("%+v %+v", d, d.Rewrite)
	}
	// WithDefaults copies: the policy's own section is left alone.
	if q.Match[1].Mode != "" {
		t.Fatal("WithDefaults modified its receiver")
	}
	// An absent section has every default.
	z := (*ArticleQuery)(nil).WithDefaults()
	if z.Turns != DefaultQueryTurns || z.Decay != DefaultQueryDecay || *z.Assistant != DefaultQueryAssistant || z.Entities != ModeBoost || z.Rewrite != nil {
		t.Fatalf("%+v", z)
	}
}

// Unknown fields and bad values are reported at their own line.
func TestArticleQueryDecodeErrors(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"name: q\ncontext:\n  articles:\n    query:\n      turn: 2\n", `p/q.yaml:5: field "turn" not found in policy.context.articles.query (did you mean "turns"?)`},
		{"name: q\ncontext:\n  articles:\n    query:\n      entities: maybe\n", `p/q.yaml:5: policy.context.articles.query.entities: expected boost, filter or off, got "maybe"`},
		{"name: q\ncontext:\n  articles:\n    query:\n      match:\n        - {field: product, metdata: x}\n", `p/q.yaml:6: field "metdata" not found in policy.context.articles.query.match[0] (did you mean "metadata"?)`},
		{"name: q\ncontext:\n  articles:\n    query:\n      decay: high\n", `p/q.yaml:5: policy.context.articles.query.decay: expected a number, got the string "high"`},
		{"name: q\ncontext:\n  articles:\n    query:\n      match:\n        - {field: product, header: x-p, mode: off}\n", ``},
	} {
		q, err := decodeQuery(t, c.src)
		if c.want == "" {
			if err != nil {
				t.Fatal(err)
			}
			// mode: off decodes, and Validate refuses it.
			if err := q.Validate(); err == nil || !strings.Contains(err.Error(), "query.match[0]: mode must be boost or filter") {
				t.Errorf("validate: %v", err)
			}
			continue
		}
		if err == nil || err.Error() != c.want {
			t.Errorf("got  %v\nwant %s", err, c.want)
		}
	}
}

func TestArticleQueryValidate(t *testing.T) {
	two := 2.0
	q := &ArticleQuery{Turns: 51, Decay: -1, Assistant: &two, Lookback: -1,
		Match:   []FieldMatch{{Field: "", Metadata: "x"}, {Field: "p", Record: "incident"}, {Field: "p", Header: "h", Metadata: "m"}},
		Rewrite: &QueryRewrite{MaxTokens: 5000, InputTokens: -2}}
	err := q.Validate()
	for _, want := range []string{"query.turns must be between 1 and 50, got 51", "query.decay", "query.assistant", "query.lookback",
		"query.match[0]: field must be", "query.match[1]: record must be <entity>.<column>", "query.match[2]: give exactly one of metadata, header or record (got 2)",
		"query.rewrite.max_tokens", "query.rewrite.input_tokens"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v does not say %q", err, want)
		}
	}
	if (*ArticleQuery)(nil).Validate() != nil {
		t.Error("an absent section is valid")
	}
}

// The schema's definition of the query matches the Go struct.
func TestArticleQuerySchema(t *testing.T) {
	root := loadSchema(t)
	defs := root["$defs"].(map[string]any)
	for name, typ := range map[string]reflect.Type{
		"articleQuery": reflect.TypeFor[ArticleQuery](),
		"fieldMatch":   reflect.TypeFor[FieldMatch](),
		"queryRewrite": reflect.TypeFor[QueryRewrite](),
	} {
		props := defs[name].(map[string]any)["properties"].(map[string]any)
		var schemaKeys []string
		for k := range props {
			schemaKeys = append(schemaKeys, k)
		}
		sort.Strings(schemaKeys)
		var goKeys []string
		for i := 0; i < typ.NumField(); i++ {
			goKeys = append(goKeys, strings.Split(typ.Field(i).Tag.Get("yaml"), ",")[0])
		}
		sort.Strings(goKeys)
		if !slices.Equal(goKeys, schemaKeys) {
			t.Errorf("%s: Go %v, schema %v", name, goKeys, schemaKeys)
		}
	}
	ok := map[string]any{"context": map[string]any{"articles": map[string]any{"query": map[string]any{
		"turns": 2.0, "entities": "filter", "match": []any{map[string]any{"field": "product", "record": "incident.productid"}}}}}, "name": "x"}
	if errs := schemaValidate(root, root, ok, "policy"); len(errs) > 0 {
		t.Errorf("valid query refused: %v", errs)
	}
	bad := map[string]any{"context": map[string]any{"articles": map[string]any{"query": map[string]any{"entities": "maybe", "turn": 2}}}, "name": "x"}
	if errs := schemaValidate(root, root, bad, "policy"); len(errs) < 2 {
		t.Errorf("invalid query accepted: %v", errs)
	}
}
