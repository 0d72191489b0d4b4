package policies

import (
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"sync"
	"testing"
)

// precedenceFiles exercises every precedence rule. File names are chosen
// so that file order differs from precedence order.
var precedenceFiles = map[string]string{
	"p/00-general.yaml":   "name: general\ndefault: true\n",
	"p/01-embed-def.yaml": "name: embed-default\ndefault: true\npriority: 1\nmatch:\n  route: embeddings\n",
	"p/02-by-model.yaml":  "name: by-model\nmatch:\n  model: [gpt-4o, gpt-4o-*]\n",
	"p/03-by-team.yaml":   "name: by-team\nmatch:\n  team: support\n",
	"p/04-by-key.yaml":    "name: by-key\nmatch:\n  key: svc-*\n",
	"p/05-route.yaml":     "name: route-embed\nmatch:\n  route: embeddings\n  api: [openai, azure]\n",
	"p/06-pinned.yaml":    "name: pinned\npriority: 10\nmatch:\n  model: legacy-*\n",
	"p/07-ask.yaml":       "name: ask\nfeature: ask_question\nmatch:\n  route: chat.completions\n  aliases: [copilot-ask]\nteams:\n  enabled: [support, escalations]\n",
	"p/08-draft.yaml":     "name: draft-email\nfeature: draft_email\nmatch:\n  aliases: copilot-draft\nteams:\n  enabled: [support]\n  disabled: [billing]\n",
	"p/09-draft-esc.yaml": "name: draft-email-escalations\nfeature: draft_email\nmatch:\n  team: escalations\nupstream:\n  pool: premium\n",
	"p/10-bbb.yaml":       "name: bbb-ops\nmatch:\n  team: ops\n",
	"p/11-aaa.yaml":       "name: aaa-ops\nmatch:\n  team: ops\n",
	"p/12-star.yaml":      "name: star-key\nmatch:\n  key: \"*\"\n  route: embeddings\n",
	"p/13-off.yaml":       "name: off\nfeature: retired\nteams:\n  enabled: []\n",
}

func mustParse(t testing.TB, files map[string]string) *Set {
	t.Helper()
	m := make(map[string][]byte, len(files))
	for k, v := range files {
		m[k] = []byte(v)
	}
	s, err := Parse(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func names(ps []*Policy) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name
	}
	return out
}

func TestPrecedenceOrder(t *testing.T) {
	s := mustParse(t, precedenceFiles)
	want := []string{
		"pinned",                  // priority 10
		"draft-email-escalations", // feature+team
		"ask",                     // feature+route
		"draft-email",             // feature
		"off",                     // feature (name after draft-email)
		"by-key",                  // key
		"aaa-ops",                 // team, name tiebreak
		"bbb-ops",                 // team
		"by-team",                 // team
		"by-model",                // model
		"route-embed",             // route+api
		"star-key",                // route ("*" constrains nothing)
		"embed-default",           // default, priority 1
		"general",                 // default
	}
	if got := names(s.Policies()); !slices.Equal(got, want) {
		t.Errorf("order\n got %v\nwant %v", got, want)
	}
	if sp := s.Policy("star-key").Specificity(); sp != "route" {
		t.Errorf("star-key specificity = %q", sp)
	}
}

