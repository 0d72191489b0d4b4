package policies

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// MaxFileSize bounds a policy file.
const MaxFileSize = 1 << 20

// policySpec is the file format: one policy per file, a YAML mapping with
// these keys. schema.json describes the same keys (a test keeps the two in
// step).
type policySpec struct {
	Name        string            `yaml:"name"`
	Description string            `yaml:"description"`
	Priority    int               `yaml:"priority"`
	Default     bool              `yaml:"default"`
	Feature     string            `yaml:"feature"`
	Match       Match             `yaml:"match"`
	Upstream    upstreamSpec      `yaml:"upstream"`
	MetaPrompt  *metaPromptSpec   `yaml:"meta_prompt"`
	Vars        map[string]string `yaml:"vars"`
	Teams       *TeamAccess       `yaml:"teams"`
	Context     RawSection        `yaml:"context"`
	Budgets     RawSection        `yaml:"budgets"`
	Filters     RawSection        `yaml:"filters"`
	Post        RawSection        `yaml:"post"`
	Cache       RawSection        `yaml:"cache"`
	Tracing     RawSection        `yaml:"tracing"`
}

type upstreamSpec struct {
	Pool string `yaml:"pool"`
}

type metaPromptSpec struct {
	Mode     string `yaml:"mode"`
	Template string `yaml:"template"`
}

// Set is an immutable, compiled set of policies; safe for concurrent use.
type Set struct {
	policies []*Policy // precedence order
	byName   map[string]*Policy
	features []string // sorted
	aliases  map[string]string
	hash     string
}

// Hash identifies the set by content: the sha256, hex, of the sorted
// content hashes of its files (one per line). Renaming or moving files
// leaves it unchanged (precedence does not depend on file names either);
// changing a byte of any file changes it.
func (s *Set) Hash() string { return s.hash }

// Policies returns the policies in precedence order (a copy of the slice;
// the policies themselves are shared and must not be modified).
func (s *Set) Policies() []*Policy { return slices.Clone(s.policies) }

// Policy returns the policy with this name, or nil.
func (s *Set) Policy(name string) *Policy { return s.byName[name] }

// Features returns the copilot features the set defines, sorted.
func (s *Set) Features() []string { return slices.Clone(s.features) }

// Load reads policy files (paths or globs; directories mean *.yaml and
// *.yml inside, not recursively), validates strictly, compiles templates,
// and returns the set. Zero files matched by a pattern is an error naming
// the pattern. Problems in files come back as an ErrorList.
func Load(patterns ...string) (*Set, error) {
	if len(patterns) == 0 {
		return nil, errors.New("no policy files given")
	}
	files := make(map[string][]byte)
	for _, p := range patterns {
		names, err := expand(p)
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			if _, dup := files[name]; dup {
				continue
			}
			data, err := readFile(name)
			if err != nil {
				return nil, err
			}
			files[name] = data
		}
	}
	return Parse(files)
}

func expand(pattern string) ([]string, error) {
	if fi, err := os.Stat(pattern); err == nil && fi.IsDir() {
		var names []string
		for _, ext := range []string{"*.yaml", "*.yml"} {
			m, err := filepath.Glob(filepath.Join(pattern, ext))
			if err != nil {
				return nil, err
			}
			names = append(names, m...)
		}
		names = regularFiles(names)
		if len(names) == 0 {
			return nil, fmt.Errorf("no policy files (*.yaml, *.yml) in directory %q", pattern)
		}
		sort.Strings(names)
		return names, nil
	}
	if strings.ContainsAny(pattern, "*?[") {
		m, err := filepath.Glob(pattern)
		if err != nil {
			return nil, fmt.Errorf("bad policy file pattern %q: %v", pattern, err)
		}
		m = regularFiles(m)
		if len(m) == 0 {
			return nil, fmt.Errorf("no policy files match %q", pattern)
		}
		return m, nil
	}
	if _, err := os.Stat(pattern); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no policy files match %q: no such file or directory", pattern)
		}
		return nil, fmt.Errorf("policy file %q: %v", pattern, err)
	}
	return []string{filepath.Clean(pattern)}, nil
}

func regularFiles(names []string) []string {
	out := names[:0]
	for _, n := range names {
		if fi, err := os.Stat(n); err == nil && fi.Mode().IsRegular() {
			out = append(out, filepath.Clean(n))
		}
	}
	return out
}

func readFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("policy file %q: %v", name, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("policy file %q: %v", name, err)
	}
	return data, nil
}

