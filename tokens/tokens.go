// Package tokens counts tokens the way OpenAI's models do: plain text with
// the o200k_base and cl100k_base encodings, and the prompt tokens of a chat
// completions request body.
//
// The merge ranks are the ones embedded in github.com/pkoukk/tiktoken-go-loader
// (nothing is downloaded); they are loaded on first use of an encoding and
// shared by the whole process. Counting is done by a port of tiktoken's
// encode_ordinary (see bpe.go) that does not allocate for valid UTF-8 text
// (pieces longer than 128 bytes use a heap merge that does), checked in the
// tests against counts recorded from OpenAI's own tokenizer and against
// github.com/pkoukk/tiktoken-go, which it outruns about 40-50 times.
package tokens

import (
	"fmt"
	"strings"
	"sync"

	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
)

// Encoding names.
const (
	o200kBase  = "o200k_base"
	cl100kBase = "cl100k_base"
)

// Encoder counts tokens for one model family. Safe for concurrent use.
type Encoder struct {
	name     string
	core     *bpe
	cache    *countCache // nil: no caching
	funcInit int         // num_tokens_for_tools' func_init for this family
}

// Name returns the encoding name: "o200k_base" or "cl100k_base".
func (e *Encoder) Name() string { return e.name }

// Count returns the number of tokens of text, encoded as ordinary text:
// special-token strings such as "<|endoftext|>" count as the plain text they
// are. Counts of long strings (>= 256 bytes) are kept in a small bounded
// cache, so a system prompt repeated by every request is tokenized once;
// a long text not in it is counted paragraph by paragraph through the
// cache, so a prompt assembled from recurring parts (a meta prompt, the
// knowledge articles it quotes) only tokenizes what is new.
func (e *Encoder) Count(text string) int {
	if e.cache == nil || len(text) < minCachedLen {
		return e.core.count(text)
	}
	k := e.cache.key(text, tagText)
	if n, ok := e.cache.get(k); ok {
		return n
	}
	n := 0
	for rest := text; rest != ""; {
		j := nextSegment(rest)
		n += e.countSegment(rest[:j], j == len(text))
		rest = rest[j:]
	}
	e.cache.put(k, n)
	return n
}

// countSegment counts one paragraph, through the cache when it is long
// enough (whole: the segment is the whole text, already looked up).
func (e *Encoder) countSegment(seg string, whole bool) int {
	if whole || len(seg) < minCachedLen {
		return e.core.count(seg)
	}
	k := e.cache.key(seg, tagText)
	if n, ok := e.cache.get(k); ok {
		return n
	}
	n := e.core.count(seg)
	e.cache.put(k, n)
	return n
}

// nextSegment returns the end of text's first segment: just after its
// first blank line ("\n\n") followed by a printable ASCII character other
// than '/', or len(text). Boundaries depend only on the text around them,
// so a paragraph is the same segment wherever it appears (the cache finds
// an article's paragraphs whatever precedes them).
//
// Such a position is a boundary of the encodings' pre-tokenizer pieces,
// and pieces are encoded independently, so the count of a text is the sum
// of its segments' counts. In both patterns no piece continues from a
// newline into a following non-space character: letters and digits never
// take a newline, \s*[\r\n]+ ends at the newline, and the punctuation
// piece ?[^\s\p{L}\p{N}]+[\r\n]* ends after its newlines, except that
// o200k's takes '/' after them ([\r\n/]*), hence the exception. Non-ASCII
// characters are excluded because some are Unicode spaces.
func nextSegment(text string) int {
	for i := 0; i < len(text); {
		j := strings.Index(text[i:], "\n\n")
		if j < 0 {
			break
		}
		p := i + j + 2
		if p < len(text) {
			if c := text[p]; c > ' ' && c < 0x7f && c != '/' {
				return p
			}
		}
		i = i + j + 1
	}
	return len(text)
}

// The encoders are built on first use, once per process.
var loadO200k, loadCl100k = newLoaders()

func newLoaders() (o200k, cl100k func() (*Encoder, error)) {
	return sync.OnceValues(func() (*Encoder, error) { return load(o200kBase, "o200k_base.tiktoken", true, 7) }),
		sync.OnceValues(func() (*Encoder, error) { return load(cl100kBase, "cl100k_base.tiktoken", false, 10) })
}

