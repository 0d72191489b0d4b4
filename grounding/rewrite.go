package grounding

import (
	"context"
	"errors"
	"strings"

	"github.com/groundgate/groundgate/policies"
	"github.com/groundgate/groundgate/tokens"
)

// Rewriter turns a conversation into one standalone search query, with a
// small chat deployment. Implementations are context sources
// (llm_gateway.context.query_rewriter).
type Rewriter interface {
	// Rewrite returns the query for conv (oldest first), at most
	// maxTokens completion tokens, and the tokens the call used.
	Rewrite(ctx context.Context, conv []Turn, maxTokens int) (Rewritten, error)
}

// Rewritten is a rewritten query and what it cost.
type Rewritten struct {
	Query            string `json:"query"`
	Model            string `json:"model,omitempty"`
	PromptTokens     int    `json:"prompt_tokens"`
	CompletionTokens int    `json:"completion_tokens"`
}

// rewrite sends the newest messages of conv that fit spec.InputTokens
// (counted with enc; the last message is always sent, cut when alone too
// long) to rw.
func rewrite(ctx context.Context, rw Rewriter, conv []Turn, spec policies.QueryRewrite, enc *tokens.Encoder) (Rewritten, error) {
	conv = fitTurns(conv, spec.InputTokens, enc)
	if len(conv) == 0 {
		return Rewritten{}, errors.New("nothing to rewrite")
	}
	out, err := rw.Rewrite(ctx, conv, spec.MaxTokens)
	if err != nil {
		return Rewritten{}, err
	}
	out.Query = strings.TrimSpace(out.Query)
	if out.Query == "" {
		return out, errors.New("the rewrite is empty")
	}
	return out, nil
}

// fitTurns keeps the newest turns whose text fits budget tokens.
func fitTurns(conv []Turn, budget int, enc *tokens.Encoder) []Turn {
	used := 0
	for i := len(conv) - 1; i >= 0; i-- {
		n := enc.Count(conv[i].Text) + 4 // role and separators
		if used+n > budget {
			if i == len(conv)-1 {
				t := conv[i]
				t.Text = truncateTokens(t.Text, max(budget-4, 1), enc)
				return []Turn{t}
			}
			return conv[i+1:]
		}
		used += n
	}
	return conv
}

// withRewrite puts the rewritten query in front of q (keep) or in its
// place.
func withRewrite(q Query, text string, keep bool) Query {
	part := QueryPart{Text: text, Weight: 1}
	if keep {
		q.Parts = append([]QueryPart{part}, q.Parts...)
		q.Text = cutText(text+" "+q.Text, MaxQueryText)
	} else {
		q.Parts = []QueryPart{part}
		q.Text = cutText(text, MaxQueryText)
	}
	return q
}

// truncateTokens keeps the longest prefix of s (cut at a rune boundary)
// that has at most n tokens.
func truncateTokens(s string, n int, enc *tokens.Encoder) string {
	lo, hi := 0, len(s)
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if enc.Count(strings.ToValidUTF8(s[:mid], "")) <= n {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return strings.ToValidUTF8(s[:lo], "")
}
