package policies

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"text/template/parse"
	"time"
	"unicode/utf8"
	"unsafe"
)

// Mode says where a rendered meta prompt goes relative to the client's
// own system messages.
type Mode string

const (
	// ModePrepend puts the meta prompt in a new system message before the
	// first message.
	ModePrepend Mode = "prepend"
	// ModeAppend puts it right after the client's last leading system (or
	// developer) message, or first when there is none.
	ModeAppend Mode = "append"
	// ModeReplace removes every client system and developer message and
	// puts the meta prompt first.
	ModeReplace Mode = "replace"
)

var knownModes = []string{string(ModePrepend), string(ModeAppend), string(ModeReplace)}

// MetaPrompt is a policy's compiled meta prompt.
type MetaPrompt struct {
	Mode     Mode
	Template string // the template's source
	Source   string // policy file
	Line     int    // file line of the template's first line

	policy string
	vars   map[string]string
	tmpl   *template.Template
}

// Data is what a meta prompt template can see. Records, Articles and User
// are untrusted: the template receives them wrapped so that printing them
// always fences and escapes them (see RecordView, ArticleView, Text).
type Data struct {
	Principal Principal
	Feature   string
	Records   []Record
	Articles  []Article
	Now       time.Time
	// Vars are the policy's variables as the template sees them. When nil
	// the policy's own vars are used; when set, they are laid over the
	// policy's (a key here wins). They are trusted text: never put
	// retrieved or user-supplied text in Vars.
	Vars map[string]string
	User string // last user message text
}

// Principal is the client key's identity (trusted: it comes from the
// gateway's configuration).
type Principal struct{ Name, Team string }

// Record is a CRM record retrieved for the request (a case, a contact…).
type Record struct {
	Entity string // e.g. "incident"
	ID     string
	Number string // e.g. "CAS-01234-X5Y6Z7"
	Title  string
	Fields map[string]string
}

// Article is a knowledge article retrieved for the request.
type Article struct {
	Ref     string // citation marker, "doc1"
	ID      string
	Number  string
	Title   string
	URL     string
	Content string

	// printed is how {{.Articles}} prints this article, kept by Printed
	// (grounding renders each article once to count its tokens), with the
	// fields it was printed from; a change to any of them voids it.
	printed   string
	printedOf [6]string
}

// Printed returns a as {{.Articles}} prints it, and keeps the text so
// that the meta prompt that quotes a does not escape it again.
func (a *Article) Printed() string {
	if s, ok := a.cachedPrint(); ok {
		return s
	}
	a.printed = string(ArticleView{a}.appendTo(make([]byte, 0, ArticleView{a}.size())))
	a.printedOf = [6]string{a.Ref, a.ID, a.Number, a.Title, a.URL, a.Content}
	return a.printed
}

// cachedPrint returns the kept text when no field changed since. Strings
// that were not reassigned compare by pointer, in constant time.
func (a *Article) cachedPrint() (string, bool) {
	if a.printed == "" || a.printedOf != [6]string{a.Ref, a.ID, a.Number, a.Title, a.URL, a.Content} {
		return "", false
	}
	return a.printed, true
}

// Text is untrusted text in a template. Printing it ({{.User}},
// {{.Title}}) writes it fenced and escaped:
// <<<text>>>…<<<end text>>>, or nothing when it is empty. The template
// functions upper, lower, truncate, join and default keep text untrusted,
// and there is no function that removes the fence.
type Text string

// String renders the text fenced; "" when empty.
func (t Text) String() string {
	if t == "" {
		return ""
	}
	return bytesToString(appendFence(make([]byte, 0, len(t)+len(t)/16+32), "text", nil, string(t)))
}

// RecordView is a Record as templates see it. {{.}} prints the whole
// record fenced:
//
//	<<<record entity="incident" id="…" number="CAS-01234">>>
//	title: …
//	<field>: …        (sorted by name; continuation lines indented)
//	<<<end record>>>
//
// Entity, ID and Number are identifier-safe (see Ident); Title, Field and
// Fields give fenced Text.
type RecordView struct{ r *Record }

