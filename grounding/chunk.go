package grounding

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/groundgate/groundgate/tokens"
)

// DefaultChunkTokens is the default token cap of one chunk.
const DefaultChunkTokens = 400

// ChunkArticle splits an article's content into chunks of at most
// maxTokens tokens (counted with enc): consecutive sections (a "#"
// heading and the paragraphs under it) are kept together while they fit;
// a section too long for one chunk is split between paragraphs, a
// paragraph too long between sentences, and a sentence too long between
// words (a single word longer than the cap is cut). A section's
// continuation chunks repeat its heading. Chunks are numbered "0", "1", …
// (Chunk.ChunkID); caps below 8 tokens are not supported (one character
// can cost 4). An article without content yields one chunk holding
// its description, or none.
func ChunkArticle(a Article, enc *tokens.Encoder, maxTokens int) []Chunk {
	if maxTokens <= 0 {
		maxTokens = DefaultChunkTokens
	}
	c := chunker{enc: enc, max: maxTokens, a: a}
	content := strings.TrimSpace(normalizeNewlines(a.Content))
	if content == "" {
		content = strings.TrimSpace(a.Description)
	}
	for _, s := range splitSections(content) {
		c.section(s)
	}
	c.flush()
	return c.out
}

type section struct {
	heading string   // the heading line as written ("## Pairing"), "" for text before the first heading
	paras   []string // paragraphs (blank-line separated), trimmed
}

func normalizeNewlines(s string) string {
	if strings.IndexByte(s, '\r') < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}

func isHeading(line string) bool {
	t := strings.TrimLeft(line, "#")
	return len(t) < len(line) && len(line)-len(t) <= 6 && (t == "" || t[0] == ' ')
}

func splitSections(s string) []section {
	var out []section
	cur := section{}
	var para []string
	endPara := func() {
		if len(para) > 0 {
			cur.paras = append(cur.paras, strings.Join(para, "\n"))
			para = para[:0]
		}
	}
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimRight(line, " \t")
		switch {
		case isHeading(line):
			endPara()
			if cur.heading != "" || len(cur.paras) > 0 {
				out = append(out, cur)
			}
			cur = section{heading: line}
		case strings.TrimSpace(line) == "":
			endPara()
		default:
			para = append(para, line)
		}
	}
	endPara()
	if cur.heading != "" || len(cur.paras) > 0 {
		out = append(out, cur)
	}
	return out
}

type chunker struct {
	enc     *tokens.Encoder
	max     int
	a       Article
	out     []Chunk
	buf     []string // paragraphs of the open chunk
	heading string   // the first heading of the open chunk
}

func (c *chunker) count(s string) int { return c.enc.Count(s) }

func (c *chunker) text(parts []string) string { return strings.Join(parts, "\n\n") }

// fits reports whether the open chunk plus parts stays within the cap.
func (c *chunker) fits(parts ...string) bool {
	all := append(append(make([]string, 0, len(c.buf)+len(parts)), c.buf...), parts...)
	return c.count(c.text(all)) <= c.max
}

func (c *chunker) flush() {
	if len(c.buf) == 0 {
		return
	}
	t := c.text(c.buf)
	c.out = append(c.out, Chunk{
		ArticleID: c.a.ID, Number: c.a.Number, Title: c.a.Title, URL: c.a.URL,
		ChunkID: strconv.Itoa(len(c.out)), Heading: headingText(c.heading),
		Text: t, Tokens: c.count(t), Internal: c.a.Internal,
		Entity: c.a.Entity, Metadata: c.a.Metadata,
	})
	c.buf, c.heading = c.buf[:0], ""
}

// onlyHeading reports whether the open chunk holds nothing but heading.
func (c *chunker) onlyHeading(heading string) bool {
	return heading != "" && len(c.buf) == 1 && c.buf[0] == heading
}

func headingText(h string) string { return strings.TrimSpace(strings.TrimLeft(h, "#")) }

func (c *chunker) add(heading, p string) {
	if len(c.buf) == 0 {
		c.heading = heading
	}
	c.buf = append(c.buf, p)
}

