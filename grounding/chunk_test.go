package grounding

import (
	"strconv"
	"strings"
	"testing"

	"github.com/groundgate/groundgate/tokens"
)

func encoder(t testing.TB) *tokens.Encoder {
	t.Helper()
	enc, err := tokens.ForModel("gpt-4o")
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

func TestChunkShortArticleIsOneChunk(t *testing.T) {
	enc := encoder(t)
	a := Article{ID: "id1", Number: "KA-00001", Title: "T", URL: "https://x/1", Internal: true,
		Content: "## Intro\n\nShort text.\n\n## Steps\n\n1. One.\n2. Two."}
	cs := ChunkArticle(a, enc, 400)
	if len(cs) != 1 {
		t.Fatalf("%d chunks", len(cs))
	}
	c := cs[0]
	if c.ChunkID != "0" || c.ArticleID != "id1" || c.Number != "KA-00001" || c.URL != "https://x/1" || !c.Internal || c.Heading != "Intro" {
		t.Fatalf("%+v", c)
	}
	if c.Text != "## Intro\n\nShort text.\n\n## Steps\n\n1. One.\n2. Two." || c.Tokens != enc.Count(c.Text) {
		t.Fatalf("text %q tokens %d", c.Text, c.Tokens)
	}
}

func TestChunkSplitsBySectionsParagraphsSentencesWords(t *testing.T) {
	enc := encoder(t)
	para := func(topic string, n int) string {
		var s []string
		for i := 0; i < n; i++ {
			s = append(s, "The "+topic+" step number "+strconv.Itoa(i)+" is explained in this sentence.")
		}
		return strings.Join(s, " ")
	}
	var b strings.Builder
	b.WriteString("Opening paragraph before any heading.\n\n")
	b.WriteString("## Pairing\n\n" + para("pairing", 3) + "\n\n" + para("pairing", 3) + "\n\n")
	b.WriteString("## Resetting\n\n" + para("reset", 40) + "\n\n") // one paragraph far over the cap
	b.WriteString("## Tiny\n\nOk.\n\n")
	b.WriteString("## Blob\n\n" + strings.Repeat("x", 3000)) // one "word" over the cap
	const max = 80
	cs := ChunkArticle(Article{ID: "a", Number: "KA-1", Title: "Guide", Content: b.String()}, enc, max)
	if len(cs) < 6 {
		t.Fatalf("only %d chunks", len(cs))
	}
	var all strings.Builder
	for i, c := range cs {
		if c.ChunkID != strconv.Itoa(i) {
			t.Errorf("chunk %d has id %s", i, c.ChunkID)
		}
		if c.Tokens > max || enc.Count(c.Text) != c.Tokens || strings.TrimSpace(c.Text) == "" {
			t.Errorf("chunk %d: %d tokens (counted %d): %q", i, c.Tokens, enc.Count(c.Text), c.Text)
		}
		all.WriteString(c.Text)
	}
	// Continuation chunks of the long section repeat its heading.
	resetChunks := 0
	for _, c := range cs {
		if c.Heading == "Resetting" {
			resetChunks++
			if !strings.HasPrefix(c.Text, "## Resetting\n\n") {
				t.Errorf("continuation chunk without heading: %q", c.Text[:40])
			}
		}
	}
	if resetChunks < 3 {
		t.Errorf("long section in %d chunks", resetChunks)
	}
	// Nothing is lost: every sentence appears.
	for i := 0; i < 40; i++ {
		if !strings.Contains(all.String(), "The reset step number "+strconv.Itoa(i)+" is explained") {
			t.Fatalf("sentence %d lost", i)
		}
	}
	if strings.Count(all.String(), "x") < 3000 {
		t.Fatal("the long word was truncated instead of split")
	}
	// "Tiny" fits with its neighbour: no chunk holds only a heading.
	for _, c := range cs {
		if strings.TrimSpace(strings.TrimLeft(c.Text, "# ")) == c.Heading && c.Heading != "" {
			t.Errorf("heading-only chunk %q", c.Text)
		}
	}
}

func TestChunkEmptyContentUsesDescription(t *testing.T) {
	enc := encoder(t)
	cs := ChunkArticle(Article{ID: "a", Description: "Only a description."}, enc, 0)
	if len(cs) != 1 || cs[0].Text != "Only a description." {
		t.Fatalf("%+v", cs)
	}
	if cs := ChunkArticle(Article{ID: "a"}, enc, 100); len(cs) != 0 {
		t.Fatalf("%+v", cs)
	}
}

func TestSplitKeepRoundTrips(t *testing.T) {
	for _, s := range []string{"", "One. Two! Three? Four", "a  b\nc", "no end", "é. ü."} {
		for _, f := range []func(string, int) bool{sentenceEnd, spaceEnd} {
			if got := strings.Join(splitKeep(s, f), ""); got != s {
				t.Errorf("%q → %q", s, got)
			}
		}
	}
}