func (v RecordView) Entity() string { return Ident(v.r.Entity) }
func (v RecordView) ID() string     { return Ident(v.r.ID) }
func (v RecordView) Number() string { return Ident(v.r.Number) }
func (v RecordView) Title() Text    { return Text(v.r.Title) }

// Field returns one field's value ("" when absent).
func (v RecordView) Field(name string) Text { return Text(v.r.Fields[name]) }

// Fields returns every field as untrusted text, keyed by the field name
// reduced to an identifier (see Ident): keys print bare in a range, so
// they must not carry text.
func (v RecordView) Fields() map[string]Text {
	m := make(map[string]Text, len(v.r.Fields))
	for k, x := range v.r.Fields {
		m[Ident(k)] = Text(x)
	}
	return m
}

func (v RecordView) String() string { return bytesToString(v.appendTo(make([]byte, 0, v.size()))) }

// size estimates the fenced length (escaping rarely grows text by more
// than a sixteenth).
func (v RecordView) size() int {
	r := v.r
	n := 96 + len(r.Entity) + len(r.ID) + len(r.Number) + len(r.Title)
	for k, x := range r.Fields {
		n += len(k) + len(x) + 4
	}
	return n + n/16
}

func (v RecordView) appendTo(dst []byte) []byte {
	r := v.r
	dst = append(dst, fenceOpen+"record"...)
	dst = appendAttrs(dst, "entity", r.Entity, "id", r.ID, "number", r.Number)
	dst = append(dst, fenceClose+"\n"...)
	if r.Title != "" {
		dst = append(dst, "title: "...)
		dst = appendEscaped(dst, r.Title, "  ")
		dst = append(dst, '\n')
	}
	keys := make([]string, 0, len(r.Fields))
	for k := range r.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		dst = append(dst, Ident(k)...)
		dst = append(dst, ": "...)
		dst = appendEscaped(dst, r.Fields[k], "  ")
		dst = append(dst, '\n')
	}
	return append(dst, fenceOpen+"end record"+fenceClose...)
}

// ArticleView is an Article as templates see it. {{.}} prints it fenced:
//
//	<<<article ref="doc1" id="…" number="KA-01234" url="https://…">>>
//	title: …
//	<content>
//	<<<end article>>>
//
// Ref, ID and Number are identifier-safe, URL is reduced to URL
// characters; Title and Content give fenced Text.
type ArticleView struct{ a *Article }

func (v ArticleView) Ref() string    { return Ident(v.a.Ref) }
func (v ArticleView) ID() string     { return Ident(v.a.ID) }
func (v ArticleView) Number() string { return Ident(v.a.Number) }
func (v ArticleView) URL() string    { return SafeURL(v.a.URL) }
func (v ArticleView) Title() Text    { return Text(v.a.Title) }
func (v ArticleView) Content() Text  { return Text(v.a.Content) }

func (v ArticleView) String() string { return bytesToString(v.appendTo(make([]byte, 0, v.size()))) }

func (v ArticleView) size() int {
	a := v.a
	n := 96 + len(a.Ref) + len(a.ID) + len(a.Number) + len(a.URL) + len(a.Title) + len(a.Content)
	return n + n/16
}

func (v ArticleView) appendTo(dst []byte) []byte {
	a := v.a
	if s, ok := a.cachedPrint(); ok {
		return append(dst, s...)
	}
	dst = append(dst, fenceOpen+"article"...)
	dst = appendAttrs(dst, "ref", a.Ref, "id", a.ID, "number", a.Number)
	if a.URL != "" {
		dst = append(dst, ` url="`...)
		dst = append(dst, SafeURL(a.URL)...)
		dst = append(dst, '"')
	}
	dst = append(dst, fenceClose+"\n"...)
	if a.Title != "" {
		dst = append(dst, "title: "...)
		dst = appendEscaped(dst, a.Title, "  ")
		dst = append(dst, '\n')
	}
	if a.Content != "" {
		dst = appendEscaped(dst, a.Content, "")
		if dst[len(dst)-1] != '\n' {
			dst = append(dst, '\n')
		}
	}
	return append(dst, fenceOpen+"end article"+fenceClose...)
}