func TestMatch(t *testing.T) {
	s := mustParse(t, precedenceFiles)
	chat := func(model, key, team, feature string) Input {
		return Input{API: "openai", Route: "chat.completions", Model: model, Key: key, Team: team, Feature: feature}
	}
	tests := []struct {
		name    string
		in      Input
		want    string // policy name; "" when denied
		feature string
		alias   bool
		reason  string
	}{
		{name: "model", in: chat("gpt-4o", "u", "t", ""), want: "by-model"},
		{name: "model glob", in: chat("gpt-4o-mini", "u", "t", ""), want: "by-model"},
		{name: "team beats model", in: chat("gpt-4o", "u", "support", ""), want: "by-team"},
		{name: "key beats team", in: chat("gpt-4o", "svc-a", "support", ""), want: "by-key"},
		{name: "route", in: Input{API: "azure", Route: "embeddings", Model: "ada"}, want: "route-embed"},
		{name: "route needs api", in: Input{API: "azure_v1", Route: "embeddings", Model: "ada"}, want: "star-key"},
		{name: "model beats route", in: Input{API: "openai", Route: "embeddings", Model: "gpt-4o"}, want: "by-model"},
		{name: "priority beats specificity", in: chat("legacy-1", "svc-a", "support", ""), want: "pinned"},
		{name: "name tiebreak", in: chat("x", "u", "ops", ""), want: "aaa-ops"},
		{name: "default", in: chat("x", "u", "t", ""), want: "general"},
		{name: "defaults in precedence", in: Input{API: "azure_v1", Route: "chat.completions", Model: "x"}, want: "general"},
		{name: "feature by header", in: chat("gpt-4o", "u", "support", "ask_question"), want: "ask", feature: "ask_question"},
		{name: "feature header any case and spaces", in: chat("gpt-4o", "u", "support", " Ask_Question "), want: "ask", feature: "ask_question"},
		{name: "feature by alias", in: chat("copilot-ask", "u", "escalations", ""), want: "ask", feature: "ask_question", alias: true},
		{name: "header wins over alias", in: chat("copilot-ask", "u", "support", "draft_email"), want: "draft-email", feature: "draft_email"},
		{name: "more specific feature policy", in: chat("gpt-4o", "u", "escalations", "draft_email"), want: "draft-email-escalations", feature: "draft_email"},
		{name: "alias beats key", in: chat("copilot-draft", "svc-a", "support", ""), want: "draft-email", feature: "draft_email", alias: true},
		{
			name:   "disabled for team",
			in:     chat("gpt-4o", "u", "billing", "draft_email"),
			reason: `feature "draft_email" is disabled for team "billing" by policy "draft-email" (p/08-draft.yaml)`,
		},
		{
			name:   "disabled for team via alias",
			in:     chat("copilot-draft", "u", "billing", ""),
			reason: `feature "draft_email" is disabled for team "billing" by policy "draft-email" (p/08-draft.yaml)`,
		},
		{
			name:   "not enabled for team",
			in:     chat("gpt-4o", "u", "sales", "ask_question"),
			reason: `feature "ask_question" is not enabled for team "sales" by policy "ask" (p/07-ask.yaml); it is enabled for: support, escalations`,
		},
		{
			name:   "principal without team",
			in:     chat("gpt-4o", "k1", "", "ask_question"),
			reason: `feature "ask_question" is not enabled for key "k1", which has no team, by policy "ask" (p/07-ask.yaml); it is enabled for: support, escalations`,
		},
		{
			name:   "feature switched off for everyone",
			in:     chat("gpt-4o", "u", "support", "retired"),
			reason: `feature "retired" is disabled for every team by policy "off" (p/13-off.yaml)`,
		},
		{
			name:   "unknown feature is refused, not the default",
			in:     chat("gpt-4o", "u", "support", "write_poem"),
			reason: `unknown feature "write_poem": no policy defines it (x-groundgate-feature names one of: ask_question, draft_email, retired)`,
		},
		{
			name:   "feature whose policies do not match",
			in:     Input{API: "openai", Route: "embeddings", Model: "ada", Team: "support", Feature: "ask_question"},
			reason: `feature "ask_question" is not available for this request: none of its policies matches (api "openai", route "embeddings", model "ada", team "support")`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := s.Match(tc.in)
			if tc.want == "" {
				if !d.Denied || d.Policy != nil || d.Reason != tc.reason {
					t.Errorf("got denied=%v policy=%v reason %q\nwant reason %q", d.Denied, d.Policy, d.Reason, tc.reason)
				}
			} else {
				if d.Denied || d.Policy == nil || d.Policy.Name != tc.want || d.Reason != "" {
					t.Fatalf("got denied=%v policy=%v reason %q, want %s", d.Denied, pname(d.Policy), d.Reason, tc.want)
				}
				if d.Feature != tc.feature || d.ByAlias != tc.alias {
					t.Errorf("feature=%q alias=%v, want %q %v", d.Feature, d.ByAlias, tc.feature, tc.alias)
				}
			}
			if len(d.Trace) != len(s.Policies()) {
				t.Fatalf("trace has %d lines for %d policies", len(d.Trace), len(s.Policies()))
			}
			selected := 0
			for i, line := range d.Trace {
				p := s.Policies()[i]
				if !strings.HasPrefix(line, fmt.Sprintf("#%d %s (", i+1, p.Name)) {
					t.Errorf("trace[%d] = %q is not about %s", i, line, p.Name)
				}
				if strings.HasSuffix(line, "matches; selected") {
					selected++
					if tc.want != "" && p.Name != tc.want || tc.want == "" && !strings.Contains(tc.reason, `policy "`+p.Name+`"`) {
						t.Errorf("trace selects %s", p.Name)
					}
				}
			}
			if selected > 1 || tc.want != "" && selected != 1 {
				t.Errorf("%d policies selected in trace:\n%s", selected, strings.Join(d.Trace, "\n"))
			}
		})
	}
}

