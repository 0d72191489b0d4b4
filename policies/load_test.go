package policies

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func parseOne(name, src string) (*Set, error) {
	return Parse(map[string][]byte{name: []byte(src)})
}

func TestExamplesLoad(t *testing.T) {
	for _, pattern := range []string{"examples", "examples/*.yaml", "./examples/"} {
		s, err := Load(pattern)
		if err != nil {
			t.Fatalf("Load(%q): %v", pattern, err)
		}
		if got := len(s.Policies()); got != 6 {
			t.Fatalf("Load(%q): %d policies, want 6", pattern, got)
		}
		want := []string{"ask_question", "draft_chat_reply", "draft_email", "summarize_case", "summarize_conversation"}
		if got := s.Features(); !slices.Equal(got, want) {
			t.Errorf("features = %v, want %v", got, want)
		}
		for _, p := range s.Policies() {
			if p.Meta == nil {
				t.Errorf("%s: no meta prompt", p.Name)
			}
			if p.Feature != "" && len(p.Match.Aliases) == 0 {
				t.Errorf("%s: feature without an alias", p.Name)
			}
		}
		def := s.Policy("general-chat")
		if def == nil || !def.Default || def.Source != filepath.Join("examples", "default.yaml") {
			t.Fatalf("general-chat = %+v", def)
		}
		// The shipped team enablement.
		de := s.Policy("draft-email")
		if de.Teams.Allows("billing") || !de.Teams.Allows("support") || !de.Teams.Allows("escalations") || de.Teams.Allows("sales") {
			t.Errorf("draft-email teams = %+v", de.Teams)
		}
		if sc := s.Policy("summarize-case"); !sc.Teams.Allows("sales") || sc.Teams.Allows("billing") {
			t.Errorf("summarize-case teams = %+v", sc.Teams)
		}
	}
}

func TestLoadPatterns(t *testing.T) {
	dir := t.TempDir()
	ask, err := os.ReadFile("examples/ask_question.yaml")
	if err != nil {
		t.Fatal(err)
	}
	def, _ := os.ReadFile("examples/default.yaml")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "a"), 0o755))
	must(os.MkdirAll(filepath.Join(dir, "empty"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "a", "ask.yml"), ask, 0o644))
	must(os.WriteFile(filepath.Join(dir, "a", "default.yaml"), def, 0o644))
	must(os.WriteFile(filepath.Join(dir, "a", "notes.txt"), []byte("not a policy"), 0o644))

	s, err := Load(filepath.Join(dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Policies()) != 2 {
		t.Fatalf("directory: %d policies, want 2 (*.yaml and *.yml, not *.txt)", len(s.Policies()))
	}
	// The same file through two patterns is read once.
	if _, err := Load(filepath.Join(dir, "a"), filepath.Join(dir, "a", "*.yml")); err != nil {
		t.Errorf("overlapping patterns: %v", err)
	}

	for _, tc := range []struct {
		pattern string
		want    string
	}{
		{filepath.Join(dir, "*.json"), `no policy files match "` + filepath.Join(dir, "*.json") + `"`},
		{filepath.Join(dir, "empty"), `no policy files (*.yaml, *.yml) in directory "` + filepath.Join(dir, "empty") + `"`},
		{filepath.Join(dir, "missing.yaml"), `no policy files match "` + filepath.Join(dir, "missing.yaml") + `": no such file or directory`},
	} {
		_, err := Load(filepath.Join(dir, "a"), tc.pattern)
		if err == nil || err.Error() != tc.want {
			t.Errorf("Load(.., %q) = %v, want %q", tc.pattern, err, tc.want)
		}
	}
	if _, err := Load(); err == nil {
		t.Error("Load() with no patterns succeeded")
	}
}