func appendAttrs(dst []byte, kv ...string) []byte {
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			continue
		}
		dst = append(dst, ' ')
		dst = append(dst, kv[i]...)
		dst = append(dst, '=', '"')
		dst = append(dst, Ident(kv[i+1])...)
		dst = append(dst, '"')
	}
	return dst
}

// Records prints as every record fenced, one after another.
type Records []RecordView

func (rs Records) String() string {
	n := 0
	for _, r := range rs {
		n += r.size() + 2
	}
	b := make([]byte, 0, n)
	for i, r := range rs {
		if i > 0 {
			b = append(b, "\n\n"...)
		}
		b = r.appendTo(b)
	}
	return bytesToString(b)
}

// Numbers returns the records' numbers (identifier-safe), skipping empty
// ones: {{join ", " .Records.Numbers}}.
func (rs Records) Numbers() []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		if r.r.Number != "" {
			out = append(out, r.Number())
		}
	}
	return out
}

// Articles prints as every article fenced, one after another.
type Articles []ArticleView

// Format prints the articles as String does, straight into the
// template's output: {{.Articles}} goes through fmt, which calls Format
// before String, so the kept text of each article is copied once rather
// than joined into a string of its own first.
func (as Articles) Format(f fmt.State, _ rune) {
	for i, a := range as {
		if i > 0 {
			_, _ = f.Write([]byte("\n\n"))
		}
		if s, ok := a.a.cachedPrint(); ok {
			_, _ = f.Write(unsafe.Slice(unsafe.StringData(s), len(s)))
			continue
		}
		_, _ = f.Write(a.appendTo(make([]byte, 0, a.size())))
	}
}

func (as Articles) String() string {
	n := 0
	for _, a := range as {
		n += a.size() + 2
	}
	b := make([]byte, 0, n)
	for i, a := range as {
		if i > 0 {
			b = append(b, "\n\n"...)
		}
		b = a.appendTo(b)
	}
	return bytesToString(b)
}

// bytesToString returns b as a string without copying; b must not be
// used afterwards.
func bytesToString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// Refs returns the articles' citation markers (identifier-safe), e.g.
// "doc1": {{join ", " .Articles.Refs}}.
func (as Articles) Refs() []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		if a.a.Ref != "" {
			out = append(out, a.Ref())
		}
	}
	return out
}

// View is the template's dot.
type View struct {
	Principal Principal
	Feature   string
	Policy    string // the policy's name
	Records   Records
	Articles  Articles
	Now       time.Time
	Vars      map[string]string
	User      Text
}

// funcs is the template function set.
var funcs = template.FuncMap{
	"fence":    tfFence,
	"truncate": tfTruncate,
	"join":     tfJoin,
	"upper":    func(x any) (any, error) { return mapText("upper", x, strings.ToUpper) },
	"lower":    func(x any) (any, error) { return mapText("lower", x, strings.ToLower) },
	"trim":     func(x any) (any, error) { return mapText("trim", x, strings.TrimSpace) },
	"date":     tfDate,
	"default":  tfDefault,
}

// tfFence fences any value under a label: {{fence "notes" .Vars.notes}}.
func tfFence(label string, x any) (string, error) {
	s, _, err := textOf("fence", x)
	if err != nil {
		return "", err
	}
	return string(appendFence(nil, label, nil, s)), nil
}

