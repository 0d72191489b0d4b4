package tokens

import (
	"strings"
	"sync"
	"testing"
)

// TestConcurrentFirstUse: many goroutines race on the very first ForModel
// and Count (the test resets the lazy loaders, so it does not matter which
// tests ran before). Run with -race.
func TestConcurrentFirstUse(t *testing.T) {
	classOnce = sync.Once{}
	loadO200k, loadCl100k = newLoaders()
	models := []string{"gpt-4o", "gpt-4o-mini-2024-07-18", "gpt-35-turbo-0125", "gpt-4", "o3-mini", "text-embedding-3-small"}
	const workers = 32
	encs := make([]*Encoder, workers)
	counts := make([]int, workers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			e, err := ForModel(models[i%len(models)])
			if err != nil {
				t.Error(err)
				return
			}
			encs[i] = e
			counts[i] = e.Count("tiktoken is great! " + strings.Repeat("long repeated prompt text ", 20))
		}()
	}
	close(start)
	wg.Wait()
	byName := map[string]*Encoder{}
	byCount := map[string]int{}
	for i, e := range encs {
		if e == nil {
			t.Fatalf("worker %d got no encoder", i)
		}
		if prev, ok := byName[e.Name()]; ok && prev != e {
			t.Errorf("two different %s encoders", e.Name())
		}
		byName[e.Name()] = e
		if prev, ok := byCount[e.Name()]; ok && prev != counts[i] {
			t.Errorf("%s: counts differ between goroutines: %d vs %d", e.Name(), prev, counts[i])
		}
		byCount[e.Name()] = counts[i]
	}
	if len(byName) != 2 {
		t.Errorf("got encoders %v, want o200k_base and cl100k_base", byName)
	}
}

func TestCountKnownStrings(t *testing.T) {
	o200k, cl100k := mustEncoding(t, "o200k_base"), mustEncoding(t, "cl100k_base")
	for _, c := range []struct {
		e    *Encoder
		text string
		want int
	}{
		// "hello" + " world": one token each in every BPE encoding.
		{cl100k, "hello world", 2},
		{o200k, "hello world", 2},
		// The cookbook's example: ["t", "ik", "token", " is", " great", "!"].
		{cl100k, "tiktoken is great!", 6},
		// The cookbook decodes o200k's [83, 8251, 2488, 382, 2212, 0] to it.
		{o200k, "tiktoken is great!", 6},
		{cl100k, "", 0},
		{o200k, "", 0},
		// One byte is always one token.
		{cl100k, "!", 1},
		{o200k, "\x00", 1},
	} {
		if got := c.e.Count(c.text); got != c.want {
			t.Errorf("%s Count(%q) = %d, want %d", c.e.Name(), c.text, got, c.want)
		}
	}
}

// Special tokens are ordinary text: "<|endoftext|>" is several tokens, and
// counts the same as the text around it would without its specialness.
func TestCountSpecialTokenTextIsOrdinary(t *testing.T) {
	for _, name := range []string{"cl100k_base", "o200k_base"} {
		e := mustEncoding(t, name)
		n := e.Count("<|endoftext|>")
		if n <= 1 {
			t.Errorf("%s: <|endoftext|> counted as %d tokens, want it as plain text (> 1)", name, n)
		}
		if got, want := e.Count("<|endoftext|>"), e.Count("<|")+e.Count("endoftext")+e.Count("|>"); got != want {
			t.Errorf("%s: <|endoftext|> = %d tokens, want %d (its plain-text pieces)", name, got, want)
		}
	}
}

// Invalid UTF-8 counts as if each bad byte were U+FFFD, and never panics.
func TestCountInvalidUTF8(t *testing.T) {
	for _, name := range []string{"cl100k_base", "o200k_base"} {
		e := mustEncoding(t, name)
		if got, want := e.Count("ab\xffcd"), e.Count("ab\uFFFDcd"); got != want {
			t.Errorf("%s: invalid byte counted %d, want %d", name, got, want)
		}
		if got, want := e.Count("\xe2\x82"), e.Count("\uFFFD\uFFFD"); got != want {
			t.Errorf("%s: truncated sequence counted %d, want %d", name, got, want)
		}
	}
}

