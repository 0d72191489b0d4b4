package simulator

import "strings"

// Content-filter annotations. Azure attaches prompt_filter_results to every
// response and content_filter_results to every choice; the simulator's
// filter is a list of blocked terms (case-insensitive substrings), reported
// under one severity category (FilterCategory, default "violence").

// filterCategories are the severity categories a blocked term may be
// reported under.
var filterCategories = []string{"hate", "self_harm", "sexual", "violence"}

func validFilterCategory(c string) bool {
	for _, v := range filterCategories {
		if v == c {
			return true
		}
	}
	return false
}

const (
	safeSeverity     = `{"filtered":false,"severity":"safe"}`
	filteredSeverity = `{"filtered":true,"severity":"high"}`
	notDetected      = `{"filtered":false,"detected":false}`
)

func appendSeverity(b []byte, name, filtered string) []byte {
	b = append(b, '"')
	b = append(b, name...)
	b = append(b, `":`...)
	if name == filtered {
		return append(b, filteredSeverity...)
	}
	return append(b, safeSeverity...)
}

// appendPromptFilterResults appends the prompt-side content_filter_results
// object (hate, jailbreak, self_harm, sexual, violence).
func appendPromptFilterResults(b []byte, filtered string) []byte {
	b = append(b, '{')
	b = appendSeverity(b, "hate", filtered)
	b = append(b, `,"jailbreak":`+notDetected+`,`...)
	b = appendSeverity(b, "self_harm", filtered)
	b = append(b, ',')
	b = appendSeverity(b, "sexual", filtered)
	b = append(b, ',')
	b = appendSeverity(b, "violence", filtered)
	return append(b, '}')
}

// appendChoiceFilterResults appends a choice's content_filter_results
// (hate, protected_material_code, protected_material_text, self_harm,
// sexual, violence).
func appendChoiceFilterResults(b []byte, filtered string) []byte {
	b = append(b, '{')
	b = appendSeverity(b, "hate", filtered)
	b = append(b, `,"protected_material_code":`+notDetected+`,"protected_material_text":`+notDetected+`,`...)
	b = appendSeverity(b, "self_harm", filtered)
	b = append(b, ',')
	b = appendSeverity(b, "sexual", filtered)
	b = append(b, ',')
	b = appendSeverity(b, "violence", filtered)
	return append(b, '}')
}

// appendChunkFilterResults appends the four severity categories Azure puts
// on streamed content chunks.
func appendChunkFilterResults(b []byte, filtered string) []byte {
	b = append(b, '{')
	b = appendSeverity(b, "hate", filtered)
	b = append(b, ',')
	b = appendSeverity(b, "self_harm", filtered)
	b = append(b, ',')
	b = appendSeverity(b, "sexual", filtered)
	b = append(b, ',')
	b = appendSeverity(b, "violence", filtered)
	return append(b, '}')
}

var (
	// promptFilterResultsSafe is the whole "prompt_filter_results" array
	// for an unfiltered prompt.
	promptFilterResultsSafe = string(appendPromptFilterResults([]byte(`[{"prompt_index":0,"content_filter_results":`), "")) + "}]"
	choiceFilterResultsSafe = string(appendChoiceFilterResults(nil, ""))
	chunkFilterResultsSafe  = string(appendChunkFilterResults(nil, ""))
)

// indexFold reports the byte index of the first case-insensitive match of
// lowerTerm (already lower-cased) in s, or -1. ASCII text is compared
// without allocating; other text is lower-cased first (byte offsets are
// then only approximate, which the callers tolerate).
func indexFold(s, lowerTerm string) int {
	if lowerTerm == "" {
		return -1
	}
	if !isASCII(s) || !isASCII(lowerTerm) {
		return strings.Index(strings.ToLower(s), lowerTerm)
	}
	n := len(lowerTerm)
	first := lowerTerm[0]
	for i := 0; i+n <= len(s); i++ {
		if lowerASCII(s[i]) != first {
			continue
		}
		j := 1
		for j < n && lowerASCII(s[i+j]) == lowerTerm[j] {
			j++
		}
		if j == n {
			return i
		}
	}
	return -1
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// firstBlocked returns the smallest index at which any of terms occurs in
// s, or -1.
func firstBlocked(s string, terms []string) int {
	best := -1
	for _, t := range terms {
		if i := indexFold(s, t); i >= 0 && (best < 0 || i < best) {
			best = i
		}
	}
	return best
}
