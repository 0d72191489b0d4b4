// Package localindex is the llm_gateway.context.local_index module: an
// embedded semantic index of knowledge articles for grounding. It needs no
// search service: BM25 over an in-memory inverted index, plus, when an
// embeddings endpoint is configured, vector similarity fused with BM25 by
// reciprocal rank fusion (hybrid ranking).
//
// Sources, in this order of precedence: the configured paths (Markdown
// with YAML front matter, HTML or JSON article files, directories are read
// recursively, globs allowed) and documents (JSON corpora with mapped
// fields, one unit per document), or the articles of an article source module
// (articles_from, e.g. a records source's knowledgearticle table), or —
// when neither is configured — the embedded sample articles (package
// sampledata).
//
// Articles are split into chunks (by headings and paragraphs, at most
// chunk_tokens tokens each) and every chunk is searchable on its own; a
// search returns chunks best first, which grounding.Pack numbers
// [doc1]…[docN].
//
// Persistence: the index is written to a snapshot file in dir (default
// <Caddy data dir>/groundgate/index), one per index name and set of
// sources. On provisioning every source is hashed (SHA-256 of the file or
// article); units whose hash matches the snapshot are taken from it as
// they are (chunks, analyzed terms, vectors) and only changed or new ones
// are parsed, chunked and embedded again. The loaded index is shared
// across config reloads through a caddy.UsagePool keyed by snapshot path,
// settings, embeddings identity and content fingerprint: a reload with
// unchanged articles reuses the index in memory, and a reload after an
// edit builds a new one incrementally while the old one keeps serving the
// old config.
//
// JSON config (all optional):
//
//	{
//	  "source": "local_index",
//	  "name": "knowledge",
//	  "paths": ["/srv/kb"],
//	  "articles_from": {"source": "records", "dir": "/srv/crm"},
//	  "dir": "/var/lib/caddy/groundgate/index",
//	  "chunk_tokens": 400,
//	  "tokenizer": "gpt-4o",
//	  "rrf_k": 60,
//	  "semantic": "terms",
//	  "documents": [{ see Documents }],
//	  "embeddings": { see Embeddings }
//	}
//
// Searches through SearchQuery (grounding.QueryIndex) take the whole
// conversation-aware query: weighted turns, the entity names its
// messages mention (matched against the documents' entity field, see
// entities.go), and the policy's field filters and boosts.
package localindex

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/groundgate/groundgate/grounding"
	"github.com/groundgate/groundgate/sampledata"
	"github.com/groundgate/groundgate/tokens"
)

func init() {
	caddy.RegisterModule(new(LocalIndex))
}

// Defaults.
const (
	DefaultName      = "knowledge"
	DefaultTokenizer = "gpt-4o"
	DefaultRRFK      = 60
	// Semantic signals.
	SemanticTerms = "terms"
	SemanticOff   = "off"
	// searchDepth is how many candidates each ranking contributes to
	// fusion (at least; more when k is large).
	searchDepth = 50
)

// pool shares built indexes across config reloads.
var pool = caddy.NewUsagePool()

// LocalIndex is the llm_gateway.context.local_index module.
type LocalIndex struct {
	// Name names the index's snapshot file. Default "knowledge".
	Name string `json:"name,omitempty"`
	// Paths are article files, directories (read recursively) or globs.
	Paths []string `json:"paths,omitempty"`
	// ArticlesFromRaw is an llm_gateway.context module that implements
	// grounding.ArticleSource, e.g. {"source": "records"}.
	ArticlesFromRaw json.RawMessage `json:"articles_from,omitempty" caddy:"namespace=llm_gateway.context inline_key=source"`
	// Dir is where the snapshot is written. Default
	// caddy.AppDataDir()/groundgate/index.
	Dir string `json:"dir,omitempty"`
	// ChunkTokens caps the tokens of one chunk. Default 400.
	ChunkTokens int `json:"chunk_tokens,omitempty"`
	// Tokenizer is the model whose tokenizer counts chunk tokens.
	// Default gpt-4o.
	Tokenizer string `json:"tokenizer,omitempty"`
	// RRFK is the k of reciprocal rank fusion (hybrid only). Default 60.
	RRFK float64 `json:"rrf_k,omitempty"`
	// Documents are JSON corpora (FAQs, reviews …) with their fields
	// mapped; they may be combined with paths.
	Documents []Documents `json:"documents,omitempty"`
	// Semantic is the offline semantic signal: "terms" (default) expands
	// query terms with the terms used in the same contexts in the
	// indexed articles (term vectors learned when the index is built);
	// "off" ranks by BM25 alone. It works with or without embeddings.
	Semantic string `json:"semantic,omitempty"`
	// Embeddings turns on hybrid ranking.
	Embeddings *Embeddings `json:"embeddings,omitempty"`

	articles     grounding.ArticleSource
	articlesFrom string // the articles_from JSON, for the snapshot identity
	shared       *shared
	poolKey      string
	emb          *embedder
	logger       *zap.Logger
	qfailures    atomic.Int64
}

