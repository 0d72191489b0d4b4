// Package records is the llm_gateway.context.records module: CRM records
// (cases, contacts, accounts, notes and knowledge articles) read from local
// files in the same shapes as Microsoft Dataverse, so that the gateway can
// ground requests with no Dataverse environment. With no files configured
// it serves the embedded sample data (package sampledata).
//
// JSON config (all fields optional):
//
//	{
//	  "source": "records",
//	  "dir": "/srv/crm",                         // data directory, see below
//	  "files": {"incident": "/srv/crm/cases.csv"}, // entity → file, overrides dir
//	  "columns": {"incident": ["description", "statecode", "customerid"]}
//	}
//
// A data directory holds, per entity, a file named after its entity set:
// accounts, contacts, incidents, annotations and knowledgearticles, as
// .json or .csv (knowledgearticles may also be a directory of .md, .html
// or .json article files, see grounding.ParseArticleFile). Missing files
// are empty tables. JSON files are arrays of rows or saved Web API
// responses ({"value": [...]}); CSV files name the columns on their first
// line. Columns use Dataverse logical names; lookups are _x_value with
// optional "@OData.Community.Display.V1.FormattedValue" and
// "@Microsoft.Dynamics.CRM.lookuplogicalname" annotations, as the Web API
// returns them with Prefer: odata.include-annotations="*".
//
// Access: a record's owner is its customer account (for a contact, its
// parent account; for a case, its customer or the customer's account; for
// a note, its record's) plus its _owningbusinessunit_value and
// _owningteam_value (ids or formatted names). Lookup returns only the
// records the principal's grounding.Scope allows and reports the others as
// grounding.Denied. Knowledge articles are public.
//
// SQLite is not supported in this module on purpose: JSON and CSV cover
// the demo and tests, and a pure-Go SQLite driver would add about 10 MB
// and minutes of compile time to every gateway build; it belongs in a
// separate plugin.
package records

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/groundgate/groundgate/grounding"
	"github.com/groundgate/groundgate/sampledata"
)

func init() {
	caddy.RegisterModule(new(Source))
}

// Source is the llm_gateway.context.records module.
type Source struct {
	// Dir is the data directory. Empty, with no Files, serves the
	// embedded sample data.
	Dir string `json:"dir,omitempty"`
	// Files maps an entity's logical name (incident, contact, account,
	// annotation, knowledgearticle) to a .json or .csv file (or, for
	// knowledgearticle, a directory of article files). Overrides Dir.
	Files map[string]string `json:"files,omitempty"`
	// Columns maps an entity to the columns that reach the model, instead
	// of DefaultColumns. Title and number columns are always included.
	Columns map[string][]string `json:"columns,omitempty"`

	store  *store
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (*Source) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "llm_gateway.context.records",
		New: func() caddy.Module { return new(Source) },
	}
}

// Provision loads the data files (or the embedded sample data).
func (s *Source) Provision(ctx caddy.Context) error {
	s.logger = ctx.Logger()
	repl := caddy.NewReplacer()
	dir := repl.ReplaceKnown(s.Dir, "")
	files := make(map[string]string, len(s.Files))
	for e, f := range s.Files {
		files[e] = repl.ReplaceKnown(f, "")
	}
	st, err := Load(dir, files, s.Columns)
	if err != nil {
		return err
	}
	s.store = st.store
	n := map[string]int{}
	for e, items := range s.store.items {
		n[e] = len(items)
	}
	src := dir
	if src == "" && len(files) == 0 {
		src = "embedded sample data"
	}
	s.logger.Info("records loaded", zap.String("from", src), zap.Any("counts", n))
	return nil
}

// Validate checks entity and column names.
func (s *Source) Validate() error {
	for e := range s.Files {
		if _, ok := entitySets[e]; !ok {
			return fmt.Errorf("files: unknown entity %q (known: %s)", e, strings.Join(grounding.KnownEntities, ", "))
		}
	}
	for e, cols := range s.Columns {
		if _, ok := entitySets[e]; !ok {
			return fmt.Errorf("columns: unknown entity %q (known: %s)", e, strings.Join(grounding.KnownEntities, ", "))
		}
		for _, c := range cols {
			if c == "" || strings.ContainsAny(c, " \t@") {
				return fmt.Errorf("columns %s: bad column name %q", e, c)
			}
		}
	}
	return nil
}

// Cleanup releases nothing: the store is immutable and may still serve
// requests of the old config in flight.
func (s *Source) Cleanup() error { return nil }

// Loaded is a records store built outside Caddy (Load), for tests and tools.
type Loaded struct{ store *store }

// Lookup implements grounding.RecordSource.
func (l *Loaded) Lookup(ctx context.Context, keys []grounding.RecordKey, scope *grounding.Scope) ([]grounding.Record, []grounding.Denied, error) {
	return lookup(l.store, keys, scope)
}

// Articles implements grounding.ArticleSource.
func (l *Loaded) Articles(ctx context.Context) ([]grounding.Article, error) {
	return articles(l.store), nil
}

// Counts returns the number of rows per entity.
func (l *Loaded) Counts() map[string]int {
	n := map[string]int{}
	for e, items := range l.store.items {
		n[e] = len(items)
	}
	return n
}