func TestForModel(t *testing.T) {
	for model, want := range map[string]string{
		"gpt-4o":                     "o200k_base",
		"gpt-4o-mini":                "o200k_base",
		"gpt-4o-mini-2024-07-18":     "o200k_base",
		"gpt-4o-2024-08-06":          "o200k_base",
		"GPT-4o":                     "o200k_base",
		"chatgpt-4o-latest":          "o200k_base",
		"gpt-4.1":                    "o200k_base",
		"gpt-4.1-nano-2025-04-14":    "o200k_base",
		"gpt-4.5-preview":            "o200k_base",
		"gpt-5":                      "o200k_base",
		"gpt-5-mini":                 "o200k_base",
		"gpt-5.1":                    "o200k_base",
		"gpt-5.1-codex":              "o200k_base",
		"o1":                         "o200k_base",
		"o1-preview-2024-09-12":      "o200k_base",
		"o3-mini":                    "o200k_base",
		"o4-mini":                    "o200k_base",
		"ft:gpt-4o-mini:org::abc123": "o200k_base",
		"gpt-4":                      "cl100k_base",
		"gpt-4-0613":                 "cl100k_base",
		"gpt-4-turbo":                "cl100k_base",
		"gpt-4-turbo-2024-04-09":     "cl100k_base",
		"gpt-4-32k":                  "cl100k_base",
		"gpt-3.5-turbo":              "cl100k_base",
		"gpt-3.5-turbo-16k":          "cl100k_base",
		"gpt-35-turbo":               "cl100k_base",
		"gpt-35-turbo-0125":          "cl100k_base",
		"gpt-35-turbo-16k":           "cl100k_base",
		"text-embedding-ada-002":     "cl100k_base",
		"text-embedding-3-small":     "cl100k_base",
		"text-embedding-3-large":     "cl100k_base",
	} {
		e, err := ForModel(model)
		if err != nil {
			t.Errorf("ForModel(%q): %v", model, err)
			continue
		}
		if e.Name() != want {
			t.Errorf("ForModel(%q) = %s, want %s", model, e.Name(), want)
		}
	}
	for _, model := range []string{"", "llama-3", "gpt-4x", "gpt-4.7", "o100", "claude-3", "gpt", "text-embedding-ada-003", "my-deployment"} {
		e, err := ForModel(model)
		if err == nil {
			t.Errorf("ForModel(%q) = %s, want an error", model, e.Name())
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, "\""+model+"\"") || !strings.Contains(msg, "gpt-4o") || !strings.Contains(msg, "gpt-35-turbo") {
			t.Errorf("ForModel(%q) error %q should name the model and the known names", model, msg)
		}
	}
	a, _ := ForModel("gpt-4o")
	b, _ := ForModel("o3")
	if a != b {
		t.Error("ForModel returned two o200k_base encoders; they should be shared")
	}
}

func TestForEncoding(t *testing.T) {
	for _, name := range []string{"o200k_base", "cl100k_base"} {
		e, err := ForEncoding(name)
		if err != nil || e.Name() != name {
			t.Errorf("ForEncoding(%q) = %v, %v", name, e, err)
		}
	}
	for _, name := range []string{"p50k_base", "r50k_base", "", "O200K_BASE"} {
		if _, err := ForEncoding(name); err == nil {
			t.Errorf("ForEncoding(%q): want an error", name)
		}
	}
}

// The heap merge and tiktoken's quadratic merge agree on arbitrary pieces.
func TestMergeHeapMatchesSmall(t *testing.T) {
	for _, name := range []string{"cl100k_base", "o200k_base"} {
		e := mustEncoding(t, name)
		for _, p := range []string{
			"ab", "abc", "antidisestablishmentarianism", strings.Repeat("a", 128), strings.Repeat("ab", 64),
			strings.Repeat(" ", 100), strings.Repeat("!?", 50), "中文字符日本語の文章한국어", strings.Repeat("🙂", 30),
			"Supercalifragilisticexpialidocious", "\xe4\xb8\xad\xe6", "ſſſſſſſſ",
		} {
			if len(p) > smallPiece {
				p = p[:smallPiece]
			}
			if s, h := e.core.mergeSmall(p), e.core.mergeHeap(p); s != h {
				t.Errorf("%s: merge(%q): small %d, heap %d", name, p, s, h)
			}
		}
	}
}

// A single huge piece must not take quadratic time.
func TestHugePieceIsFast(t *testing.T) {
	e := mustEncoding(t, "o200k_base")
	s := strings.Repeat("abcdefghij", 20_000) // one 200 KB "word"
	if n := e.Count(s); n <= 0 || n > len(s) {
		t.Fatalf("Count = %d", n)
	}
}