// Parse compiles policies from in-memory files (name → content); Load
// calls it. Each file holds exactly one policy. Problems come back as an
// ErrorList, every file checked.
func Parse(files map[string][]byte) (*Set, error) {
	if len(files) == 0 {
		return nil, errors.New("no policy files given")
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)

	var all ErrorList
	var pols []*Policy
	hashes := make([]string, 0, len(files))
	for _, name := range names {
		p, el := parseFile(name, files[name])
		all = append(all, el...)
		if p != nil {
			pols = append(pols, p)
		}
		sum := sha256.Sum256(files[name])
		hashes = append(hashes, hex.EncodeToString(sum[:]))
	}

	// Across files: names are unique, and an alias names one feature.
	byName := make(map[string]*Policy, len(pols))
	aliases := make(map[string]string)
	aliasOwner := make(map[string]*Policy)
	features := make(map[string]bool)
	for _, p := range pols {
		if q, dup := byName[p.Name]; dup {
			all = append(all, &Error{File: p.Source, Line: p.nameLine, Field: "policy.name",
				Msg: fmt.Sprintf("policy.name: %q is already the name of a policy in %s:%d; names must be unique", p.Name, q.Source, q.nameLine)})
			continue
		}
		byName[p.Name] = p
		if p.Feature != "" {
			features[p.Feature] = true
		}
		for _, a := range p.Match.Aliases {
			if f, ok := aliases[a]; ok && f != p.Feature {
				q := aliasOwner[a]
				all = append(all, &Error{File: p.Source, Line: p.aliasLine, Field: "policy.match.aliases",
					Msg: fmt.Sprintf("policy.match.aliases: alias %q already selects feature %q (policy %q, %s); an alias can name one feature only", a, f, q.Name, q.Source)})
				continue
			}
			aliases[a] = p.Feature
			aliasOwner[a] = p
		}
	}
	if len(all) > 0 {
		all.sort()
		return nil, all
	}

	sort.Strings(hashes)
	h := sha256.New()
	for _, x := range hashes {
		h.Write([]byte(x))
		h.Write([]byte{'\n'})
	}
	s := &Set{
		policies: pols,
		byName:   byName,
		aliases:  aliases,
		hash:     hex.EncodeToString(h.Sum(nil)),
	}
	for f := range features {
		s.features = append(s.features, f)
	}
	sort.Strings(s.features)
	s.order()
	return s, nil
}

var (
	nameRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)
	featureRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	poolRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)
	varRE     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)
	yamlErrRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
)