// Load reads a data directory and/or per-entity files (both empty: the
// embedded sample data) with the given columns per entity (nil entries
// use DefaultColumns).
func Load(dir string, files map[string]string, columns map[string][]string) (*Loaded, error) {
	data := map[string][]row{}
	var arts []grounding.Article
	add := func(entity string, fsys fs.FS, name string) error {
		fi, err := fs.Stat(fsys, name)
		if err != nil {
			return err
		}
		if fi.IsDir() {
			if entity != grounding.EntityKnowledgeArticle {
				return fmt.Errorf("%s: a directory is only allowed for knowledgearticle", name)
			}
			a, err := readArticleDir(fsys, name)
			arts = append(arts, a...)
			return err
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		var rows []row
		switch strings.ToLower(path.Ext(name)) {
		case ".json":
			rows, err = parseRowsJSON(b)
		case ".csv":
			rows, err = parseRowsCSV(b)
		default:
			return fmt.Errorf("%s: want a .json or .csv file", name)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		data[entity] = append(data[entity], rows...)
		return nil
	}

	switch {
	case dir == "" && len(files) == 0:
		if err := addDir(sampledata.FS, ".", add); err != nil {
			return nil, fmt.Errorf("embedded sample data: %w", err)
		}
	default:
		if dir != "" {
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				return nil, fmt.Errorf("dir %q is not a readable directory", dir)
			}
			if err := addDir(os.DirFS(dir), ".", func(e string, fsys fs.FS, name string) error {
				if _, over := files[e]; over {
					return nil
				}
				return add(e, fsys, name)
			}); err != nil {
				return nil, err
			}
		}
		for _, e := range sortedKeys(files) {
			f := files[e]
			abs, err := filepath.Abs(f)
			if err != nil {
				return nil, err
			}
			if err := add(e, os.DirFS(filepath.Dir(abs)), filepath.Base(abs)); err != nil {
				return nil, fmt.Errorf("files %s: %w", e, err)
			}
		}
	}
	st, err := newStore(data, arts, columns)
	if err != nil {
		return nil, err
	}
	return &Loaded{store: st}, nil
}

// addDir finds <entityset>.json / .csv (and knowledgearticles/) in dir.
func addDir(fsys fs.FS, dir string, add func(entity string, fsys fs.FS, name string) error) error {
	found := 0
	for _, e := range sortedKeys(entitySets) {
		set := entitySets[e]
		for _, name := range []string{set + ".json", set + ".csv", set} {
			p := path.Join(dir, name)
			fi, err := fs.Stat(fsys, p)
			if err != nil || (fi.IsDir() != (name == set)) {
				continue
			}
			if fi.IsDir() && e != grounding.EntityKnowledgeArticle {
				continue
			}
			found++
			if err := add(e, fsys, p); err != nil {
				return err
			}
		}
	}
	if found == 0 {
		return errors.New("no data files found (expected accounts, contacts, incidents, annotations or knowledgearticles as .json or .csv, or a knowledgearticles directory)")
	}
	return nil
}

func readArticleDir(fsys fs.FS, dir string) ([]grounding.Article, error) {
	var out []grounding.Article
	err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !grounding.IsArticleFile(p) {
			return nil
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		arts, err := grounding.ParseArticleFile(p, b)
		if err != nil {
			return err
		}
		out = append(out, arts...)
		return nil
	})
	return out, err
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Lookup implements grounding.RecordSource: every record matching a key
// (column equality, case-insensitive; at most 20 per key) that scope
// allows; the others are reported as denied.
func (s *Source) Lookup(ctx context.Context, keys []grounding.RecordKey, scope *grounding.Scope) ([]grounding.Record, []grounding.Denied, error) {
	if s.store == nil {
		return nil, nil, errors.New("records: not provisioned")
	}
	return lookup(s.store, keys, scope)
}

func lookup(st *store, keys []grounding.RecordKey, scope *grounding.Scope) ([]grounding.Record, []grounding.Denied, error) {
	var (
		out    []grounding.Record
		denied []grounding.Denied
		seen   map[*item]bool
	)
	for _, k := range keys {
		items := st.lookup(k)
		if len(items) > maxPerKey {
			items = items[:maxPerKey]
		}
		for _, it := range items {
			if seen[it] {
				continue
			}
			if seen == nil {
				seen = make(map[*item]bool, 4)
			}
			seen[it] = true
			if !scope.Allows(it.rec.Owner) {
				denied = append(denied, grounding.Denied{Key: k, Entity: it.entity, ID: it.id, Reason: grounding.ReasonOutOfScope})
				continue
			}
			out = append(out, it.rec)
		}
	}
	return out, denied, nil
}

// Articles implements grounding.ArticleSource: the published knowledge
// articles (statecode 3, or no statecode) that are the latest version.
func (s *Source) Articles(ctx context.Context) ([]grounding.Article, error) {
	if s.store == nil {
		return nil, errors.New("records: not provisioned")
	}
	return articles(s.store), nil
}

func articles(st *store) []grounding.Article {
	var out []grounding.Article
	for _, it := range st.items[grounding.EntityKnowledgeArticle] {
		if sc := it.cols["statecode"]; sc != "" && sc != "3" {
			continue
		}
		if it.cols["islatestversion"] == "false" {
			continue
		}
		out = append(out, *it.article)
	}
	return out
}

// Interface guards.
var (
	_ caddy.Provisioner       = (*Source)(nil)
	_ caddy.Validator         = (*Source)(nil)
	_ caddy.CleanerUpper      = (*Source)(nil)
	_ grounding.RecordSource  = (*Source)(nil)
	_ grounding.ArticleSource = (*Source)(nil)
	_ grounding.RecordSource  = (*Loaded)(nil)
	_ grounding.ArticleSource = (*Loaded)(nil)
)
