package grounding

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/groundgate/groundgate/policies"
	"github.com/groundgate/groundgate/tokens"
)

// Limits bound what Pack puts in the context.
type Limits struct {
	// Tokens is the budget: the tokens of the records and the articles as
	// a meta prompt template prints them ({{.Records}} and {{.Articles}},
	// fences included), counted with the request's encoder. <= 0 packs
	// nothing.
	Tokens int
	// Records caps the number of records (0: no cap).
	Records int
	// Docs caps the number of article chunks, [doc1]…[docN] (0: no cap).
	Docs int
	// PerArticle caps the chunks taken from one article (0: no cap).
	PerArticle int
}

// Doc maps a citation marker to what it stands for, for post-processing:
// checking and rewriting [docN] in the answer and building Azure-style
// context.citations (title, url, chunk_id, content).
type Doc struct {
	Ref       string  `json:"ref"` // "doc1"
	ArticleID string  `json:"article_id"`
	Number    string  `json:"number,omitempty"` // articlepublicnumber
	Title     string  `json:"title"`
	URL       string  `json:"url,omitempty"`
	ChunkID   string  `json:"chunk_id"`
	Content   string  `json:"content"`
	Score     float64 `json:"score"`
}

// Packed is the context that reaches the model.
type Packed struct {
	// Records and Articles go into policies.Data. Articles[i].Ref is
	// "doc<i+1>" and Docs[i] is its mapping.
	Records  []policies.Record
	Articles []policies.Article
	Docs     []Doc
	// Tokens is the exact token count of {{.Records}} plus {{.Articles}}
	// as rendered; always <= Limits.Tokens.
	Tokens int
	// Duplicates counts records and hits dropped as duplicates;
	// OverBudget those that did not fit the budget or the caps.
	Duplicates, OverBudget int
}

// Doc returns the mapping of a marker ("doc2" or "[doc2]").
func (p *Packed) Doc(ref string) (Doc, bool) {
	ref = strings.TrimSuffix(strings.TrimPrefix(ref, "["), "]")
	n, ok := strings.CutPrefix(ref, "doc")
	if !ok {
		return Doc{}, false
	}
	i, err := strconv.Atoi(n)
	if err != nil || i < 1 || i > len(p.Docs) || n[0] == '0' {
		return Doc{}, false
	}
	return p.Docs[i-1], true
}

// Pack puts records and search hits into a context of at most
// budgetTokens tokens: records first (in the given order), then hits in
// the given (rank) order. Duplicates are dropped (records by entity and
// id; hits by article and chunk id, or by identical text), and so is
// every item that does not fit the rest of the budget (later, smaller
// items may still fit). Kept chunks are numbered doc1…docN in rank order.
func Pack(records []Record, hits []Hit, budgetTokens int, enc *tokens.Encoder) (Packed, error) {
	return PackLimits(records, hits, Limits{Tokens: budgetTokens}, enc)
}

// PackLimits is Pack with caps on records, chunks and chunks per article.
func PackLimits(records []Record, hits []Hit, lim Limits, enc *tokens.Encoder) (Packed, error) {
	var p Packed
	if enc == nil {
		return p, errors.New("grounding: Pack needs a token encoder")
	}
	if lim.Tokens <= 0 {
		p.OverBudget = len(records) + len(hits)
		return p, nil
	}

	// Candidates, without duplicates.
	recs := make([]policies.Record, 0, len(records))
	seenRec := make(map[string]bool, len(records))
	for i := range records {
		r := &records[i]
		k := r.Entity + "\x00" + strings.ToLower(r.ID)
		if seenRec[k] {
			p.Duplicates++
			continue
		}
		seenRec[k] = true
		recs = append(recs, r.Policy())
	}
	// Each candidate rendered as the template prints it, from one
	// template execution per kind.
	recText, err := RenderRecords(recs)
	if err != nil {
		return Packed{}, err
	}
	recParts := splitFenced(recText, "record", len(recs))
	if recParts == nil {
		return Packed{}, errors.New("grounding: unexpected rendering of the context")
	}

	// Greedy first fit. The tokens of items joined by "\n\n" are the sum
	// of each item's tokens plus what the separator adds after the closing
	// ">>>" (the tokenizers join punctuation with the newlines that follow
	// it, and the next "<<<" starts a new piece); the total is checked
	// with one exact count at the end.
	sep := enc.Count(fenceEnd+"\n\n") - enc.Count(fenceEnd)
	var keptRec []string
	sum := 0
	for i, part := range recParts {
		if lim.Records > 0 && len(p.Records) >= lim.Records {
			p.OverBudget++
			continue
		}
		n := enc.Count(part)
		add := n
		if len(keptRec) > 0 {
			add += sep
		}
		if sum+add > lim.Tokens {
			p.OverBudget++
			continue
		}
		sum += add
		p.Records = append(p.Records, recs[i])
		keptRec = append(keptRec, part)
	}
	used := 0
	if len(keptRec) > 0 {
		used = enc.Count(strings.Join(keptRec, "\n\n"))
	}
	// Hits in rank order, each hashed, rendered and counted only while it
	// may still be kept: the search returns a few times more candidates
	// than are kept, and rendering them all was most of the cost.
	sum = 0
	perArticle := make(map[string]int, min(len(hits), 8))
	seenChunk := make(map[string]bool, min(len(hits), 8))
	seenText := make(map[uint64]bool, min(len(hits), 8))
	for i := range hits {
		h := &hits[i]
		if lim.Docs > 0 && len(p.Articles) >= lim.Docs {
			p.OverBudget++
			continue
		}
		ck := h.ArticleID + "\x00" + h.ChunkID
		if seenChunk[ck] {
			p.Duplicates++
			continue
		}
		th := h.TextHash
		if th == 0 {
			th = textHash(h.Text)
		}
		if seenText[th] {
			p.Duplicates++
			continue
		}
		seenChunk[ck], seenText[th] = true, true
		if lim.PerArticle > 0 && perArticle[h.ArticleID] >= lim.PerArticle {
			p.OverBudget++
			continue
		}
		ref := docRef(len(p.Articles) + 1)
		a, add := printCache.article(h, ref, enc) // a keeps its printing for the meta prompt
		if len(p.Articles) > 0 {
			add += sep
		}
		if used+sum+add > lim.Tokens {
			p.OverBudget++
			continue
		}
		sum += add
		p.Articles = append(p.Articles, a)
		p.Docs = append(p.Docs, Doc{Ref: ref, ArticleID: h.ArticleID, Number: h.Number, Title: h.Title, URL: h.URL,
			ChunkID: h.ChunkID, Content: h.Text, Score: h.Score})
		perArticle[h.ArticleID]++
	}

	// The sum is the exact count of what templates print: each article
	// after the first starts with "<<<" right after the "\n\n" joining it
	// to the one before, a boundary of the tokenizers' pieces (tokens.Count
	// splits long texts there too), and each ends with ">>>", whose join
	// with the "\n\n" sep accounts for. Joining and counting the articles
	// again cost a copy of them per request. The tests check the sum
	// against a count of the rendering, for every budget.
	p.Tokens = used + sum
	return p, nil
}