func pname(p *Policy) string {
	if p == nil {
		return "<nil>"
	}
	return p.Name
}

func TestTrace(t *testing.T) {
	s := mustParse(t, precedenceFiles)
	d := s.Match(Input{API: "openai", Route: "chat.completions", Model: "gpt-4o", Key: "u", Team: "support"})
	want := []string{
		"#1 pinned (p/06-pinned.yaml, priority 10, specificity model): skipped: model does not match legacy-*",
		"#2 draft-email-escalations (p/09-draft-esc.yaml, priority 0, specificity feature+team): skipped: the request names no feature (this policy serves draft_email: send x-groundgate-feature: draft_email)",
		"#3 ask (p/07-ask.yaml, priority 0, specificity feature+route): skipped: the request names no feature (this policy serves ask_question: send x-groundgate-feature: ask_question, or model copilot-ask)",
		"#4 draft-email (p/08-draft.yaml, priority 0, specificity feature): skipped: the request names no feature (this policy serves draft_email: send x-groundgate-feature: draft_email, or model copilot-draft)",
		"#5 off (p/13-off.yaml, priority 0, specificity feature): skipped: the request names no feature (this policy serves retired: send x-groundgate-feature: retired)",
		"#6 by-key (p/04-by-key.yaml, priority 0, specificity key): skipped: key does not match svc-*",
		"#7 aaa-ops (p/11-aaa.yaml, priority 0, specificity team): skipped: team does not match ops",
		"#8 bbb-ops (p/10-bbb.yaml, priority 0, specificity team): skipped: team does not match ops",
		"#9 by-team (p/03-by-team.yaml, priority 0, specificity team): matches; selected",
		"#10 by-model (p/02-by-model.yaml, priority 0, specificity model): matches, but a policy above it was selected",
		"#11 route-embed (p/05-route.yaml, priority 0, specificity route+api): skipped: route is not embeddings",
		"#12 star-key (p/12-star.yaml, priority 0, specificity route): skipped: route is not embeddings",
		"#13 embed-default (p/01-embed-def.yaml, priority 1, specificity route, default): not needed: a policy above matched",
		"#14 general (p/00-general.yaml, priority 0, specificity none, default): not needed: a policy above matched",
	}
	if !slices.Equal(d.Trace, want) {
		t.Errorf("trace\n got:\n%s\nwant:\n%s", strings.Join(d.Trace, "\n"), strings.Join(want, "\n"))
	}
	d = s.Match(Input{API: "openai", Route: "chat.completions", Feature: "ask_question", Team: "support"})
	if got := d.Trace[5]; got != "#6 by-key (p/04-by-key.yaml, priority 0, specificity key): skipped: the request names a feature (x-groundgate-feature) and this policy serves none" {
		t.Errorf("header trace = %q", got)
	}
}

