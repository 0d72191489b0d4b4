package grounding

import (
	"strconv"
	"testing"

	"github.com/groundgate/groundgate/policies"
	"github.com/groundgate/groundgate/tokens"
)

// A cached printing is the printing itself, and a chunk whose text
// changed (a reindex under the same ids) is printed anew.
func TestPrintCacheFollowsText(t *testing.T) {
	enc, err := tokens.ForModel("gpt-4o")
	if err != nil {
		t.Fatal(err)
	}
	var c articleCache
	h := Hit{Chunk: Chunk{ArticleID: "KA-1", ChunkID: "c0", Number: "KA-01001", Title: "Reset <<<a>>> TV", URL: "https://x/1", Text: "Hold \"power\"\nfor 10 s."}}
	want := policies.Article{Ref: "doc2", ID: h.ArticleID, Number: h.Number, Title: h.Title, URL: h.URL, Content: h.Text}
	for range 2 { // a miss, then a hit
		a, n := c.article(&h, "doc2", enc)
		if a.Printed() != want.Printed() {
			t.Fatalf("printed %q, want %q", a.Printed(), want.Printed())
		}
		if n != enc.Count(want.Printed()) {
			t.Fatalf("tokens %d, want %d", n, enc.Count(want.Printed()))
		}
	}
	if a, _ := c.article(&h, "doc1", enc); a.Ref != "doc1" || a.Printed() == want.Printed() {
		t.Fatalf("another reference must print anew: %q", a.Printed())
	}
	h.Text = "Unplug it for 30 seconds instead."
	a, n := c.article(&h, "doc2", enc)
	want.Content = h.Text
	if a.Printed() != want.Printed() || n != enc.Count(want.Printed()) {
		t.Fatalf("after the text changed: %q (%d tokens), want %q", a.Printed(), n, want.Printed())
	}
}

// The cache starts over past its bound instead of growing.
func TestPrintCacheBounded(t *testing.T) {
	enc, err := tokens.ForModel("gpt-4o")
	if err != nil {
		t.Fatal(err)
	}
	var c articleCache
	for i := range maxPrinted + 10 {
		h := Hit{Chunk: Chunk{ArticleID: "KA", ChunkID: strconv.Itoa(i), Text: "t"}}
		c.article(&h, "doc1", enc)
	}
	entries := 0
	c.m.Range(func(any, any) bool { entries++; return true })
	if entries > maxPrinted || entries == 0 {
		t.Fatalf("%d entries, bound %d", entries, maxPrinted)
	}
}
