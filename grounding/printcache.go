package grounding

import (
	"sync"
	"sync/atomic"

	"github.com/groundgate/groundgate/policies"
	"github.com/groundgate/groundgate/tokens"
)

// The same chunks come back for request after request, and printing one
// escapes its whole text, then counting hashes it again. printCache
// keeps each chunk as the meta prompt prints it under a given reference
// (doc1, doc2…), with its token count, so packing reads both back.
var printCache articleCache

// maxPrinted bounds the cache: a few thousand chunks, each printed under
// the few references a request uses. Past it the cache starts over.
const maxPrinted = 4096

type articleCache struct {
	m sync.Map // printKey → *printedArticle
	n atomic.Int64
}

// printKey names a chunk's printing. The text is not in the key: an
// entry holds it and is used only while the hit's text is the same.
type printKey struct {
	enc                                    *tokens.Encoder
	ref                                    string
	articleID, chunkID, number, title, url string
}

type printedArticle struct {
	art    policies.Article // Printed() already called: it keeps the text
	tokens int
}

// article returns the hit as the article printed under ref, and the
// tokens of its printing.
func (c *articleCache) article(h *Hit, ref string, enc *tokens.Encoder) (policies.Article, int) {
	k := printKey{enc, ref, h.ArticleID, h.ChunkID, h.Number, h.Title, h.URL}
	if v, ok := c.m.Load(k); ok {
		if p := v.(*printedArticle); p.art.Content == h.Text {
			return p.art, p.tokens
		}
	}
	a := policies.Article{Ref: ref, ID: h.ArticleID, Number: h.Number, Title: h.Title, URL: h.URL, Content: h.Text}
	p := &printedArticle{art: a}
	p.tokens = enc.Count(p.art.Printed())
	if c.n.Add(1) > maxPrinted {
		c.m.Clear()
		c.n.Store(1)
	}
	c.m.Store(k, p)
	return p.art, p.tokens
}