func TestNoDefault(t *testing.T) {
	s := mustParse(t, map[string]string{"a.yaml": "name: a\nmatch:\n  team: support\n"})
	d := s.Match(Input{API: "azure", Route: "chat.completions", Model: "gpt-4o", Key: "k", Team: "sales"})
	want := `no policy allows this request (api "azure", route "chat.completions", model "gpt-4o", key "k", team "sales") and no default policy applies`
	if !d.Denied || d.Reason != want {
		t.Errorf("got %+v, want reason %q", d, want)
	}
	d = s.Match(Input{Feature: "x"})
	if want := `unknown feature "x": no policy defines any feature`; d.Reason != want {
		t.Errorf("got %q, want %q", d.Reason, want)
	}
	// Client values in reasons are quoted and clipped.
	d = s.Match(Input{Team: "evil\"\n" + strings.Repeat("x", 100)})
	if strings.Contains(d.Reason, "\n") || len(d.Reason) > 250 {
		t.Errorf("unsafe reason %q", d.Reason)
	}
}

// TestPrecedenceIgnoresFileNames shuffles file names: precedence and
// decisions must not change (they depend on content only, like Hash).
func TestPrecedenceIgnoresFileNames(t *testing.T) {
	base := mustParse(t, precedenceFiles)
	contents := make([]string, 0, len(precedenceFiles))
	for _, c := range precedenceFiles {
		contents = append(contents, c)
	}
	rng := rand.New(rand.NewSource(1))
	for round := 0; round < 5; round++ {
		rng.Shuffle(len(contents), func(i, j int) { contents[i], contents[j] = contents[j], contents[i] })
		files := map[string]string{}
		for i, c := range contents {
			files[fmt.Sprintf("r%d/%02d.yaml", round, i)] = c
		}
		s := mustParse(t, files)
		if !slices.Equal(names(s.Policies()), names(base.Policies())) {
			t.Fatalf("round %d: order %v", round, names(s.Policies()))
		}
		if s.Hash() != base.Hash() {
			t.Fatalf("round %d: hash changed", round)
		}
	}
}

func TestGlob(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		want bool
	}{
		{"", "", true}, {"", "a", false}, {"*", "", true}, {"*", "anything", true},
		{"gpt-4o", "gpt-4o", true}, {"gpt-4o", "gpt-4o-mini", false},
		{"gpt-4o*", "gpt-4o-mini", true}, {"*-mini", "gpt-4o-mini", true}, {"*-mini", "gpt-4o", false},
		{"g*4*i", "gpt-4o-mini", true}, {"g*4*x", "gpt-4o-mini", false}, {"a*a*a", "aaa", true}, {"a*a*a", "aa", false},
		{"**", "x", true}, {"?", "?", true}, {"?", "x", false}, {"[a]", "a", false},
	} {
		if got := glob(tc.p, tc.s); got != tc.want {
			t.Errorf("glob(%q, %q) = %v, want %v", tc.p, tc.s, got, tc.want)
		}
	}
}

func TestExamplesMatch(t *testing.T) {
	s, err := Load("examples")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		in     Input
		want   string
		reason string
	}{
		{Input{API: "openai", Route: "chat.completions", Model: "gpt-4o", Team: "support"}, "general-chat", ""},
		{Input{API: "azure", Route: "chat.completions", Model: "gpt4o-prod", Team: "support", Feature: "draft_email"}, "draft-email", ""},
		{Input{API: "azure_v1", Route: "chat.completions", Model: "copilot-summarize-case", Team: "sales"}, "summarize-case", ""},
		{Input{API: "openai", Route: "chat.completions", Model: "gpt-4o", Team: "billing", Feature: "draft_email"}, "",
			`feature "draft_email" is disabled for team "billing" by policy "draft-email" (examples/draft_email.yaml)`},
		{Input{API: "openai", Route: "chat.completions", Model: "gpt-4o", Team: "sales", Feature: "draft_chat_reply"}, "",
			`feature "draft_chat_reply" is not enabled for team "sales" by policy "draft-chat-reply" (examples/draft_chat_reply.yaml); it is enabled for: support, escalations`},
	} {
		d := s.Match(tc.in)
		if pname(d.Policy) != pname(s.Policy(tc.want)) || d.Reason != tc.reason {
			t.Errorf("%+v: got %s %q, want %s %q", tc.in, pname(d.Policy), d.Reason, tc.want, tc.reason)
		}
	}
}