// TestErrors checks that every kind of mistake is reported with the exact
// file and line, and names the field.
func TestErrors(t *testing.T) {
	const file = "policies/ask.yaml"
	tests := []struct {
		name string
		src  string
		want []string // exact error lines
	}{
		{
			name: "unknown field in upstream (the issue's example)",
			src: `name: ask
feature: ask_question
upstream:
  pool: gpt-4o
  temprature: 0.2
`,
			want: []string{`policies/ask.yaml:5: field "temprature" not found in policy.upstream`},
		},
		{
			name: "unknown top-level field, with suggestion",
			src:  "name: ask\npriorty: 3\n",
			want: []string{`policies/ask.yaml:2: field "priorty" not found in policy (did you mean "priority"?)`},
		},
		{
			name: "wrong type: string for integer",
			src:  "name: ask\n\npriority: high\n",
			want: []string{`policies/ask.yaml:3: policy.priority: expected an integer, got the string "high"`},
		},
		{
			name: "wrong type: string for boolean",
			src:  "name: ask\ndefault: yes\n",
			want: []string{`policies/ask.yaml:2: policy.default: expected true or false, got the string "yes"`},
		},
		{
			name: "wrong type: number for string, with quoting hint",
			src:  "name: ask\nupstream:\n  pool: 123\n",
			want: []string{`policies/ask.yaml:3: policy.upstream.pool: expected a string, got the number 123 (put it in quotes: "123")`},
		},
		{
			name: "wrong type: mapping for list",
			src:  "name: ask\nmatch:\n  team:\n    support: true\n",
			want: []string{`policies/ask.yaml:4: policy.match.team: expected a list, got a mapping`},
		},
		{
			name: "wrong type inside a list",
			src:  "name: ask\nmatch:\n  key:\n    - svc-a\n    - [nested]\n",
			want: []string{`policies/ask.yaml:5: policy.match.key[1]: expected a string, got a list`},
		},
		{
			name: "null value",
			src:  "name: ask\nvars:\n",
			want: []string{`policies/ask.yaml:2: policy.vars: expected a mapping, got null`},
		},
		{
			name: "duplicate key",
			src:  "name: ask\npriority: 1\npriority: 2\n",
			want: []string{`policies/ask.yaml:3: field "priority" is given twice in policy (first on line 2)`},
		},
		{
			name: "missing name",
			src:  "# comment\npriority: 1\n",
			want: []string{`policies/ask.yaml:2: policy.name is required (a unique name such as "draft-email")`},
		},
		{
			name: "invalid name",
			src:  "name: Ask Question\n",
			want: []string{`policies/ask.yaml:1: policy.name: "Ask Question" is not a valid name: use lower-case letters, digits, '-', '_' and '.', at most 64`},
		},
		{
			name: "unknown api value, with suggestion",
			src:  "name: ask\nmatch:\n  api: [openai, azure_v2]\n",
			want: []string{`policies/ask.yaml:3: policy.match.api[1]: unknown value "azure_v2"; expected one of openai, azure, azure_v1 (did you mean "azure_v1"?)`},
		},
		{
			name: "unknown route",
			src:  "name: ask\nmatch:\n  route: chat\n",
			want: []string{`policies/ask.yaml:3: policy.match.route[0]: unknown value "chat"; expected one of chat.completions, embeddings, responses`},
		},
		{
			name: "unknown mode",
			src:  "name: ask\nmeta_prompt:\n  mode: prepnd\n  template: hi\n",
			want: []string{`policies/ask.yaml:3: policy.meta_prompt.mode: unknown mode "prepnd"; expected prepend, append or replace (did you mean "prepend"?)`},
		},
		{
			name: "missing template",
			src:  "name: ask\nmeta_prompt:\n  mode: append\n",
			want: []string{`policies/ask.yaml:2: policy.meta_prompt.template is required (the meta prompt text)`},
		},
		{
			name: "template syntax error: file line of the template line",
			src: `name: ask
vars:
  brand: Contoso
meta_prompt:
  template: |
    You help {{.Vars.brand}} agents.
    Line two.
    {{if .Articles}}
    {{.Articles}
`,
			want: []string{`policies/ask.yaml:9: policy.meta_prompt.template: bad character U+007D '}'`},
		},
		{
			name: "template: unknown function",
			src:  "name: ask\nmeta_prompt:\n  template: |\n    Hello\n    {{uppr .User}}\n",
			want: []string{`policies/ask.yaml:5: policy.meta_prompt.template: function "uppr" not defined`},
		},
		{
			name: "template: undeclared variable, with suggestion",
			src:  "name: ask\nvars:\n  brand: Contoso\nmeta_prompt:\n  template: |\n    You help {{.Vars.brand}}.\n\n    Visit {{$.Vars.brnd}}.\n",
			want: []string{`policies/ask.yaml:8: policy.meta_prompt.template: variable "brnd" is not declared in policy.vars (did you mean "brand"?)`},
		},
		{
			name: "template: misspelt field found by the dry run",
			src:  "name: ask\nmeta_prompt:\n  template: |\n    Records:\n    {{range .Records}}{{.Titel}}{{end}}\n",
			want: []string{`policies/ask.yaml:5: policy.meta_prompt.template: <.Titel>: can't evaluate field Titel in type policies.RecordView`},
		},
		{
			name: "template: unguarded index fails with nothing retrieved",
			src:  "name: ask\nmeta_prompt:\n  template: \"Top: {{(index .Articles 0).Title}}\"\n",
			want: []string{`policies/ask.yaml:3: policy.meta_prompt.template: <index .Articles 0>: error calling index: reflect: slice index out of range (when nothing is retrieved)`},
		},
		{
			name: "template: wrong argument type to a function",
			src:  "name: ask\nmeta_prompt:\n  template: |\n    {{upper .Now}}\n",
			want: []string{`policies/ask.yaml:4: policy.meta_prompt.template: <upper .Now>: error calling upper: upper: expected text, got time.Time`},
		},
		{
			name: "invalid YAML",
			src:  "name: ask\nmatch:\n  team: [support\n",
			want: []string{`policies/ask.yaml:3: invalid YAML: did not find expected ',' or ']'`},
		},
		{
			name: "two documents",
			src:  "name: ask\n---\nname: other\n",
			want: []string{`policies/ask.yaml:2: a policy file holds one policy, but a second YAML document starts here; put it in its own file`},
		},
		{
			name: "empty file",
			src:  "",
			want: []string{`policies/ask.yaml: file is empty; it should hold one policy`},
		},
		{
			name: "not a mapping",
			src:  "- name: ask\n",
			want: []string{`policies/ask.yaml:1: a policy file holds one policy, a mapping with name, match, meta_prompt…; got a list`},
		},
		{
			name: "default cannot be a feature",
			src:  "name: ask\nfeature: ask_question\ndefault: true\n",
			want: []string{`policies/ask.yaml:3: policy.default: a default policy cannot also be feature "ask_question"; a request naming a feature must match that feature's policy`},
		},
		{
			name: "teams and aliases need a feature",
			src:  "name: ask\nmatch:\n  aliases: [copilot]\nteams:\n  enabled: [support]\n",
			want: []string{
				`policies/ask.yaml:3: policy.match.aliases: aliases select a feature, but this policy has no feature`,
				`policies/ask.yaml:4: policy.teams: team enablement applies to features, but this policy has no feature (use match.team to restrict who it matches)`,
			},
		},
		{
			name: "team both enabled and disabled",
			src:  "name: ask\nfeature: ask_question\nteams:\n  enabled: [support, billing]\n  disabled:\n    - billing\n",
			want: []string{`policies/ask.yaml:6: policy.teams.disabled[0]: team "billing" is both enabled and disabled`},
		},
		{
			name: "opaque section must be a mapping or list",
			src:  "name: ask\nfilters: pii\n",
			want: []string{`policies/ask.yaml:2: policy.filters: expected a mapping or a list, got the string "pii"`},
		},
		{
			name: "several errors, in line order",
			src:  "name: ask\npriority: x\nmatch:\n  api: soap\nupstream:\n  poll: a\n",
			want: []string{
				`policies/ask.yaml:2: policy.priority: expected an integer, got the string "x"`,
				`policies/ask.yaml:4: policy.match.api[0]: unknown value "soap"; expected one of openai, azure, azure_v1`,
				`policies/ask.yaml:6: field "poll" not found in policy.upstream (did you mean "pool"?)`,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := parseOne(file, tc.src)
			if err == nil {
				t.Fatalf("no error; policies %v", s.Policies())
			}
			var el ErrorList
			if !errors.As(err, &el) {
				t.Fatalf("error %T %v is not an ErrorList", err, err)
			}
			got := strings.Split(err.Error(), "\n")
			if !slices.Equal(got, tc.want) {
				t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
			for _, e := range el {
				if e.File != file {
					t.Errorf("error %q has file %q", e, e.File)
				}
			}
		})
	}
}

func TestErrorField(t *testing.T) {
	_, err := parseOne("a.yaml", "name: a\nupstream:\n  temprature: 1\n")
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("errors.As(*Error) failed on %v", err)
	}
	if e.File != "a.yaml" || e.Line != 3 || e.Field != "policy.upstream.temprature" {
		t.Errorf("got %+v", e)
	}
}