// shared is the pooled, immutable index.
type shared struct {
	ix    *index
	stats Stats
}

// Destruct implements caddy.Destructor; the index is garbage collected.
func (*shared) Destruct() error { return nil }

// CaddyModule returns the Caddy module information.
func (*LocalIndex) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "llm_gateway.context.local_index",
		New: func() caddy.Module { return new(LocalIndex) },
	}
}

// Provision reads the sources, and loads or builds the index.
func (li *LocalIndex) Provision(ctx caddy.Context) error {
	li.logger = ctx.Logger()
	if li.Name == "" {
		li.Name = DefaultName
	}
	if li.ChunkTokens == 0 {
		li.ChunkTokens = grounding.DefaultChunkTokens
	}
	if li.Tokenizer == "" {
		li.Tokenizer = DefaultTokenizer
	}
	if li.RRFK == 0 {
		li.RRFK = DefaultRRFK
	}
	repl := caddy.NewReplacer()
	dir := repl.ReplaceKnown(li.Dir, "")
	if dir == "" {
		dir = filepath.Join(caddy.AppDataDir(), "groundgate", "index")
	}
	enc, err := tokens.ForModel(li.Tokenizer)
	if err != nil {
		return fmt.Errorf("tokenizer: %v", err)
	}
	if (len(li.Paths) > 0 || len(li.Documents) > 0) && li.ArticlesFromRaw != nil {
		return errors.New("give paths and documents, or articles_from, not both")
	}
	// LoadModule drops the raw JSON: keep it to identify the snapshot.
	li.articlesFrom = string(li.ArticlesFromRaw)
	if li.ArticlesFromRaw != nil {
		mod, err := ctx.LoadModule(li, "ArticlesFromRaw")
		if err != nil {
			return fmt.Errorf("articles_from: %v", err)
		}
		src, ok := mod.(grounding.ArticleSource)
		if !ok {
			return fmt.Errorf("articles_from: module %T does not provide articles (grounding.ArticleSource)", mod)
		}
		li.articles = src
	}
	if li.Embeddings != nil {
		if err := li.Embeddings.validate(); err != nil {
			return err
		}
		li.emb = newEmbedder(li.Embeddings)
	}

	units, identity, err := li.units(ctx, repl)
	if err != nil {
		return err
	}
	settings := settingsString(li.ChunkTokens, enc)
	embedID := li.Embeddings.identity()
	sum := sha256.Sum256([]byte(identity))
	path := filepath.Join(dir, safeName(li.Name)+"-"+hex.EncodeToString(sum[:8])+".gob")
	li.poolKey = strings.Join([]string{path, settings, embedID, li.Semantic, fingerprint(units)}, "|")

	val, loaded, err := pool.LoadOrNew(li.poolKey, func() (caddy.Destructor, error) {
		ix, st, err := build(ctx, units, buildConfig{
			settings: settings, embedID: embedID, emb: li.emb, enc: enc, chunkTokens: li.ChunkTokens, path: path,
			semantic: li.Semantic != SemanticOff,
		}, func(msg string, err error) { li.logger.Warn(msg, zap.String("snapshot", path), zap.Error(err)) })
		if err != nil {
			return nil, err
		}
		return &shared{ix: ix, stats: st}, nil
	})
	if err != nil {
		li.poolKey = ""
		return fmt.Errorf("local_index %q: %w", li.Name, err)
	}
	li.shared = val.(*shared)
	st := li.shared.stats
	li.logger.Info("knowledge index ready",
		zap.String("name", li.Name), zap.Bool("shared", loaded), zap.Int("articles", st.Articles),
		zap.Int("chunks", st.Chunks), zap.Int("reused", st.Reused), zap.Int("reindexed", st.Reindexed),
		zap.Int("embedded", st.Embedded), zap.Bool("hybrid", li.Hybrid()), zap.String("snapshot", st.Snapshot))
	return nil
}