// tfTruncate cuts text to at most n runes, ending with "…" when cut.
func tfTruncate(n int, x any) (any, error) {
	if n < 0 {
		return nil, fmt.Errorf("truncate: negative length %d", n)
	}
	return mapText("truncate", x, func(s string) string {
		if utf8.RuneCountInString(s) <= n {
			return s
		}
		if n == 0 {
			return ""
		}
		i, count := 0, 0
		for j := range s {
			if count == n-1 {
				i = j
				break
			}
			count++
		}
		return s[:i] + "…"
	})
}

// tfJoin joins a list with sep; the result is untrusted Text when any
// element is.
func tfJoin(sep string, list any) (any, error) {
	v := reflect.ValueOf(list)
	if v.Kind() != reflect.Slice && v.Kind() != reflect.Array {
		return nil, fmt.Errorf("join: expected a list, got %T", list)
	}
	parts := make([]string, v.Len())
	tainted := false
	for i := range parts {
		s, t, err := textOf("join", v.Index(i).Interface())
		if err != nil {
			return nil, err
		}
		parts[i], tainted = s, tainted || t
	}
	out := strings.Join(parts, sep)
	if tainted {
		return Text(out), nil
	}
	return out, nil
}

var dateLayouts = map[string]string{
	"rfc3339":  time.RFC3339,
	"date":     "2006-01-02",
	"datetime": "2006-01-02 15:04 MST",
	"long":     "Monday, 2 January 2006",
}

// tfDate formats a time: {{.Now | date "2006-01-02"}} or a named layout
// (rfc3339, date, datetime, long).
func tfDate(layout string, t time.Time) string {
	if l, ok := dateLayouts[layout]; ok {
		layout = l
	}
	return t.Format(layout)
}

// tfDefault returns x, or def when x is empty.
func tfDefault(def, x any) any {
	if x == nil {
		return def
	}
	v := reflect.ValueOf(x)
	if v.IsZero() || (v.Kind() == reflect.Slice || v.Kind() == reflect.Map) && v.Len() == 0 {
		return def
	}
	return x
}

// textOf returns x's text and whether it is untrusted.
func textOf(fn string, x any) (string, bool, error) {
	switch x := x.(type) {
	case Text:
		return string(x), true, nil
	case string:
		return x, false, nil
	case RecordView, ArticleView, Records, Articles:
		return x.(fmt.Stringer).String(), true, nil
	case nil:
		return "", false, nil
	case int, int64, float64, bool:
		return fmt.Sprint(x), false, nil
	}
	return "", false, fmt.Errorf("%s: expected text, got %T", fn, x)
}

// mapText applies f to x's text, keeping it untrusted if it was.
func mapText(fn string, x any, f func(string) string) (any, error) {
	s, tainted, err := textOf(fn, x)
	if err != nil {
		return nil, err
	}
	if tainted {
		return Text(f(s)), nil
	}
	return f(s), nil
}

// compileTemplate compiles and checks a meta prompt. It returns errors
// whose line is a template line (1-based), for the caller to offset.
func compileTemplate(src string, vars map[string]string, feature, policy string) (*template.Template, []tmplError) {
	t, err := template.New("meta_prompt").Funcs(funcs).Option("missingkey=zero").Parse(src)
	if err != nil {
		return nil, []tmplError{parseTemplateError(err)}
	}
	var problems []tmplError
	checkVars(t, vars, &problems)
	if len(problems) > 0 {
		return nil, problems
	}
	// Dry runs: with sample data, and with nothing retrieved, so that
	// wrong field names, wrong argument types and unguarded indexes fail
	// at load, not on a request.
	for _, d := range []Data{sampleData(feature), {Feature: feature, Now: sampleNow}} {
		var buf bytes.Buffer
		if err := t.Execute(&buf, makeView(&d, vars, policy)); err != nil {
			te := parseTemplateError(err)
			if len(d.Records) == 0 {
				te.msg += " (when nothing is retrieved)"
			}
			return nil, []tmplError{te}
		}
	}
	return t, nil
}

var sampleNow = time.Date(2025, 3, 14, 9, 30, 0, 0, time.UTC)