func TestCrossFileErrors(t *testing.T) {
	_, err := Parse(map[string][]byte{
		"a.yaml": []byte("name: same\n"),
		"b.yaml": []byte("# b\nname: same\n"),
	})
	want := `b.yaml:2: policy.name: "same" is already the name of a policy in a.yaml:1; names must be unique`
	if err == nil || err.Error() != want {
		t.Errorf("duplicate names: got %v, want %q", err, want)
	}
	_, err = Parse(map[string][]byte{
		"a.yaml": []byte("name: a\nfeature: ask_question\nmatch:\n  aliases: [copilot]\n"),
		"b.yaml": []byte("name: b\nfeature: draft_email\nmatch:\n  aliases: [copilot]\n"),
	})
	want = `b.yaml:4: policy.match.aliases: alias "copilot" already selects feature "ask_question" (policy "a", a.yaml); an alias can name one feature only`
	if err == nil || err.Error() != want {
		t.Errorf("alias conflict: got %v, want %q", err, want)
	}
	// Errors in several files are all reported, sorted by file.
	_, err = Parse(map[string][]byte{
		"z.yaml": []byte("name: z\nx: 1\n"),
		"m.yaml": []byte("name: m\ny: 1\n"),
	})
	want = "m.yaml:2: field \"y\" not found in policy\nz.yaml:2: field \"x\" not found in policy"
	if err == nil || err.Error() != want {
		t.Errorf("two files: got %v, want %q", err, want)
	}
}