const fenceEnd = ">>>"

func docRef(n int) string {
	if n < len(docRefs) {
		return docRefs[n]
	}
	return "doc" + strconv.Itoa(n)
}

// docRefs are the references of a request's first articles, made once.
var docRefs = func() (r [33]string) {
	for i := range r {
		r[i] = "doc" + strconv.Itoa(i)
	}
	return r
}()

// splitFenced splits the template's rendering of n records or articles
// into the n items. Escaping guarantees that "<<<" never occurs inside
// an item's text, so the separator "\n\n<<<label" only occurs between
// items. nil when the count does not match.
func splitFenced(s, label string, n int) []string {
	if n == 0 {
		return []string{}
	}
	parts := strings.Split(s, "\n\n"+"<<<"+label)
	if len(parts) != n {
		return nil
	}
	for i := 1; i < len(parts); i++ {
		parts[i] = "<<<" + label + parts[i]
	}
	return parts
}

// CountContext returns the tokens of records and articles as a template
// prints {{.Records}} and {{.Articles}}.
func CountContext(records []policies.Record, articles []policies.Article, enc *tokens.Encoder) (int, error) {
	rs, err := RenderRecords(records)
	if err != nil {
		return 0, err
	}
	as, err := RenderArticles(articles)
	if err != nil {
		return 0, err
	}
	n := 0
	if rs != "" {
		n += enc.Count(rs)
	}
	if as != "" {
		n += enc.Count(as)
	}
	return n, nil
}

// RenderRecords returns records exactly as a meta prompt template prints
// {{.Records}} (fenced, escaped).
func RenderRecords(records []policies.Record) (string, error) {
	if len(records) == 0 {
		return "", nil
	}
	rr, err := renderers()
	if err != nil {
		return "", err
	}
	return rr.rec.Render(policies.Data{Records: records})
}

// RenderArticles returns articles exactly as a meta prompt template
// prints {{.Articles}} (fenced, escaped).
func RenderArticles(articles []policies.Article) (string, error) {
	if len(articles) == 0 {
		return "", nil
	}
	rr, err := renderers()
	if err != nil {
		return "", err
	}
	return rr.art.Render(policies.Data{Articles: articles})
}

type rendererSet struct{ rec, art *policies.MetaPrompt }

// renderers compiles, once, two policies whose templates print only
// {{.Records}} or {{.Articles}}: the policies package is the one
// authority on how context is fenced, so counts match what templates print.
var renderers = sync.OnceValues(func() (*rendererSet, error) {
	set, err := policies.Parse(map[string][]byte{
		"grounding-records.yaml":  []byte("name: grounding-records\nmatch: {model: grounding-measure-records}\nmeta_prompt:\n  template: '{{.Records}}'\n"),
		"grounding-articles.yaml": []byte("name: grounding-articles\nmatch: {model: grounding-measure-articles}\nmeta_prompt:\n  template: '{{.Articles}}'\n"),
	})
	if err != nil {
		return nil, fmt.Errorf("grounding: compiling the context renderers: %w", err)
	}
	return &rendererSet{rec: set.Policy("grounding-records").Meta, art: set.Policy("grounding-articles").Meta}, nil
})

// TextHash hashes text with case and whitespace folded (FNV-1a), as Pack
// does to find the same passage published twice; see Chunk.TextHash.
func TextHash(s string) uint64 { return textHash(s) }

func textHash(s string) uint64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	space, started := false, false
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			if c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' {
				space = true
				continue
			}
			if space && started {
				h = (h ^ ' ') * prime
			}
			space, started = false, true
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			h = (h ^ uint64(c)) * prime
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if unicode.IsSpace(r) {
			space = true
			continue
		}
		if space && started {
			h = (h ^ ' ') * prime
		}
		space, started = false, true
		var buf [utf8.UTFMax]byte
		n := utf8.EncodeRune(buf[:], unicode.ToLower(r))
		for _, b := range buf[:n] {
			h = (h ^ uint64(b)) * prime
		}
	}
	return h
}