func (c *chunker) section(s section) {
	whole := s.paras
	if s.heading != "" {
		whole = append([]string{s.heading}, s.paras...)
	}
	if c.fits(whole...) {
		for _, p := range whole {
			c.add(s.heading, p)
		}
		return
	}
	c.flush()
	if c.count(c.text(whole)) <= c.max {
		for _, p := range whole {
			c.add(s.heading, p)
		}
		return
	}
	// Too long for one chunk: fill chunks paragraph by paragraph, each
	// starting with the heading (when it is short enough to repeat).
	repeat := s.heading != "" && c.count(s.heading) < c.max/2
	start := func() {
		if repeat {
			c.add(s.heading, s.heading)
		}
	}
	room := c.max // for pieces of a long paragraph
	paras := s.paras
	if repeat {
		room = c.max - c.count(s.heading+"\n\n")
	} else if s.heading != "" { // a heading too long to repeat is text like any other
		paras = append([]string{s.heading}, paras...)
	}
	start()
	for _, p := range paras {
		if c.fits(p) {
			c.add(s.heading, p)
			continue
		}
		if len(c.buf) > 0 && !c.onlyHeading(s.heading) {
			c.flush()
			start()
			if c.fits(p) {
				c.add(s.heading, p)
				continue
			}
		}
		// A paragraph longer than the cap: split it into pieces that fit.
		for _, piece := range c.splitLong(p, room) {
			if !c.fits(piece) {
				if !c.onlyHeading(s.heading) {
					c.flush()
					start()
				}
				if !c.fits(piece) { // the heading leaves no room
					c.buf, c.heading = c.buf[:0], ""
				}
			}
			c.add(s.heading, piece)
		}
	}
}

// splitLong splits text longer than the cap at sentence ends, then at
// spaces, then anywhere, into pieces each within the cap.
func (c *chunker) splitLong(p string, max int) []string {
	var out []string
	var cur strings.Builder
	push := func() {
		if cur.Len() > 0 {
			out = append(out, strings.TrimSpace(cur.String()))
			cur.Reset()
		}
	}
	for _, sent := range splitKeep(p, sentenceEnd) {
		if c.count(cur.String()+sent) <= max {
			cur.WriteString(sent)
			continue
		}
		push()
		if c.count(sent) <= max {
			cur.WriteString(sent)
			continue
		}
		for _, w := range splitKeep(sent, spaceEnd) {
			if c.count(cur.String()+w) <= max {
				cur.WriteString(w)
				continue
			}
			push()
			for { // a word longer than the cap: cut it
				n := c.cutAt(w, max)
				if n == len(w) {
					break
				}
				out = append(out, w[:n])
				w = w[n:]
			}
			cur.WriteString(w)
		}
	}
	push()
	res := out[:0]
	for _, s := range out {
		if s != "" {
			res = append(res, s)
		}
	}
	return res
}

// cutAt returns the longest prefix length of w, on a rune boundary and at
// least one rune, that fits max tokens. It looks at a window of w that
// grows while it fits (tokens rarely exceed a few bytes), so cutting a
// long string into pieces costs time linear in its length.
func (c *chunker) cutAt(w string, max int) int {
	window := min(len(w), 8*max+8)
	for window < len(w) && c.count(w[:runeStart(w, window)]) <= max {
		window = min(len(w), 2*window)
	}
	w = w[:window]
	var offs []int // ends of prefixes: after each rune
	for i := range w {
		if i > 0 {
			offs = append(offs, i)
		}
	}
	offs = append(offs, len(w))
	lo, hi := 0, len(offs)-1 // offs[lo] is taken even when it does not fit (one rune)
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if c.count(w[:offs[mid]]) <= max {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return offs[lo]
}

// runeStart moves i back to the start of the rune it falls in.
func runeStart(s string, i int) int {
	for i > 0 && i < len(s) && !utf8.RuneStart(s[i]) {
		i--
	}
	return i
}

func sentenceEnd(s string, i int) bool {
	r, _ := utf8.DecodeRuneInString(s[i:])
	if r != '.' && r != '!' && r != '?' && r != '\n' {
		return false
	}
	return i+1 >= len(s) || s[i+1] == ' ' || s[i+1] == '\n'
}

func spaceEnd(s string, i int) bool {
	r, _ := utf8.DecodeRuneInString(s[i:])
	return unicode.IsSpace(r)
}

// splitKeep splits s after every position where end reports true,
// keeping the separators, so that joining the parts gives s back.
func splitKeep(s string, end func(string, int) bool) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); {
		_, size := utf8.DecodeRuneInString(s[i:])
		if end(s, i) {
			j := i + size
			for j < len(s) && (s[j] == ' ' || s[j] == '\n') {
				j++
			}
			out = append(out, s[start:j])
			start, i = j, j
			continue
		}
		i += size
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}