// TestConcurrentMatchRender runs Match, Render and Apply from many
// goroutines against one Set; with -race it proves the Set is safe to
// share, and every result must equal the sequential one.
func TestConcurrentMatchRender(t *testing.T) {
	s, err := Load("examples")
	if err != nil {
		t.Fatal(err)
	}
	inputs := []Input{
		{API: "openai", Route: "chat.completions", Model: "gpt-4o", Team: "support"},
		{API: "openai", Route: "chat.completions", Model: "copilot-draft-email", Team: "support"},
		{API: "azure", Route: "chat.completions", Model: "x", Team: "billing", Feature: "draft_email"},
		{API: "openai", Route: "chat.completions", Model: "x", Team: "escalations", Feature: "summarize_case"},
		{API: "openai", Route: "chat.completions", Model: "x", Team: "escalations", Feature: "nope"},
	}
	data := benchData()
	body := []byte(`{"model":"gpt-4o","messages":[{"role":"system","content":"app"},{"role":"user","content":"hi"}]}`)
	type result struct {
		policy, reason string
		out            string
	}
	run := func(in Input) result {
		d := s.Match(in)
		r := result{policy: pname(d.Policy), reason: d.Reason}
		if d.Policy != nil {
			b, err := d.Policy.Meta.Apply(body, data)
			if err != nil {
				t.Error(err)
			}
			r.out = string(b)
		}
		return r
	}
	want := make([]result, len(inputs))
	for i, in := range inputs {
		want[i] = run(in)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				k := (g + i) % len(inputs)
				if got := run(inputs[k]); got != want[k] {
					t.Errorf("goroutine %d: input %d gave a different result", g, k)
					return
				}
			}
		}(g)
	}
	wg.Wait()
}

func TestDefaults(t *testing.T) {
	s := mustParse(t, map[string]string{
		"a.yaml": "name: chat-default\ndefault: true\nmatch:\n  route: chat.completions\n",
		"b.yaml": "name: embed-default\ndefault: true\npriority: 1\nmatch:\n  route: embeddings\n",
		"c.yaml": "name: catch-all\ndefault: true\npriority: -1\n",
		"d.yaml": "name: support\nmatch:\n  team: support\n",
	})
	for _, tc := range []struct {
		in   Input
		want string
	}{
		{Input{Route: "chat.completions", Team: "x"}, "chat-default"},
		{Input{Route: "embeddings", Team: "x"}, "embed-default"},
		{Input{Route: "embeddings", Team: "support"}, "support"}, // non-default first, whatever the priority
		{Input{Route: "images", Team: "x"}, "catch-all"},
	} {
		if got := pname(s.Match(tc.in).Policy); got != tc.want {
			t.Errorf("%+v: got %s, want %s", tc.in, got, tc.want)
		}
	}
	// A feature header never falls back to a default.
	s = mustParse(t, map[string]string{
		"a.yaml": "name: def\ndefault: true\n",
		"b.yaml": "name: ask\nfeature: ask_question\nmatch:\n  api: azure\n",
	})
	if d := s.Match(Input{API: "openai", Feature: "ask_question"}); !d.Denied || !strings.HasPrefix(d.Reason, `feature "ask_question" is not available for this request`) {
		t.Errorf("got %+v", d)
	}
	if d := s.Match(Input{API: "openai", Feature: "ask"}); !d.Denied || !strings.HasPrefix(d.Reason, `unknown feature "ask"`) {
		t.Errorf("got %+v", d)
	}
}
