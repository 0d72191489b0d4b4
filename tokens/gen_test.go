package tokens

import (
	"math/rand/v2"
	"strings"
)

// Pools for randomText: pieces chosen to hit every branch of the two
// pre-tokenizers (letters of each case class, marks, numbers, whitespace
// kinds, contractions, '/' runs, invalid-free multi-byte text, emoji).
var textPools = [][]string{
	// words and word-ish
	{"hello", "Hello", "HELLO", "hELLo", "world", "The", "tiktoken", "don", "we", "I", "x", "ab", "Straße", "naïve", "Ünïcödé", "ΣΊΣΥΦΟΣ", "σίσυφος", "Москва", "МОСКВА", "中文字符", "日本語の文章", "한국어", "עברית", "العربية", "हिन्दी", "किताब", "ภาษาไทย", "ǅemal", "ǅ", "Ǆ", "ǆ", "ʰʰ", "aʰb", "ABʰC", "々", "ᲐᲑᲒ", "𝐀𝐁c", "𠀀𠀁", "ſ", "Kelvin", "ﬁne", "İstanbul", "ŉ", "AʰBC", "ABʰC1", "ǅA", "中A", "Ａｂｃ", "ÀÉÎ", "ßẞ", "\u212a", "ﬀ"},
	// contractions and apostrophes
	{"'s", "'S", "'t", "'T", "'re", "'RE", "'Re", "'ve", "'VE", "'m", "'M", "'ll", "'LL", "'lL", "'d", "'D", "'ſ", "'", "''", "'x", "'l", "'r", "'v", "’s"},
	// numbers
	{"0", "1", "42", "123", "1234", "12345678", "3.14159", "1,000,000", "٣٤٥", "३४", "Ⅻ", "½", "²", "①②", "𝟙𝟚", "1st", "2nd", "0x1F"},
	// punctuation and symbols
	{".", ",", "!", "?", ":", ";", "-", "--", "...", "/", "//", "///", "\\", "\"", "(", ")", "[", "]", "{", "}", "<", ">", "<|endoftext|>", "<|im_start|>", "@", "#", "$", "%", "^", "&", "*", "_", "__", "=", "+", "~", "`", "|", "€", "©", "¡", "¿", "•", "→", "…", "—", "「」", "。", "，", "😀", "👍🏽", "👨‍👩‍👧", "🇺🇸", "✓", "\u00ad", "\u200b", "\ufeff", "\u2060", "\x00", "\x1b", "\u007f", "\ufffd"},
	// combining marks
	{"\u0301", "\u0308", "\u0301\u0301", "e\u0301", "E\u0301", "\u094d", "\u093f", "\u20dd", "a\u0308\u0301b", "\u0301x", "\u0301X", "\u0301 ", "\u05b8", "\u0e31"},
	// whitespace
	{" ", " ", " ", "  ", "   ", "    ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\r", " \n", "\n ", " \n ", "\v", "\f", "\u00a0", "\u0085", "\u2003", "\u3000", "\u2028", "\u2029", "\u202f", "\u1680", " \t\n", "\n\n\n  "},
	// code and markup
	{"func main() {", "}\n", "if (x) {\n\treturn y;\n}", "http://example.com/a/b", "https://x.y/", "</div>", "<br/>", "a/b/c", "foo.bar", "snake_case", "camelCase", "JSONParser", "::", "=>", "!==", "/* c */", "# H1\n", "- [ ] item\n", "```go\n", "${x}", "\\n", "\\u0041"},
}

// randomText builds a random string from textPools; about one in ten is
// long enough (a long run of one class) to take the heap merge path.
func randomText(r *rand.Rand) string {
	var b strings.Builder
	n := 1 + r.IntN(24)
	for range n {
		pool := textPools[r.IntN(len(textPools))]
		b.WriteString(pool[r.IntN(len(pool))])
		if r.IntN(3) == 0 {
			b.WriteByte(' ')
		}
	}
	if r.IntN(10) == 0 {
		runs := []string{"a", "ab", "xyz", " ", "\n", "!", "/", "1", "中", "é", "\u0301", "A", "Zz", "=", "\t "}
		run := runs[r.IntN(len(runs))]
		b.WriteString(strings.Repeat(run, 50+r.IntN(300)))
		if r.IntN(2) == 0 {
			b.WriteString("tail")
		}
	}
	return b.String()
}