func load(name, file string, o200k bool, funcInit int) (*Encoder, error) {
	initClasses()
	// The offline loader reads the rank file embedded in the binary; it
	// only uses the base name of its argument and never touches the network.
	ranks, err := tiktoken_loader.NewOfflineLoader().LoadTiktokenBpe(file)
	if err != nil {
		return nil, fmt.Errorf("tokens: loading %s: %w", name, err)
	}
	// Every single byte must be a token (pieceCount relies on it).
	for c := range 256 {
		if _, ok := ranks[string([]byte{byte(c)})]; !ok {
			return nil, fmt.Errorf("tokens: %s: byte %#x has no rank", name, c)
		}
	}
	table, err := newRankTable(ranks)
	if err != nil {
		return nil, fmt.Errorf("tokens: %s: %w", name, err)
	}
	return &Encoder{
		name:     name,
		core:     &bpe{ranks: table, o200k: o200k},
		cache:    newCountCache(),
		funcInit: funcInit,
	}, nil
}

// ForEncoding returns the shared encoder for "o200k_base" or "cl100k_base".
func ForEncoding(name string) (*Encoder, error) {
	switch name {
	case o200kBase:
		return loadO200k()
	case cl100kBase:
		return loadCl100k()
	}
	return nil, fmt.Errorf("tokens: unknown encoding %q (known: %s, %s)", name, o200kBase, cl100kBase)
}

// modelFamilies maps model-name prefixes to encodings. A prefix matches the
// name itself and names that continue it after a separator (- _ : @ /), e.g.
// "gpt-4o" matches "gpt-4o-mini-2024-07-18" but "gpt-4" does not match
// "gpt-4o" or "gpt-4.1"; a prefix that ends in "-" or "." matches any
// continuation. The longest matching prefix wins.
var modelFamilies = []struct{ prefix, encoding string }{
	{"gpt-4o", o200kBase},
	{"chatgpt-4o", o200kBase},
	{"gpt-4.1", o200kBase},
	{"gpt-4.5", o200kBase},
	{"gpt-5", o200kBase},
	{"gpt-5.", o200kBase}, // gpt-5.1, gpt-5.2, ...
	{"o1", o200kBase},
	{"o3", o200kBase},
	{"o4", o200kBase},
	{"gpt-oss", o200kBase}, // o200k_harmony: o200k_base ranks plus special tokens
	{"gpt-4", cl100kBase},  // gpt-4, gpt-4-turbo, gpt-4-32k, gpt-4-0613, ...
	{"gpt-3.5-turbo", cl100kBase},
	{"gpt-35-turbo", cl100kBase}, // Azure spelling
	{"text-embedding-ada-002", cl100kBase},
	{"text-embedding-3", cl100kBase}, // -small, -large
	{"davinci-002", cl100kBase},
	{"babbage-002", cl100kBase},
}

var knownModels = func() string {
	names := make([]string, len(modelFamilies))
	for i, f := range modelFamilies {
		names[i] = f.prefix + "*"
	}
	return strings.Join(names, ", ")
}()

// encodingForModel returns the encoding name for a model or Azure model name
// ("gpt-4o-2024-08-06", "gpt-35-turbo-0125", "ft:gpt-4o-mini:org::id"),
// case-insensitively, or "" if the model is unknown.
func encodingForModel(model string) string {
	m := strings.TrimSpace(model)
	for i := 0; i < len(m); i++ {
		if c := m[i]; c >= 'A' && c <= 'Z' {
			m = strings.ToLower(m)
			break
		}
	}
	m = strings.TrimPrefix(m, "ft:")
	best, enc := -1, ""
	for _, f := range modelFamilies {
		p := f.prefix
		if !strings.HasPrefix(m, p) || len(p) <= best {
			continue
		}
		open := p[len(p)-1] == '-' || p[len(p)-1] == '.'
		if len(m) > len(p) && !open && !isSep(m[len(p)]) {
			continue
		}
		best, enc = len(p), f.encoding
	}
	return enc
}

// isSep reports whether c separates a model family from a suffix. '.' is
// not one: "gpt-4.1" is not a "gpt-4".
func isSep(c byte) bool {
	return c == '-' || c == '_' || c == ':' || c == '@' || c == '/'
}

// ForModel maps a model or Azure deployment/model name to its encoder:
// o200k_base for gpt-4o*, chatgpt-4o*, gpt-4.1*, gpt-4.5*, gpt-5*, o1*, o3*,
// o4* and gpt-oss*; cl100k_base for gpt-4 (incl. gpt-4-turbo, gpt-4-32k),
// gpt-3.5-turbo*, gpt-35-turbo* (Azure spelling), text-embedding-ada-002 and
// text-embedding-3-*. Date/version suffixes resolve by prefix, the longest
// prefix winning. Unknown names return an error that names the model and
// the known names. Encodings are loaded once per process, on first use, and
// shared.
func ForModel(model string) (*Encoder, error) {
	enc := encodingForModel(model)
	if enc == "" {
		return nil, fmt.Errorf("tokens: unknown model %q (known model names: %s; a name matches with any suffix after -, _, :, @ or /)", model, knownModels)
	}
	return ForEncoding(enc)
}
