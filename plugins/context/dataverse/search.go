package dataverse

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"unicode"

	"github.com/groundgate/groundgate/grounding"
	"github.com/groundgate/groundgate/tokens"
)

const (
	// maxSearchText is Dataverse search's limit on the search text.
	maxSearchText = 100
	// maxSearchTop is Dataverse search's limit on top.
	maxSearchTop = 100
	// searchPath is the Dataverse search endpoint, under the environment URL.
	searchPath = "/api/search/v2.0/query"
)

// searchColumns are the knowledgearticle columns search returns.
var searchColumns = strings.Split(articleSelect, ",")[1:] // all but the id: results carry it as Id

// searcher is the running search configuration.
type searcher struct {
	enc         *tokens.Encoder
	chunkTokens int
	entities    []string
	columns     []string          // SearchColumns
	match       map[string]string // MatchColumns
}

// searchEntity is one element of the request's entities string.
type searchEntity struct {
	Name          string   `json:"Name"`
	SelectColumns []string `json:"SelectColumns"`
	SearchColumns []string `json:"SearchColumns,omitempty"`
	Filter        string   `json:"Filter,omitempty"`
}

// searchRequest is the body of POST /api/search/v2.0/query. entities is a
// JSON document encoded as a string, as the API wants it.
type searchRequest struct {
	Search   string `json:"search"`
	Entities string `json:"entities"`
	Top      int    `json:"top"`
}

// Search implements grounding.Index with Dataverse search: the query
// (cut to 100 characters) over published knowledge articles, top
// min(k, 100) articles, each split into chunks with grounding's chunker;
// an article contributes its chunks that hold the query's or the
// highlighted words (always at least its best one), best first. Score is
// the article's search score; Lexical is the hit's 1-based rank (search
// is a relevance ranking, there is no vector ranking). Articles whose
// content search does not return (content not in the search index) are
// read from the Web API in one request.
func (d *Dataverse) Search(ctx context.Context, query string, k int, f grounding.Filter) ([]grounding.Hit, error) {
	return d.searchWith(ctx, query, k, f, nil)
}

func (d *Dataverse) searchWith(ctx context.Context, query string, k int, f grounding.Filter, more []string) ([]grounding.Hit, error) {
	if d.c == nil {
		return nil, errors.New("dataverse: not provisioned")
	}
	if d.search == nil {
		return nil, errors.New("dataverse: search is off (set search on to use Dataverse as an index)")
	}
	text := searchText(query)
	if text == "" || k <= 0 {
		return nil, nil
	}
	filter, ok := searchFilter(f)
	if !ok {
		return nil, nil // only unusable article numbers: nothing can match
	}
	for _, c := range more {
		filter += " and " + c
	}
	body, err := d.searchBody(text, min(k, maxSearchTop), filter)
	if err != nil {
		return nil, err
	}
	data, err := d.c.do(ctx, http.MethodPost, d.c.env+searchPath, "POST "+searchPath, body, "")
	if err != nil {
		return nil, err
	}
	items, err := parseSearchResponse(data)
	if err != nil {
		return nil, errors.New("dataverse: POST " + searchPath + ": " + err.Error())
	}
	if err := d.completeContent(ctx, items); err != nil {
		return nil, err
	}
	var hits []grounding.Hit
	for _, it := range items {
		if it.Entity != grounding.EntityKnowledgeArticle || it.ID == "" {
			continue
		}
		it.Attrs["knowledgearticleid"] = it.ID
		a := d.article(it.Attrs)
		if f.ExcludeInternal && a.Internal || len(f.Numbers) > 0 && !hasFold(f.Numbers, a.Number) {
			continue // the search filter should have left it out already
		}
		chunks := rankChunks(grounding.ChunkArticle(a, d.search.enc, d.search.chunkTokens), queryTerms(text, it.Highlights))
		for i, c := range chunks {
			if f.PerArticle > 0 && i >= f.PerArticle {
				break
			}
			hits = append(hits, grounding.Hit{Chunk: c, Score: it.Score, Lexical: len(hits) + 1})
			if len(hits) == k {
				return hits, nil
			}
		}
	}
	return hits, nil
}

// searchBody builds the request body.
func (d *Dataverse) searchBody(text string, top int, filter string) ([]byte, error) {
	ents := make([]searchEntity, 0, len(d.search.entities))
	for _, e := range d.search.entities {
		ents = append(ents, searchEntity{Name: e, SelectColumns: searchColumns, SearchColumns: d.search.columns, Filter: filter})
	}
	inner, err := json.Marshal(ents)
	if err != nil {
		return nil, err
	}
	return json.Marshal(searchRequest{Search: text, Entities: string(inner), Top: top})
}

// searchFilter is the knowledgearticle filter of a search: published
// articles, not internal ones when asked, only the given numbers when
// asked (values escaped as in $filter). ok is false when numbers were
// asked for but none can be an OData literal.
func searchFilter(f grounding.Filter) (string, bool) {
	filter := "statecode eq 3"
	if f.ExcludeInternal {
		filter += " and isinternal eq false"
	}
	if len(f.Numbers) > 0 {
		var cs []clause
		for _, n := range f.Numbers {
			if lit, ok := literal(kindText, n); ok && len(cs) < maxClauses {
				cs = append(cs, clause{prop: "articlepublicnumber", lit: lit})
			}
		}
		if len(cs) == 0 {
			return "", false
		}
		filter += " and " + anyOf(cs)
	}
	return filter, true
}

// completeContent reads, in one request, the articles of items whose
// content search did not return.
func (d *Dataverse) completeContent(ctx context.Context, items []searchItem) error {
	var ids []string
	for _, it := range items {
		if _, ok := it.Attrs["content"]; !ok && it.Entity == grounding.EntityKnowledgeArticle && isGUID(it.ID) {
			ids = append(ids, it.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	rows, err := d.fetchByID(ctx, entities[grounding.EntityKnowledgeArticle], ids, articleSelect)
	if err != nil {
		return err
	}
	for _, it := range items {
		r := rows[strings.ToLower(it.ID)]
		if r == nil {
			continue
		}
		for k, v := range r {
			if _, have := it.Attrs[k]; !have {
				it.Attrs[k] = v
			}
		}
	}
	return nil
}

// searchText makes a search text of a user message: control characters
// become spaces, runs of space collapse, and the text is cut to 100
// characters at a word boundary when it can be.
func searchText(q string) string {
	q = strings.Join(strings.FieldsFunc(q, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }), " ")
	r := []rune(q)
	if len(r) <= maxSearchText {
		return q
	}
	cut := r[:maxSearchText]
	if i := strings.LastIndexByte(string(cut), ' '); i > maxSearchText/2 {
		return string(cut)[:i]
	}
	return string(cut)
}

func hasFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