// parseFile decodes, validates and compiles one file.
func parseFile(name string, data []byte) (*Policy, ErrorList) {
	e := &errs{file: name}
	if len(data) > MaxFileSize {
		e.add(0, "", "file is larger than %d bytes", MaxFileSize)
		return nil, e.list
	}
	var doc yaml.Node
	var more yaml.Node
	errFirst, errMore := decodeYAML(data, &doc, &more)
	switch {
	case errors.Is(errFirst, io.EOF):
		e.add(0, "", "file is empty; it should hold one policy")
		return nil, e.list
	case errFirst != nil:
		line, msg := yamlErrorLine(errFirst)
		e.add(line, "", "invalid YAML: %s", msg)
		return nil, e.list
	case errMore == nil:
		e.add(more.Line, "", "a policy file holds one policy, but a second YAML document starts here; put it in its own file")
		return nil, e.list
	case !errors.Is(errMore, io.EOF):
		line, msg := yamlErrorLine(errMore)
		e.add(line, "", "invalid YAML: %s", msg)
		return nil, e.list
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if isNull(root) {
		e.add(root.Line, "", "file holds no policy")
		return nil, e.list
	}
	if root.Kind != yaml.MappingNode {
		e.add(root.Line, "policy", "a policy file holds one policy, a mapping with name, match, meta_prompt…; got %s", describe(root))
		return nil, e.list
	}

	var spec policySpec
	d := &decoder{e: e, pos: make(map[string]pos), budget: maxNodes}
	d.decode(root, reflect.ValueOf(&spec).Elem(), "policy")

	v := &validator{e: e, pos: d.pos, rootLine: root.Line}
	p := v.policy(&spec, name, data)
	if len(e.list) > 0 {
		return nil, e.list
	}
	return p, nil
}

// decodeYAML reads the first document into doc and tries a second into
// more, turning any panic inside the YAML library into an error.
func decodeYAML(data []byte, doc, more *yaml.Node) (errFirst, errMore error) {
	defer func() {
		if r := recover(); r != nil {
			errFirst = fmt.Errorf("yaml: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if errFirst = dec.Decode(doc); errFirst != nil {
		return errFirst, nil
	}
	errMore = dec.Decode(more)
	return nil, errMore
}

// yamlErrorLine splits a yaml.v3 syntax error into line and message.
// yaml.v3 reports parser errors (as opposed to scanner errors) with a
// 0-based line; those are recognised by their message and corrected.
func yamlErrorLine(err error) (int, string) {
	msg := err.Error()
	if m := yamlErrRE.FindStringSubmatch(msg); m != nil {
		line := 0
		fmt.Sscan(m[1], &line)
		if strings.HasPrefix(m[2], "did not find expected <") || slices.Contains(yamlParserProblems, m[2]) {
			line++
		}
		return line, m[2]
	}
	return 0, strings.TrimPrefix(msg, "yaml: ")
}

var yamlParserProblems = []string{
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"did not find expected '-' indicator",
	"did not find expected key",
	"did not find expected node content",
	"found duplicate %TAG directive",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found undefined tag handle",
}

type validator struct {
	e        *errs
	pos      map[string]pos
	rootLine int
}

// line returns the line of the field at path (its key), else of the
// closest enclosing field given, else the policy's.
func (v *validator) line(path string) int {
	for path != "" {
		if p, ok := v.pos[path]; ok {
			if p.key > 0 {
				return p.key
			}
			return p.val
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return v.rootLine
}

// valLine returns the line of the value at path.
func (v *validator) valLine(path string) int {
	if p, ok := v.pos[path]; ok && p.val > 0 {
		return p.val
	}
	return v.line(path)
}

// fail reports a problem with the value at path, unless decoding already
// reported one there.
func (v *validator) fail(path string, format string, args ...any) {
	if v.e.bad[path] {
		return
	}
	v.e.add(v.valLine(path), path, "%s: %s", path, fmt.Sprintf(format, args...))
}

func (v *validator) has(path string) bool {
	_, ok := v.pos[path]
	return ok
}

func (v *validator) policy(s *policySpec, file string, data []byte) *Policy {
	sum := sha256.Sum256(data)
	p := &Policy{
		Name:        s.Name,
		Description: s.Description,
		Source:      file,
		Line:        v.rootLine,
		Hash:        hex.EncodeToString(sum[:]),
		Priority:    s.Priority,
		Default:     s.Default,
		Feature:     s.Feature,
		Pool:        s.Upstream.Pool,
		Match:       s.Match,
		Vars:        s.Vars,
		Context:     s.Context,
		Budgets:     s.Budgets,
		Filters:     s.Filters,
		Post:        s.Post,
		Cache:       s.Cache,
		Tracing:     s.Tracing,
		nameLine:    v.line("policy.name"),
		aliasLine:   v.line("policy.match.aliases"),
	}
	if s.Teams != nil {
		p.Teams = *s.Teams
	}

	switch {
	case !v.has("policy.name"):
		v.e.add(v.rootLine, "policy.name", "policy.name is required (a unique name such as \"draft-email\")")
	case !nameRE.MatchString(s.Name):
		v.fail("policy.name", "%q is not a valid name: use lower-case letters, digits, '-', '_' and '.', at most 64", s.Name)
	}
	if v.has("policy.feature") && !featureRE.MatchString(s.Feature) {
		v.fail("policy.feature", "%q is not a valid feature name: use lower-case letters, digits and '_', starting with a letter (e.g. draft_email)", s.Feature)
	}
	if s.Default && s.Feature != "" {
		v.fail("policy.default", "a default policy cannot also be feature %q; a request naming a feature must match that feature's policy", s.Feature)
	}
	if v.has("policy.upstream.pool") && !poolRE.MatchString(s.Upstream.Pool) {
		v.fail("policy.upstream.pool", "%q is not a valid pool name: use letters, digits, '-', '_' and '.'", s.Upstream.Pool)
	}

	v.patterns("policy.match.api", s.Match.API, knownAPIs)
	v.patterns("policy.match.route", s.Match.Route, knownRoutes)
	v.patterns("policy.match.model", s.Match.Model, nil)
	v.patterns("policy.match.key", s.Match.Key, nil)
	v.patterns("policy.match.team", s.Match.Team, nil)
	if len(s.Match.Aliases) > 0 && s.Feature == "" {
		v.e.add(v.line("policy.match.aliases"), "policy.match.aliases", "policy.match.aliases: aliases select a feature, but this policy has no feature")
	}
	for i, a := range s.Match.Aliases {
		path := fmt.Sprintf("policy.match.aliases[%d]", i)
		if a == "" || strings.ContainsAny(a, "* \t\n") {
			v.fail(path, "alias %q must be a literal model name (no spaces, no '*')", a)
		}
	}

	if s.Teams != nil {
		if s.Feature == "" {
			v.e.add(v.line("policy.teams"), "policy.teams", "policy.teams: team enablement applies to features, but this policy has no feature (use match.team to restrict who it matches)")
		}
		for i, t := range s.Teams.Enabled {
			if t == "" {
				v.fail(fmt.Sprintf("policy.teams.enabled[%d]", i), "team name is empty")
			}
		}
		for i, t := range s.Teams.Disabled {
			path := fmt.Sprintf("policy.teams.disabled[%d]", i)
			switch {
			case t == "":
				v.fail(path, "team name is empty")
			case t == "*":
				v.fail(path, `"*" is not allowed here; to switch the feature off for everyone write enabled: []`)
			case slices.Contains(s.Teams.Enabled, t):
				v.fail(path, "team %q is both enabled and disabled", t)
			}
		}
	}

	for k := range s.Vars {
		if !varRE.MatchString(k) {
			v.e.add(v.line("policy.vars."+k), "policy.vars", "policy.vars: %q is not a valid variable name: use letters, digits and '_', starting with a letter or '_'", k)
		}
	}

	for _, sec := range []struct {
		name string
		r    RawSection
	}{{"context", s.Context}, {"budgets", s.Budgets}, {"filters", s.Filters}, {"post", s.Post}, {"cache", s.Cache}, {"tracing", s.Tracing}} {
		if sec.r.Node == nil {
			continue
		}
		if sec.r.Node.Kind != yaml.MappingNode && sec.r.Node.Kind != yaml.SequenceNode {
			v.fail("policy."+sec.name, "expected a mapping or a list, got %s", describe(sec.r.Node))
			continue
		}
		// Structure only (duplicate keys, alias cycles, size): the fields
		// are the owner's to check.
		var x any
		_ = decodeInto(sec.r.Node, &x, sec.r.Path, v.e)
	}

	if s.MetaPrompt != nil {
		p.Meta = v.metaPrompt(s, file)
	}
	return p
}

// patterns checks a match list: no empty entries, and for closed sets
// (api, route) only known values.
func (v *validator) patterns(path string, list, known []string) {
	for i, x := range list {
		ip := fmt.Sprintf("%s[%d]", path, i)
		switch {
		case x == "":
			v.fail(ip, "empty pattern (leave the list out to match anything)")
		case known != nil && !slices.Contains(known, x):
			v.fail(ip, "unknown value %q; expected one of %s%s", x, strings.Join(known, ", "), suggest(x, known))
		}
	}
}

func (v *validator) metaPrompt(s *policySpec, file string) *MetaPrompt {
	mp := s.MetaPrompt
	m := &MetaPrompt{Mode: Mode(mp.Mode), Template: mp.Template, Source: file, policy: s.Name, vars: s.Vars}
	if mp.Mode == "" {
		m.Mode = ModePrepend
	} else if !slices.Contains(knownModes, mp.Mode) {
		v.fail("policy.meta_prompt.mode", "unknown mode %q; expected prepend, append or replace%s", mp.Mode, suggest(mp.Mode, knownModes))
	}
	if strings.TrimSpace(mp.Template) == "" {
		v.e.add(v.line("policy.meta_prompt.template"), "policy.meta_prompt.template", "policy.meta_prompt.template is required (the meta prompt text)")
		return m
	}
	// The template's first line in the file: block scalars (| and >)
	// start on the line after their indicator.
	first := v.valLine("policy.meta_prompt.template")
	if v.pos["policy.meta_prompt.template"].block {
		first++
	}
	m.Line = first
	t, problems := compileTemplate(mp.Template, s.Vars, s.Feature, s.Name)
	for _, pr := range problems {
		line := first
		if pr.line > 0 {
			line = first + pr.line - 1
		}
		v.e.add(line, "policy.meta_prompt.template", "policy.meta_prompt.template: %s", pr.msg)
	}
	m.tmpl = t
	return m
}
