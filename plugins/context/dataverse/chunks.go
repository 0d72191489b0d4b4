package dataverse

import (
	"sort"
	"strings"
	"unicode"

	"github.com/groundgate/groundgate/grounding"
)

// maxTerms bounds the words a chunk is scored on.
const maxTerms = 32

// Dataverse search ranks whole articles; these mark the words it matched.
const (
	hitOpen  = "{crmhit}"
	hitClose = "{/crmhit}"
)

// queryTerms returns the lower-case words (3 or more letters or digits)
// of the query and of the words search highlighted, without duplicates.
func queryTerms(query string, highlights []string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		for _, w := range strings.FieldsFunc(strings.ToLower(s), notWordRune) {
			if len([]rune(w)) >= 3 && !seen[w] && len(out) < maxTerms {
				seen[w] = true
				out = append(out, w)
			}
		}
	}
	add(query)
	for _, h := range highlights {
		for {
			i := strings.Index(h, hitOpen)
			if i < 0 {
				break
			}
			h = h[i+len(hitOpen):]
			j := strings.Index(h, hitClose)
			if j < 0 {
				break
			}
			add(h[:j])
			h = h[j+len(hitClose):]
		}
	}
	return out
}

func notWordRune(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }

// rankChunks orders one article's chunks by how many of terms each holds
// (most first, ties in article order) and keeps the best one plus every
// other that holds at least one term: an article ranked by search as a
// whole contributes its relevant parts, not all of them.
func rankChunks(chunks []grounding.Chunk, terms []string) []grounding.Chunk {
	if len(chunks) <= 1 {
		return chunks
	}
	type scored struct {
		c grounding.Chunk
		n int
	}
	s := make([]scored, len(chunks))
	for i, c := range chunks {
		text := strings.ToLower(c.Heading + "\n" + c.Text)
		n := 0
		for _, t := range terms {
			if strings.Contains(text, t) {
				n++
			}
		}
		s[i] = scored{c, n}
	}
	sort.SliceStable(s, func(i, j int) bool { return s[i].n > s[j].n })
	out := []grounding.Chunk{s[0].c}
	for _, x := range s[1:] {
		if x.n > 0 {
			out = append(out, x.c)
		}
	}
	return out
}
