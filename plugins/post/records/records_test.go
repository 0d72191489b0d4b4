package records

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/groundgate/groundgate/grounding"
	"github.com/groundgate/groundgate/post"
)

const (
	caseID   = "10464d82-3cda-5e14-a8eb-7ac0529cbde1" // CAS-01001-K7M2Q9 in the sample data
	incLink  = "[{number}](https://contoso.crm.dynamics.com/main.aspx?etn=incident&id={id})"
	caseLink = "[CAS-01001-K7M2Q9](https://contoso.crm.dynamics.com/main.aspx?etn=incident&id=" + caseID + ")"
)

// provision builds the module from JSON the way Caddy does, with the
// embedded records source by default.
func provision(t *testing.T, cfg string) *Records {
	t.Helper()
	r := new(Records)
	if err := json.Unmarshal([]byte(cfg), r); err != nil {
		t.Fatalf("config: %v", err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := r.Provision(ctx); err != nil {
		t.Fatalf("provision: %v", err)
	}
	if err := r.Validate(); err != nil {
		t.Fatalf("validate: %v", err)
	}
	return r
}

// rewrite is the non-streamed rewrite: one Delta and Finish.
func rewrite(p post.Processor, text string) (string, string) {
	w := p.NewRewriter(&post.Request{AllRecords: true}, new(post.Result))
	a, _ := w.Delta(text)
	b, ctx := w.Finish()
	return a + b, string(ctx)
}

func TestRewrite(t *testing.T) {
	r := provision(t, `{"formats": {
		"incident": "`+strings.ReplaceAll(incLink, `"`, `\"`)+`",
		"account": "<{entity} {number} {title}>",
		"knowledgearticle": "[{title}](kb/{number})"}}`)
	in := "Case cas-01001-k7m2q9 (see CAS-01001-K7M2Q9), account ACC-100231, article KA-01001. " +
		"Not: XCAS-01001-K7M2Q9, CAS-01001-K7M2Q9X, CAS-01001-K7M2Q9_, ACC-1002311, KA-010011, CAS-1001-K7M2Q9."
	got, ctx := rewrite(r, in)
	if ctx != "" {
		t.Errorf("context = %s, want none", ctx)
	}
	for _, want := range []string{
		"Case " + caseLink + " (see " + caseLink + ")",
		"account <account ACC-100231 ACC-100231>", // {title} of a customer record is its number
		"Not: XCAS-01001-K7M2Q9, CAS-01001-K7M2Q9X, CAS-01001-K7M2Q9_, ACC-1002311, KA-010011, CAS-1001-K7M2Q9.",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("rewrite lacks %q:\n%s", want, got)
		}
	}
	if !strings.Contains(got, "](kb/KA-01001).") || strings.Contains(got, "[KA-01001](kb") {
		t.Errorf("article not linked with its title: %s", got)
	}
}

func TestDefaults(t *testing.T) {
	r := provision(t, `{}`)
	if got := r.Entities(); len(got) != 1 || got[0] != grounding.EntityIncident {
		t.Fatalf("entities = %v, want [incident]", got)
	}
	if r.Unknown != UnknownText || time.Duration(r.Timeout) != DefaultTimeout {
		t.Fatalf("defaults: unknown %q timeout %v", r.Unknown, r.Timeout)
	}
	got, _ := rewrite(r, "cas-01001-k7m2q9 and ACC-100231")
	if got != "CAS-01001-K7M2Q9 and ACC-100231" {
		t.Fatalf("got %q", got)
	}
}

func TestUnknown(t *testing.T) {
	in := "Try CAS-99999-ZZZZZZ, then CAS-01001-K7M2Q9, cas-99999-zzzzzz and CAS-88888-YYYYYY."
	for _, tc := range []struct{ unknown, ctx string }{
		{"", ""},
		{"text", ""},
		{"flag", `{"unresolved_records":["CAS-99999-ZZZZZZ","CAS-88888-YYYYYY"]}`},
	} {
		r := provision(t, `{"unknown": "`+tc.unknown+`", "formats": {"incident": "`+strings.ReplaceAll(incLink, `"`, `\"`)+`"}}`)
		got, ctx := rewrite(r, in)
		want := "Try CAS-99999-ZZZZZZ, then " + caseLink + ", cas-99999-zzzzzz and CAS-88888-YYYYYY."
		if got != want || ctx != tc.ctx {
			t.Errorf("unknown %q:\n got %q %s\nwant %q %s", tc.unknown, got, ctx, want, tc.ctx)
		}
	}
}

// fakeSource resolves every number not ending in Z (id "id-<number>"),
// fails with err when set, and counts lookups.
type fakeSource struct {
	err   error
	block bool
	n     atomic.Int32
}

func (f *fakeSource) Lookup(ctx context.Context, keys []grounding.RecordKey, scope *grounding.Scope) ([]grounding.Record, []grounding.Denied, error) {
	f.n.Add(1)
	if scope != nil {
		return nil, nil, errors.New("want an unrestricted scope")
	}
	if f.block {
		<-ctx.Done()
		return nil, nil, ctx.Err()
	}
	if f.err != nil {
		return nil, nil, f.err
	}
	var out []grounding.Record
	for _, k := range keys {
		if strings.HasSuffix(k.Value, "Z") {
			continue
		}
		out = append(out, grounding.Record{Entity: k.Entity, ID: "id-" + strings.ToLower(k.Value), Number: k.Value,
			Title: "secret title", Fields: map[string]string{"description": "secret"}})
	}
	return out, nil, nil
}

func TestSourceError(t *testing.T) {
	in := "See CAS-01001-K7M2Q9 and ACC-100231 and CAS-01001-K7M2Q8."
	for name, src := range map[string]*fakeSource{
		"error":   {err: errors.New("unreachable")},
		"timeout": {block: true},
	} {
		r, err := New(Records{Unknown: UnknownFlag, Timeout: caddy.Duration(20 * time.Millisecond),
			Formats: map[string]string{"incident": "<{id}>", "account": "<{id}>"}}, src)
		if err != nil {
			t.Fatal(err)
		}
		got, ctx := rewrite(r, in)
		if got != in || ctx != "" {
			t.Errorf("%s: got %q %s, want the text unchanged and no context", name, got, ctx)
		}
		if n := src.n.Load(); n != 1 {
			t.Errorf("%s: %d lookups, want 1 (no more after a failure)", name, n)
		}
	}
}

func TestNoRecordContent(t *testing.T) {
	r, err := New(Records{Formats: map[string]string{"incident": "{title}|{number}|{id}|{entity}"}}, new(fakeSource))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := rewrite(r, "CAS-01001-K7M2Q9")
	if want := "CAS-01001-K7M2Q9|CAS-01001-K7M2Q9|id-cas-01001-k7m2q9|incident"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// stream feeds parts as Deltas and Finish, checking the hold-back bound.
func stream(t *testing.T, r *Records, parts ...string) (string, string) {
	t.Helper()
	w := r.NewRewriter(&post.Request{Stream: true, AllRecords: true}, new(post.Result)).(*rewriter)
	var b strings.Builder
	var ctx string
	for _, p := range parts {
		e, c := w.Delta(p)
		b.WriteString(e)
		ctx += string(c)
		if len(w.pend) > r.hold {
			t.Fatalf("held %d bytes, more than %d", len(w.pend), r.hold)
		}
	}
	e, c := w.Finish()
	b.WriteString(e)
	return b.String(), ctx + string(c)
}

func TestStreamEverySplit(t *testing.T) {
	src := new(fakeSource)
	r, err := New(Records{Unknown: UnknownFlag, Formats: map[string]string{
		"incident": "[{number}](x?id={id})", "account": "<{number}>", "knowledgearticle": "{{{number}}}"}}, src)
	if err != nil {
		t.Fatal(err)
	}
	in := "CAS-01001-K7M2Q9, ACC-100231 and ka-01001; bad CAS-01001-K7M2QZ CAS-01001-K7M2Q9X xKA-01001 " +
		"KA-0100 CAS-01001-K7M2Q9é ACC-100231_ end KA-01002"
	want, wantCtx := rewrite(r, in)
	if want == in || wantCtx != `{"unresolved_records":["CAS-01001-K7M2QZ"]}` {
		t.Fatalf("reference rewrite: %q %s", want, wantCtx)
	}
	for i := 0; i <= len(in); i++ {
		if got, ctx := stream(t, r, in[:i], in[i:]); got != want || ctx != wantCtx {
			t.Fatalf("split at %d:\n got %q %s\nwant %q %s", i, got, ctx, want, wantCtx)
		}
		for j := i; j <= len(in); j += 7 {
			if got, ctx := stream(t, r, in[:i], in[i:j], in[j:]); got != want || ctx != wantCtx {
				t.Fatalf("split at %d, %d:\n got %q\nwant %q", i, j, got, want)
			}
		}
	}
	bytes := make([]string, len(in))
	for i := 0; i < len(in); i++ {
		bytes[i] = in[i : i+1]
	}
	src.n.Store(0)
	if got, ctx := stream(t, r, bytes...); got != want || ctx != wantCtx {
		t.Fatalf("byte by byte:\n got %q\nwant %q", got, want)
	}
	if n := src.n.Load(); n != 5 { // distinct numbers: cached per rewriter
		t.Errorf("%d lookups, want 5", n)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Records{
		{Formats: map[string]string{"contact": "x"}},
		{Formats: map[string]string{"incident": "{bogus}"}},
		{Formats: map[string]string{"incident": "{number"}},
		{Patterns: map[string]string{"account": "ACC-######"}}, // no format for account
		{Formats: map[string]string{"account": "x"}, Patterns: map[string]string{"account": "ACC-[0-9]+"}},
		{Formats: map[string]string{"account": "x"}, Patterns: map[string]string{"account": "-ACC"}},
		{Formats: map[string]string{"account": "x"}, Patterns: map[string]string{"account": strings.Repeat("#", MaxPattern+1)}},
		{Unknown: "drop"},
		{Timeout: -1},
	} {
		if _, err := New(cfg, new(fakeSource)); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
	r, err := New(Records{Formats: map[string]string{"account": "<{number}>"}, Patterns: map[string]string{"account": "acct-####"}}, new(fakeSource))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := rewrite(r, "Acct-1234 ACC-100231"); got != "<ACCT-1234> ACC-100231" {
		t.Fatalf("custom pattern: %q", got)
	}
}

func TestCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`records {
		source records
		format incident "` + incLink + `"
		format account "<{number}>"
		pattern account ACC-######
		unknown flag
		timeout 2s
	}`)
	r := new(Records)
	if err := r.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	if string(r.SourceRaw) != `{"source":"records"}` || r.Formats["incident"] != incLink || r.Formats["account"] != "<{number}>" ||
		r.Patterns["account"] != "ACC-######" || r.Unknown != UnknownFlag || time.Duration(r.Timeout) != 2*time.Second {
		t.Fatalf("parsed %+v (source %s)", r, r.SourceRaw)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	p := provision(t, string(b))
	got, ctx := rewrite(p, "CAS-01001-K7M2Q9 ACC-999999")
	if got != caseLink+" ACC-999999" || ctx != `{"unresolved_records":["ACC-999999"]}` {
		t.Fatalf("got %q %s", got, ctx)
	}

	for in, want := range map[string]string{
		"records {\n bogus 1\n}":                               `"bogus"`,
		"records extra":                                        `wrong argument count`,
		"records {\n unknown drop\n}":                          `want text or flag`,
		"records {\n format contact x\n}":                      `"contact" cannot be linked`,
		"records {\n format incident\n}":                       `expected <entity> <value>`,
		"records {\n format incident a b\n}":                   `expected <entity> <value>`,
		"records {\n timeout soon\n}":                          `want a duration`,
		"records {\n timeout 0s\n}":                            `want a duration > 0`,
		"records {\n source nosuch\n}":                         `unknown module "nosuch"`,
		"records {\n source records {\n bad 1\n }\n}":          `unrecognized records subdirective "bad"`,
		"records {\n source records\n source records\n}":       `source given twice`,
		"records {\n format incident a\n format incident b\n}": `given twice`,
	} {
		err := new(Records).UnmarshalCaddyfile(caddyfile.NewTestDispenser(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one containing %s", in, err, want)
		}
	}
}

// An answer may name a record the principal may not see: it is left as
// text exactly like a number that does not exist (no id, no sign that it
// exists), while a principal whose scope covers it gets the link.
func TestScopedLookups(t *testing.T) {
	r := provision(t, `{"unknown": "flag", "formats": {"incident": "<{number}|{id}>"}}`)
	run := func(req *post.Request, text string) (string, string) {
		w := r.NewRewriter(req, new(post.Result))
		a, _ := w.Delta(text)
		b, ctx := w.Finish()
		return a + b, string(ctx)
	}
	other := &post.Request{Scope: &grounding.Scope{Accounts: []string{"ACC-100232"}}}
	got, ctx := run(other, "See CAS-01001-K7M2Q9.")
	if got != "See CAS-01001-K7M2Q9." || ctx != `{"unresolved_records":["CAS-01001-K7M2Q9"]}` {
		t.Fatalf("out of scope: got %q %s", got, ctx)
	}
	// Indistinguishable from a number that exists nowhere.
	got2, ctx2 := run(other, "See CAS-09999-ZZZZZZ.")
	if strings.ReplaceAll(got2, "CAS-09999-ZZZZZZ", "CAS-01001-K7M2Q9") != got ||
		strings.ReplaceAll(ctx2, "CAS-09999-ZZZZZZ", "CAS-01001-K7M2Q9") != ctx {
		t.Fatalf("an out-of-scope record is told apart from a missing one: %q %s vs %q %s", got, ctx, got2, ctx2)
	}
	// No scope at all (and not AllRecords): public records only.
	if got, _ := run(&post.Request{}, "See CAS-01001-K7M2Q9."); got != "See CAS-01001-K7M2Q9." {
		t.Fatalf("no scope: got %q", got)
	}
	own := &post.Request{Scope: &grounding.Scope{Accounts: []string{"ACC-100231"}}}
	if got, _ := run(own, "See CAS-01001-K7M2Q9."); got != "See <CAS-01001-K7M2Q9|10464d82-3cda-5e14-a8eb-7ac0529cbde1>." {
		t.Fatalf("in scope: got %q", got)
	}
}

// A source that ignores the scope (a buggy third-party one) still leaks
// nothing through links.
func TestLeakySourceChecked(t *testing.T) {
	r, err := New(Records{Formats: map[string]string{"incident": "<{id}>"}}, leakySource{})
	if err != nil {
		t.Fatal(err)
	}
	w := r.NewRewriter(&post.Request{Scope: &grounding.Scope{Accounts: []string{"ACC-1"}}}, new(post.Result))
	a, _ := w.Delta("CAS-01001-K7M2Q9")
	b, _ := w.Finish()
	if a+b != "CAS-01001-K7M2Q9" {
		t.Fatalf("leaky source linked: %q", a+b)
	}
}

type leakySource struct{}

func (leakySource) Lookup(_ context.Context, keys []grounding.RecordKey, _ *grounding.Scope) ([]grounding.Record, []grounding.Denied, error) {
	var out []grounding.Record
	for _, k := range keys {
		out = append(out, grounding.Record{Entity: k.Entity, ID: "secret-id", Number: k.Value, Owner: grounding.Owner{AccountNumber: "ACC-2"}})
	}
	return out, nil, nil
}
