package localindex

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/groundgate/groundgate/grounding"
	"github.com/groundgate/groundgate/tokens"
)

// snapshotVersion changes with the snapshot's Go types.
const snapshotVersion = 1

// unit is one source of articles, re-indexed only when its hash changes:
// a file, or one article pulled from an article source.
type unit struct {
	key     string // "file:/abs/path", "embedded:knowledgearticles/KA-01001.md", "record:<id>"
	name    string // file name for the parser and messages
	hash    string // hex SHA-256 of the content
	data    []byte
	article *grounding.Article // record units
}

func fileUnit(key, name string, data []byte) unit {
	sum := sha256.Sum256(data)
	return unit{key: key, name: name, hash: hex.EncodeToString(sum[:]), data: data}
}

func articleUnit(a grounding.Article) (unit, error) {
	b, err := json.Marshal(a)
	if err != nil {
		return unit{}, err
	}
	sum := sha256.Sum256(b)
	return unit{key: "record:" + a.ID, name: "article " + a.Number, hash: hex.EncodeToString(sum[:]), article: &a}, nil
}

// snapshot is what is persisted: every unit's chunks with their analyzed
// terms and vectors, so that a restart or reload re-reads nothing it has
// already indexed.
type snapshot struct {
	Version  int
	Settings string // chunking, analyzer and weights; a change rebuilds everything
	Embed    string // embeddings identity of the stored vectors ("" none)
	Units    map[string]*snapUnit
}

type snapUnit struct {
	Hash   string
	Chunks []snapChunk
}

type snapChunk struct {
	Chunk grounding.Chunk
	Terms []string
	TF    []float32
	Len   float32
	Vec   []float32
}

// Stats describe the last build of an index.
type Stats struct {
	Units     int // files or pulled articles
	Articles  int
	Chunks    int
	Terms     int
	Reused    int      // units taken from the snapshot unchanged
	Reindexed int      // units parsed, chunked and analyzed by this build
	Removed   int      // units in the snapshot that are gone
	Embedded  int      // chunks embedded by this build
	Loaded    bool     // a usable snapshot was read
	Saved     bool     // the snapshot was written
	Keys      []string // keys of the re-indexed units (for tests and logs)
	Snapshot  string   // snapshot file ("" when not persisted)
}

type buildConfig struct {
	settings    string
	embedID     string
	emb         *embedder
	enc         *tokens.Encoder
	chunkTokens int
	path        string
	semantic    bool
}

func settingsString(chunkTokens int, enc *tokens.Encoder) string {
	return fmt.Sprintf("s%d|a%d|w%s|c%d|%s", snapshotVersion, analyzerVersion, fieldWeightsVersion, chunkTokens, enc.Name())
}

