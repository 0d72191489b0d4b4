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
	generic    map[string]bool   // words of many names
	vocab      map[string]bool   // words of names
	fuzzy      map[string]string // one-letter deletions of distinctive name words → the word
	known      func(string) bool // words of the corpus (never taken for typos)
}

type pattern struct {
	words  []string
	entity int32
	// capital: the one distinctive word of a long name must be written
	// with a capital (North in CITY CENTRE NORTH B AND B, not "the north
	// side of town").
	capital bool
}

// nameWords appends the words of s to dst (see the comment above), and
// to caps whether each starts with a capital letter (caps may be nil).
func nameWords(s string, dst []string, caps *[]bool) ([]string, []bool) {
	var w []byte
	var capital bool
	var cs []bool
	if caps != nil {
		cs = (*caps)[:0]
	}
	flush := func() {
		if len(w) > 0 {
			dst = append(dst, string(w))
			cs = append(cs, capital)
			w = w[:0]
		}
	}
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			if len(w) == 0 {
				capital = unicode.IsUpper(r)
			}
			w = utf8.AppendRune(w, foldRune(r))
		case (r == '\'' || r == '’') && len(w) > 0:
			// Rosa's → rosas
		case r == '&':
			flush()
			dst = append(dst, "and")
			cs = append(cs, false)
		default:
			flush()
		}
		i += n
	}
	flush()
	if caps != nil {
		*caps = cs
	}
	return dst, cs
}

// genericShare: a word in more than this many names (and at least 3) is
// generic.
const genericShare = 0.02

// buildEntities builds the entity table from each chunk's entity name.
// distinctive reports whether a word is rare enough in the corpus
// outside an entity's own documents (own) to name it alone.
// known reports whether a word is a word of the corpus.
func buildEntities(entityOf []string, distinctive func(word string, own []int32) bool, known func(string) bool) *entityTable {
	t := &entityTable{full: map[string][]pattern{}, core: map[string][]pattern{}, generic: map[string]bool{},
		vocab: map[string]bool{}, fuzzy: map[string]string{}}
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
		words[i], _ = nameWords(n, nil, nil)
		seen := map[string]bool{}
		for _, w := range words[i] {
			if !seen[w] {
				seen[w] = true
				count[w]++
			}
		}
	}
	limit := max(3, int(genericShare*float64(len(t.names))+0.5))
	shared := map[string]bool{}
	for w, c := range count {
		if c >= limit {
			shared[w] = true
		}
		if c >= limit || stopWords[w] || len(w) == 1 {
			t.generic[w] = true
		}
	}
	prefixes := map[string]int{} // how many names start with each word run
	for _, ws := range words {
		for n := 1; n <= len(ws); n++ {
			prefixes[strings.Join(ws[:n], " ")]++
		}
	}
	for i, ws := range words {
		if len(ws) == 0 {
			continue
		}
		id := int32(i)
		t.addFull(ws, id)
		// Compounds written as one word or two (guest house, guesthouse).
		for j := 0; j+1 < len(ws); j++ {
			v := append(append(append([]string(nil), ws[:j]...), ws[j]+ws[j+1]), ws[j+2:]...)
			t.addFull(v, id)
		}
		// The name without its trailing shared words (A and B for A AND
		// B GUEST HOUSE), when no other name starts the same way.
		trim := len(ws)
		for trim > 0 && shared[ws[trim-1]] {
			trim--
		}
		if trim >= 2 && trim < len(ws) && prefixes[strings.Join(ws[:trim], " ")] == 1 {
			t.addFull(ws[:trim], id)
		}
		var core []string
		for _, w := range ws {
			if !t.generic[w] {
				core = append(core, w)
				t.addFuzzy(w)
			}
		}
		if len(core) == 0 || len(core) == len(ws) {
			continue
		}
		if len(core) == 1 && (distinctive == nil || !distinctive(core[0], t.docs[id])) {
			continue
		}
		t.core[core[0]] = append(t.core[core[0]], pattern{words: core, entity: id, capital: len(core) == 1 && len(ws) > 2})
	}
	t.known = known
	return t
}

func (t *entityTable) addFull(ws []string, id int32) {
	t.full[ws[0]] = append(t.full[ws[0]], pattern{words: ws, entity: id})
	for _, w := range ws {
		t.vocab[w] = true
	}
}

// minFuzzy is the shortest name word matched with a typo.
const minFuzzy = 5

// addFuzzy indexes the one-letter deletions of a distinctive name word,
// so that a misspelt mention (Ayesbray for Aylesbray) still names it.
func (t *entityTable) addFuzzy(w string) {
	if utf8.RuneCountInString(w) < minFuzzy {
		return
	}
	for _, d := range deletions(w) {
		if c, ok := t.fuzzy[d]; ok && c != w {
			t.fuzzy[d] = "" // ambiguous
			continue
		}
		t.fuzzy[d] = w
	}
}

// deletions are w without one of its letters.
func deletions(w string) []string {
	out := make([]string, 0, len(w))
	for i, r := range w {
		out = append(out, w[:i]+w[i+utf8.RuneLen(r):])
	}
	return out
}

// canonical maps a word of a conversation that is no word of the corpus
// to the name word it is one typo away from; other words are returned
// as they are.
func (t *entityTable) canonical(w string) string {
	if t.vocab[w] || utf8.RuneCountInString(w) < minFuzzy || (t.known != nil && t.known(w)) {
		return w
	}
	if c := t.fuzzy[w]; c != "" { // a letter missing
		return c
	}
	for _, d := range deletions(w) {
		if t.vocab[d] && !t.generic[d] { // a letter too many
			return d
		}
		if c := t.fuzzy[d]; c != "" { // a letter wrong
			return c
		}
	}
	return w
}

// mention is an entity found in a conversation.
type mention struct {
	entity int32
	weight float64 // the weight of the newest message naming it
	order  int     // index of that message, newest first
}

// find appends the entities named in text (message order, weight w) to
// dst, once each. sc holds scratch buffers.
func (t *entityTable) find(text string, order int, w float64, dst []mention, sc *scratch) []mention {
	if t == nil || len(t.names) == 0 {
		return dst
	}
	words, caps := nameWords(text, sc.words[:0], &sc.caps)
	sc.words = words
	for i, w := range words {
		words[i] = t.canonical(w)
	}
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
			if (!p.capital || caps[i]) && hasRun(words[i:], p.words, t.generic) {
				add(p.entity)
			}
		}
	}
	return dst
}

// scratch are buffers reused across finds.
type scratch struct {
	words []string
	caps  []bool
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