func TestHash(t *testing.T) {
	a := []byte("name: a\nmatch:\n  team: support\n")
	b := []byte("name: b\ndefault: true\n")
	s1, err := Parse(map[string][]byte{"policies/a.yaml": a, "policies/b.yaml": b})
	if err != nil {
		t.Fatal(err)
	}
	// Renamed and moved, and in the opposite name order.
	s2, err := Parse(map[string][]byte{"other/zz.yaml": a, "other/aa.yaml": b})
	if err != nil {
		t.Fatal(err)
	}
	if s1.Hash() != s2.Hash() {
		t.Errorf("hash changed on rename: %s vs %s", s1.Hash(), s2.Hash())
	}
	if len(s1.Hash()) != 64 {
		t.Errorf("hash %q is not 64 hex digits", s1.Hash())
	}
	sum := sha256.Sum256(a)
	if got := s1.Policy("a").Hash; got != hex.EncodeToString(sum[:]) {
		t.Errorf("policy hash = %s, want sha256 of the file", got)
	}
	if s1.Policy("a").Hash != s2.Policy("a").Hash {
		t.Error("policy hash changed on rename")
	}
	// Any content change, even a comment, changes the hash.
	s3, err := Parse(map[string][]byte{"policies/a.yaml": append([]byte("# v2\n"), a...), "policies/b.yaml": b})
	if err != nil {
		t.Fatal(err)
	}
	if s3.Hash() == s1.Hash() {
		t.Error("hash did not change with content")
	}
	// Dropping a file changes it too.
	s4, _ := Parse(map[string][]byte{"policies/a.yaml": a})
	if s4.Hash() == s1.Hash() {
		t.Error("hash did not change when a file was removed")
	}
}

func TestRawSectionDecode(t *testing.T) {
	src := `name: a
filters:
  - name: pii
    action: redact
  - name: blocklist
    actoin: block
budgets:
  prompt_tokens: 100
`
	s, err := parseOne("p/a.yaml", src)
	if err != nil {
		t.Fatal(err)
	}
	p := s.Policy("a")
	if p.Context.IsZero() == false || p.Filters.IsZero() {
		t.Fatalf("sections: context zero=%v filters zero=%v", p.Context.IsZero(), p.Filters.IsZero())
	}
	type filter struct {
		Name   string `yaml:"name"`
		Action string `yaml:"action"`
	}
	var fs []filter
	err = p.Filters.Decode(&fs)
	want := `p/a.yaml:6: field "actoin" not found in policy.filters[1] (did you mean "action"?)`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
	var b struct {
		PromptTokens int `yaml:"prompt_tokens"`
	}
	if err := p.Budgets.Decode(&b); err != nil || b.PromptTokens != 100 {
		t.Errorf("budgets: %v %+v", err, b)
	}
	var any1 any
	if err := p.Filters.Decode(&any1); err != nil || len(any1.([]any)) != 2 {
		t.Errorf("generic decode: %v %#v", err, any1)
	}
	// Absent sections decode to nothing.
	if err := p.Post.Decode(&b); err != nil {
		t.Error(err)
	}
	if err := p.Budgets.Decode(b); err == nil {
		t.Error("Decode into a non-pointer succeeded")
	}
}

func TestScalarAsList(t *testing.T) {
	s, err := parseOne("a.yaml", "name: a\nfeature: f\nmatch:\n  team: support\n  model: gpt-4o*\nteams:\n  enabled: support\n")
	if err != nil {
		t.Fatal(err)
	}
	p := s.Policy("a")
	if !slices.Equal(p.Match.Team, []string{"support"}) || !slices.Equal(p.Teams.Enabled, []string{"support"}) {
		t.Errorf("scalar lists: %+v %+v", p.Match, p.Teams)
	}
}
