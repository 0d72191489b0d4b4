package tokens

import (
	"testing"

	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
)

// TestRankTable checks the flat table against the loader's map: every
// token with its rank, nothing else.
func TestRankTable(t *testing.T) {
	for _, file := range []string{"o200k_base.tiktoken", "cl100k_base.tiktoken"} {
		ranks, err := tiktoken_loader.NewOfflineLoader().LoadTiktokenBpe(file)
		if err != nil {
			t.Fatal(err)
		}
		tab, err := newRankTable(ranks)
		if err != nil {
			t.Fatal(err)
		}
		if tab.len() != len(ranks) {
			t.Fatalf("%s: %d tokens in the table, %d ranks", file, tab.len(), len(ranks))
		}
		for tok, r := range ranks {
			if got, ok := tab.get(tok); !ok || got != r {
				t.Fatalf("%s: get(%q) = %d, %v; want %d", file, tok, got, ok, r)
			}
			if _, ok := ranks[tok+"\x00"]; !ok {
				if _, ok := tab.get(tok + "\x00"); ok {
					t.Fatalf("%s: get(%q) found a token that is not one", file, tok+"\x00")
				}
			}
		}
	}
	if _, err := newRankTable(map[string]int{string(make([]byte, 300)): 1}); err == nil {
		t.Error("a 300-byte token was accepted")
	}
}