func sampleData(feature string) Data {
	return Data{
		Principal: Principal{Name: "sample-key", Team: "sample-team"},
		Feature:   feature,
		Records: []Record{
			{Entity: "incident", ID: "00000000-0000-0000-0000-000000000001", Number: "CAS-01000-A1B2C3", Title: "Sample case",
				Fields: map[string]string{"description": "Sample description.", "status": "Active", "customer": "Sample Customer"}},
			{Entity: "contact", ID: "00000000-0000-0000-0000-000000000002", Title: "Sample Customer",
				Fields: map[string]string{"email": "customer@example.com"}},
		},
		Articles: []Article{
			{Ref: "doc1", ID: "KA-01000", Number: "KA-01000", Title: "Sample article", URL: "https://example.com/kb/1", Content: "Sample content."},
			{Ref: "doc2", ID: "KA-01001", Number: "KA-01001", Title: "Sample article 2", URL: "https://example.com/kb/2", Content: "Sample content."},
			{Ref: "doc3", ID: "KA-01002", Number: "KA-01002", Title: "Sample article 3", URL: "https://example.com/kb/3", Content: "Sample content."},
		},
		Now:  sampleNow,
		User: "Sample question?",
	}
}

type tmplError struct {
	line int // template line, 1-based; 0 when unknown
	msg  string
}

var tmplErrRE = regexp.MustCompile(`^template: meta_prompt:(\d+)(?::\d+)?: (.*)$`)
var execPrefixRE = regexp.MustCompile(`^executing "meta_prompt" at (<[^>]*>): `)

func parseTemplateError(err error) tmplError {
	var ee template.ExecError
	msg := err.Error()
	if errors.As(err, &ee) {
		msg = ee.Err.Error()
	}
	m := tmplErrRE.FindStringSubmatch(msg)
	if m == nil {
		return tmplError{msg: strings.TrimPrefix(msg, "template: ")}
	}
	line, _ := strconv.Atoi(m[1])
	rest := m[2]
	if em := execPrefixRE.FindStringSubmatch(rest); em != nil {
		rest = em[1] + ": " + rest[len(em[0]):]
	}
	return tmplError{line: line, msg: rest}
}

// checkVars finds every .Vars.x and $.Vars.x and reports names the
// policy does not declare.
func checkVars(t *template.Template, vars map[string]string, out *[]tmplError) {
	for _, tt := range t.Templates() {
		if tt.Tree == nil || tt.Root == nil {
			continue
		}
		walkNodes(tt.Root, func(n parse.Node) {
			var idents []string
			switch n := n.(type) {
			case *parse.FieldNode:
				idents = n.Ident
			case *parse.VariableNode:
				if len(n.Ident) > 0 && n.Ident[0] == "$" {
					idents = n.Ident[1:]
				}
			default:
				return
			}
			if len(idents) >= 2 && idents[0] == "Vars" {
				if _, ok := vars[idents[1]]; !ok {
					loc, _ := tt.ErrorContext(n)
					line := 0
					if parts := strings.Split(loc, ":"); len(parts) >= 2 {
						line, _ = strconv.Atoi(parts[1])
					}
					*out = append(*out, tmplError{line: line,
						msg: fmt.Sprintf("variable %q is not declared in policy.vars%s", idents[1], suggest(idents[1], sortedKeys(vars)))})
				}
			}
		})
	}
}

func walkNodes(n parse.Node, f func(parse.Node)) {
	if n == nil || reflect.ValueOf(n).IsNil() {
		return
	}
	f(n)
	switch n := n.(type) {
	case *parse.ListNode:
		for _, c := range n.Nodes {
			walkNodes(c, f)
		}
	case *parse.ActionNode:
		walkNodes(n.Pipe, f)
	case *parse.PipeNode:
		for _, c := range n.Cmds {
			walkNodes(c, f)
		}
	case *parse.CommandNode:
		for _, c := range n.Args {
			walkNodes(c, f)
		}
	case *parse.ChainNode:
		walkNodes(n.Node, f)
	case *parse.IfNode:
		walkBranch(&n.BranchNode, f)
	case *parse.RangeNode:
		walkBranch(&n.BranchNode, f)
	case *parse.WithNode:
		walkBranch(&n.BranchNode, f)
	case *parse.TemplateNode:
		walkNodes(n.Pipe, f)
	}
}

