package localindex

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Entity names are matched in conversations by their words: lower-cased
// runs of letters and digits, apostrophes dropped (Rosa's → rosas), "&"
// read as "and". A name matches where all its words appear in a row, or
// — for names with words shared by many names (hotel, restaurant,
// guest, house, the) — where its other, distinctive words appear in a
// row once the shared words are skipped ("Maharajah Tandoori" names
// MAHARAJAH TANDOORI RESTAURANT). A short name made only of common
// words must be written out in full.

// entityTable is the index's entity names and their documents.
type entityTable struct {
	names []string  // display names, by entity id
	docs  [][]int32 // chunks of each entity
	// full and core map a pattern's first word to the patterns that
	// start with it.
	full, core map[string][]pattern
	generic    map[string]bool // words of many names
}

type pattern struct {
	words  []string
	entity int32
}

// nameWords appends the words of s to dst (see the comment above).
func nameWords(s string, dst []string) []string {
	var w []byte
	flush := func() {
		if len(w) > 0 {
			dst = append(dst, string(w))
			w = w[:0]
		}
	}
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			w = utf8.AppendRune(w, foldRune(r))
		case (r == '\'' || r == '’') && len(w) > 0:
			// Rosa's → rosas
		case r == '&':
			flush()
			dst = append(dst, "and")
		default:
			flush()
		}
		i += n
	}
	flush()
	return dst
}

// genericShare: a word in more than this many names (and at least 3) is
// generic.
const genericShare = 0.02

// buildEntities builds the entity table from each chunk's entity name.
// distinctive reports whether a word is rare enough in the corpus
// outside an entity's own documents (own) to name it alone.
func buildEntities(entityOf []string, distinctive func(word string, own []int32) bool) *entityTable {
	t := &entityTable{full: map[string][]pattern{}, core: map[string][]pattern{}, generic: map[string]bool{}}
	ids := map[string]int32{}
	for doc, name := range entityOf {
		if name == "" {
			continue
		}
		key := strings.ToLower(strings.TrimSpace(name))
		id, ok := ids[key]
		if !ok {
			id = int32(len(t.names))
			ids[key] = id
			t.names = append(t.names, name)
			t.docs = append(t.docs, nil)
		}
		t.docs[id] = append(t.docs[id], int32(doc))
	}
	// Words shared by many names.
	count := map[string]int{}
	words := make([][]string, len(t.names))
	for i, n := range t.names {
		words[i] = nameWords(n, nil)
		seen := map[string]bool{}
		for _, w := range words[i] {
			if !seen[w] {
				seen[w] = true
				count[w]++
			}
		}
	}
	limit := max(3, int(genericShare*float64(len(t.names))+0.5))
	for w, c := range count {
		if c >= limit || stopWords[w] || len(w) == 1 {
			t.generic[w] = true
		}
	}
	for i, ws := range words {
		if len(ws) == 0 {
			continue
		}
		id := int32(i)
		t.full[ws[0]] = append(t.full[ws[0]], pattern{words: ws, entity: id})
		var core []string
		for _, w := range ws {
			if !t.generic[w] {
				core = append(core, w)
			}
		}
		if len(core) == 0 || len(core) == len(ws) {
			continue
		}
		if len(core) == 1 && (distinctive == nil || !distinctive(core[0], t.docs[id])) {
			continue
		}
		t.core[core[0]] = append(t.core[core[0]], pattern{words: core, entity: id})
	}
	return t
}

// mention is an entity found in a conversation.
type mention struct {
	entity int32
	weight float64 // the weight of the newest message naming it
	order  int     // index of that message, newest first
}

// find appends the entities named in text (message order, weight w) to
// dst, once each. words and core are scratch buffers.
func (t *entityTable) find(text string, order int, w float64, dst []mention, words []string) ([]mention, []string) {
	if t == nil || len(t.names) == 0 {
		return dst, words
	}
	words = nameWords(text, words[:0])
	add := func(e int32) {
		for i := range dst {
			if dst[i].entity == e {
				return
			}
		}
		dst = append(dst, mention{entity: e, weight: w, order: order})
	}
	for i, wd := range words {
		for _, p := range t.full[wd] {
			if hasRun(words[i:], p.words, nil) {
				add(p.entity)
			}
		}
		for _, p := range t.core[wd] {
			if hasRun(words[i:], p.words, t.generic) {
				add(p.entity)
			}
		}
	}
	return dst, words
}

// hasRun reports whether text starts with want, skipping words in skip
// between (not before) want's words.
func hasRun(text, want []string, skip map[string]bool) bool {
	j := 0
	for _, w := range text {
		if j == len(want) {
			return true
		}
		if w == want[j] {
			j++
			continue
		}
		if skip == nil || j == 0 || !skip[w] {
			return false
		}
	}
	return j == len(want)
}