// build indexes units, reusing the snapshot at cfg.path for unchanged ones,
// and writes the snapshot back when anything changed.
func build(ctx context.Context, units []unit, cfg buildConfig, warn func(string, error)) (*index, Stats, error) {
	var st Stats
	st.Snapshot = cfg.path
	prev, err := loadSnapshot(cfg.path)
	if err != nil {
		warn("ignoring unreadable index snapshot", err)
	}
	if prev != nil && (prev.Version != snapshotVersion || prev.Settings != cfg.settings) {
		prev = nil
	}
	st.Loaded = prev != nil
	next := &snapshot{Version: snapshotVersion, Settings: cfg.settings, Embed: cfg.embedID, Units: make(map[string]*snapUnit, len(units))}

	sort.Slice(units, func(i, j int) bool { return units[i].key < units[j].key })
	for _, u := range units {
		if _, dup := next.Units[u.key]; dup {
			continue
		}
		if prev != nil {
			if pu := prev.Units[u.key]; pu != nil && pu.Hash == u.hash {
				if prev.Embed != cfg.embedID {
					for i := range pu.Chunks {
						pu.Chunks[i].Vec = nil
					}
				}
				next.Units[u.key] = pu
				st.Reused++
				continue
			}
		}
		su, err := indexUnit(u, cfg)
		if err != nil {
			return nil, st, err
		}
		next.Units[u.key] = su
		st.Reindexed++
		st.Keys = append(st.Keys, u.key)
	}
	if prev != nil {
		for k := range prev.Units {
			if next.Units[k] == nil {
				st.Removed++
			}
		}
	}

	keys := make([]string, 0, len(next.Units))
	for k := range next.Units {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var all []snapChunk
	articles := map[string]bool{}
	for _, k := range keys {
		for _, c := range next.Units[k].Chunks {
			all = append(all, c)
			articles[c.Chunk.ArticleID] = true
		}
	}

	if cfg.emb != nil {
		var texts []string
		var where []*snapChunk
		for _, k := range keys {
			cs := next.Units[k].Chunks
			for i := range cs {
				if cs[i].Vec == nil {
					texts = append(texts, embedText(cs[i].Chunk))
					where = append(where, &cs[i])
				}
			}
		}
		if len(texts) > 0 {
			vecs, err := cfg.emb.embedAll(ctx, texts)
			if err != nil {
				return nil, st, err
			}
			for i, v := range vecs {
				where[i].Vec = v
			}
			st.Embedded = len(vecs)
			// refresh the copies in all
			all = all[:0]
			for _, k := range keys {
				all = append(all, next.Units[k].Chunks...)
			}
		}
	} else {
		for i := range all {
			all[i].Vec = nil
		}
	}

	ix := buildIndex(all, cfg.semantic)
	st.Units, st.Articles, st.Chunks, st.Terms = len(next.Units), len(articles), len(all), len(ix.terms)

	if cfg.path != "" && (prev == nil || st.Reindexed > 0 || st.Removed > 0 || st.Embedded > 0 || prev.Embed != cfg.embedID) {
		if err := saveSnapshot(cfg.path, next); err != nil {
			warn("could not write the index snapshot", err)
		} else {
			st.Saved = true
		}
	}
	return ix, st, nil
}

func embedText(c grounding.Chunk) string {
	var b strings.Builder
	b.WriteString(c.Title)
	if c.Heading != "" {
		b.WriteString("\n")
		b.WriteString(c.Heading)
	}
	b.WriteString("\n")
	b.WriteString(c.Text)
	return b.String()
}

func indexUnit(u unit, cfg buildConfig) (*snapUnit, error) {
	var arts []grounding.Article
	if u.article != nil {
		arts = []grounding.Article{*u.article}
	} else {
		var err error
		arts, err = grounding.ParseArticleFile(u.name, u.data)
		if err != nil {
			return nil, err
		}
	}
	su := &snapUnit{Hash: u.hash}
	for _, a := range arts {
		for _, c := range grounding.ChunkArticle(a, cfg.enc, cfg.chunkTokens) {
			terms, tf, l := docTerms(c, a.Keywords, a.Description)
			su.Chunks = append(su.Chunks, snapChunk{Chunk: c, Terms: terms, TF: tf, Len: l})
		}
	}
	return su, nil
}

func loadSnapshot(path string) (*snapshot, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s snapshot
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if s.Units == nil {
		s.Units = map[string]*snapUnit{}
	}
	return &s, nil
}

// saveSnapshot writes atomically: a temporary file renamed over the old
// one, so a concurrent reader (the other config during a reload) never
// sees half a file.
func saveSnapshot(path string, s *snapshot) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(s); err != nil {
		return err
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := path + ".tmp-" + hex.EncodeToString(rnd[:])
	if err := os.WriteFile(tmp, buf.Bytes(), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// fingerprint identifies the content of a set of units.
func fingerprint(units []unit) string {
	keys := make([]string, 0, len(units))
	for _, u := range units {
		keys = append(keys, u.key+"="+u.hash)
	}
	sort.Strings(keys)
	sum := sha256.Sum256([]byte(strings.Join(keys, "\n")))
	return hex.EncodeToString(sum[:])
}