func walkBranch(b *parse.BranchNode, f func(parse.Node)) {
	walkNodes(b.Pipe, f)
	walkNodes(b.List, f)
	walkNodes(b.ElseList, f)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// makeView wraps d for the template. It allocates the record and article
// views; the text itself is escaped only when printed.
func makeView(d *Data, vars map[string]string, policy string) *View {
	v := &View{
		Principal: d.Principal,
		Feature:   d.Feature,
		Policy:    policy,
		Now:       d.Now,
		Vars:      vars,
		User:      Text(d.User),
	}
	if len(d.Vars) > 0 {
		if len(vars) == 0 {
			v.Vars = d.Vars
		} else {
			merged := make(map[string]string, len(vars)+len(d.Vars))
			for k, x := range vars {
				merged[k] = x
			}
			for k, x := range d.Vars {
				merged[k] = x
			}
			v.Vars = merged
		}
	}
	if len(d.Records) > 0 {
		v.Records = make(Records, len(d.Records))
		for i := range d.Records {
			v.Records[i] = RecordView{&d.Records[i]}
		}
	}
	if len(d.Articles) > 0 {
		v.Articles = make(Articles, len(d.Articles))
		for i := range d.Articles {
			v.Articles[i] = ArticleView{&d.Articles[i]}
		}
	}
	return v
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Render executes the compiled template with d. Records, articles and the
// user's text reach the template only wrapped (RecordView, ArticleView,
// Text), so printing them always fences and escapes them. A nil
// MetaPrompt renders "".
func (m *MetaPrompt) Render(d Data) (string, error) {
	if m == nil || m.tmpl == nil {
		return "", nil
	}
	var out string
	err := m.render(d, func(p string) { out = strings.Clone(p) })
	return out, err
}

// render executes the template into a pooled buffer and passes the text
// to use, which must not retain it: Apply copies it into the body
// without a string of its own.
func (m *MetaPrompt) render(d Data, use func(string)) error {
	if d.Now.IsZero() {
		d.Now = time.Now()
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 64<<10 {
			bufPool.Put(buf)
		}
	}()
	if err := m.tmpl.Execute(buf, makeView(&d, m.vars, m.policy)); err != nil {
		te := parseTemplateError(err)
		return fmt.Errorf("%s:%d: meta prompt of policy %q: %s", m.Source, m.Line+max(te.line, 1)-1, m.policy, te.msg)
	}
	use(bytesToString(buf.Bytes()))
	return nil
}

// Apply renders the meta prompt with d and places it in body (an OpenAI
// chat request) per the mode. A nil MetaPrompt returns body unchanged.
func (m *MetaPrompt) Apply(body []byte, d Data) ([]byte, error) {
	return m.ApplyWith(body, d, nil)
}

// ApplyWith is Apply, also showing the rendered prompt to seen (when not
// nil) before it is placed. The text is only valid during the call.
func (m *MetaPrompt) ApplyWith(body []byte, d Data, seen func(prompt string)) ([]byte, error) {
	if m == nil || m.tmpl == nil {
		return body, nil
	}
	var out []byte
	var aerr error
	err := m.render(d, func(p string) {
		if seen != nil {
			seen(p)
		}
		out, aerr = ApplySystemPrompt(body, p, m.Mode)
	})
	if err != nil {
		return nil, err
	}
	return out, aerr
}

// AddsMessage reports whether the meta prompt goes in as a system
// message of its own (prepend, append), leaving the client's messages as
// they are; replace removes the client's system messages.
func (m *MetaPrompt) AddsMessage() bool {
	return m != nil && m.tmpl != nil && m.Mode != ModeReplace
}