// units lists the sources and returns them with an identity of the
// configured sources (for the snapshot file name).
func (li *LocalIndex) units(ctx context.Context, repl *caddy.Replacer) ([]unit, string, error) {
	var units []unit
	var ident []string
	for i := range li.Documents {
		d := &li.Documents[i]
		m, err := d.compile()
		if err != nil {
			return nil, "", fmt.Errorf("documents[%d]: %v", i, err)
		}
		us, err := documentUnits(d, m, func(p string) string { return repl.ReplaceKnown(p, "") })
		if err != nil {
			return nil, "", err
		}
		b, _ := json.Marshal(d)
		ident = append(ident, "documents:"+string(b))
		units = append(units, us...)
	}
	switch {
	case len(li.Documents) > 0 && len(li.Paths) == 0:
	case len(li.Paths) > 0:
		for _, p := range li.Paths {
			p = repl.ReplaceKnown(p, "")
			abs, err := filepath.Abs(p)
			if err != nil {
				return nil, "", err
			}
			ident = append(ident, "path:"+abs)
			us, err := pathUnits(abs)
			if err != nil {
				return nil, "", err
			}
			units = append(units, us...)
		}
	case li.articles != nil:
		ident = append(ident, "articles_from:"+li.articlesFrom)
		arts, err := li.articles.Articles(ctx)
		if err != nil {
			return nil, "", fmt.Errorf("articles_from: %w", err)
		}
		for _, a := range arts {
			u, err := articleUnit(a)
			if err != nil {
				return nil, "", err
			}
			units = append(units, u)
		}
	default:
		ident = append(ident, "embedded")
		err := fs.WalkDir(sampledata.FS, sampledata.ArticlesDir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !grounding.IsArticleFile(p) {
				return err
			}
			b, err := fs.ReadFile(sampledata.FS, p)
			if err != nil {
				return err
			}
			units = append(units, fileUnit("embedded:"+p, p, b))
			return nil
		})
		if err != nil {
			return nil, "", err
		}
	}
	return units, strings.Join(ident, "\n"), nil
}

// pathUnits reads one configured path: a file, a directory (recursive) or
// a glob. A path that matches no article file is an error.
func pathUnits(p string) ([]unit, error) {
	var files []string
	if strings.ContainsAny(p, "*?[") {
		m, err := filepath.Glob(p)
		if err != nil {
			return nil, fmt.Errorf("paths: %q: %v", p, err)
		}
		files = m
	} else {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("paths: %v", err)
		}
		if fi.IsDir() {
			err := filepath.WalkDir(p, func(f string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if !d.IsDir() && grounding.IsArticleFile(f) {
					files = append(files, f)
				}
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("paths: %v", err)
			}
		} else {
			files = []string{p}
		}
	}
	var out []unit
	for _, f := range files {
		if !grounding.IsArticleFile(f) {
			if len(files) == 1 {
				return nil, fmt.Errorf("paths: %s is not an article file (want %s)", f, strings.Join(grounding.ArticleExtensions, ", "))
			}
			continue
		}
		fi, err := os.Stat(f)
		if err != nil {
			return nil, fmt.Errorf("paths: %v", err)
		}
		if fi.IsDir() {
			continue
		}
		if fi.Size() > grounding.MaxArticleFile {
			return nil, fmt.Errorf("paths: %s: larger than %d bytes", f, grounding.MaxArticleFile)
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("paths: %v", err)
		}
		out = append(out, fileUnit("file:"+f, f, b))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("paths: %q holds no article files (%s)", p, strings.Join(grounding.ArticleExtensions, ", "))
	}
	return out, nil
}

func safeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

// Validate checks the configuration.
func (li *LocalIndex) Validate() error {
	if li.ChunkTokens < 0 {
		return fmt.Errorf("chunk_tokens must be positive, got %d", li.ChunkTokens)
	}
	if li.ChunkTokens > 0 && li.ChunkTokens < 32 {
		return fmt.Errorf("chunk_tokens must be at least 32, got %d", li.ChunkTokens)
	}
	if li.RRFK < 0 {
		return fmt.Errorf("rrf_k must not be negative, got %v", li.RRFK)
	}
	switch li.Semantic {
	case "", SemanticTerms, SemanticOff:
	default:
		return fmt.Errorf("semantic must be terms or off, got %q", li.Semantic)
	}
	if (len(li.Paths) > 0 || len(li.Documents) > 0) && li.ArticlesFromRaw != nil {
		return errors.New("give paths and documents, or articles_from, not both")
	}
	for i := range li.Documents {
		if _, err := li.Documents[i].compile(); err != nil {
			return fmt.Errorf("documents[%d]: %v", i, err)
		}
	}
	if li.Embeddings != nil {
		return li.Embeddings.validate()
	}
	return nil
}

// Cleanup releases this config's reference to the shared index. Requests
// of the old config still in flight keep their pointer to it.
func (li *LocalIndex) Cleanup() error {
	if li.poolKey != "" {
		_, err := pool.Delete(li.poolKey)
		li.poolKey = ""
		return err
	}
	return nil
}

// Stats returns the statistics of the build that produced the index.
func (li *LocalIndex) Stats() Stats {
	if li.shared == nil {
		return Stats{}
	}
	return li.shared.stats
}

// Hybrid reports whether searches fuse vector similarity with BM25.
func (li *LocalIndex) Hybrid() bool {
	return li.emb != nil && li.shared != nil && li.shared.ix.dims > 0
}

// QueryEmbeddingFailures counts searches that fell back to BM25 because
// the query could not be embedded.
func (li *LocalIndex) QueryEmbeddingFailures() int64 { return li.qfailures.Load() }

// Search implements grounding.Index: the k most relevant chunks for
// query, best first. Hits carry their BM25 and vector ranks; Score is the
// BM25 score, or the fused reciprocal-rank score in hybrid mode.
func (li *LocalIndex) Search(ctx context.Context, query string, k int, f grounding.Filter) ([]grounding.Hit, error) {
	if li.shared == nil {
		return nil, errors.New("local_index: not provisioned")
	}
	if k <= 0 || strings.TrimSpace(query) == "" {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ix := li.shared.ix
	allowed := ix.filter(f)
	depth := max(searchDepth, 4*k)
	lex := ix.bm25(query, depth, allowed)
	return li.hits(li.fuse(ctx, query, lex, depth, allowed), lex, k, f), nil
}

// filter returns the document predicate of f (nil: everything).
func (ix *index) filter(f grounding.Filter) func(int32) bool {
	if !f.ExcludeInternal && len(f.Numbers) == 0 {
		return nil
	}
	var only map[int32]bool
	if len(f.Numbers) > 0 {
		only = map[int32]bool{}
		for _, n := range f.Numbers {
			for _, d := range ix.numbers[strings.ToLower(n)] {
				only[d] = true
			}
		}
	}
	return func(d int32) bool {
		if f.ExcludeInternal && ix.chunks[d].Internal {
			return false
		}
		return only == nil || only[d]
	}
}

// Interface guards.
var (
	_ caddy.Provisioner  = (*LocalIndex)(nil)
	_ caddy.Validator    = (*LocalIndex)(nil)
	_ caddy.CleanerUpper = (*LocalIndex)(nil)
	_ grounding.Index    = (*LocalIndex)(nil)
	_ caddy.Destructor   = (*shared)(nil)
)
