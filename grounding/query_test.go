package grounding_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/groundgate/groundgate/grounding"
	"github.com/groundgate/groundgate/plugins/context/records"
	"github.com/groundgate/groundgate/policies"
	"github.com/groundgate/groundgate/tokens"
)

const hotelChat = `{"model":"gpt-4o","messages":[
 {"role":"system","content":"You are a concierge."},
 {"role":"user","content":"I'm looking for a hotel called Avalon."},
 {"role":"assistant","content":"The Avalon hotel is located in the north area."},
 {"role":"tool","tool_call_id":"x","content":"ignored tool output"},
 {"role":"user","content":[{"type":"text","text":"Does it have internet?"},{"type":"image_url","image_url":{"url":"https://x"}}]},
 {"role":"assistant","content":"Yes, it has internet."},
 {"role":"user","content":"Is there a big room available?"}]}`

func TestConversation(t *testing.T) {
	conv := grounding.Conversation(gjson.Parse(hotelChat), 0)
	if len(conv) != 5 || conv[0].Role != "user" || conv[2].Text != "Does it have internet?" || conv[4].Text != "Is there a big room available?" {
		t.Fatalf("%+v", conv)
	}
	if last := grounding.Conversation(gjson.Parse(hotelChat), 2); len(last) != 2 || last[0].Role != "assistant" {
		t.Fatalf("%+v", last)
	}
	if grounding.Conversation(gjson.Parse(`{"messages":"x"}`), 0) != nil {
		t.Fatal("not an array")
	}
}

func TestBuildQuery(t *testing.T) {
	conv := grounding.Conversation(gjson.Parse(hotelChat), 0)
	spec := (*policies.ArticleQuery)(nil).WithDefaults() // turns 3, decay 0.5, assistant 0.3
	q := grounding.BuildQuery(conv, spec)
	// Newest first: the question, the agent's answer before it, the
	// previous question, the agent's naming of the hotel, the first ask.
	want := []grounding.QueryPart{
		{Text: "Is there a big room available?", Weight: 1},
		{Text: "Yes, it has internet.", Weight: 0.3},
		{Text: "Does it have internet?", Weight: 0.5},
		{Text: "The Avalon hotel is located in the north area.", Weight: 0.15},
		{Text: "I'm looking for a hotel called Avalon.", Weight: 0.25},
	}
	if len(q.Parts) != len(want) {
		t.Fatalf("parts %+v", q.Parts)
	}
	for i := range want {
		if q.Parts[i].Text != want[i].Text || abs(q.Parts[i].Weight-want[i].Weight) > 1e-9 {
			t.Errorf("part %d: %+v, want %+v", i, q.Parts[i], want[i])
		}
	}
	if !strings.HasPrefix(q.Text, "Is there a big room available? Yes, it has internet.") || !strings.HasSuffix(q.Text, "called Avalon.") {
		t.Errorf("text %q", q.Text)
	}
	if len(q.Mentions) != 5 || q.Mentions[3].Text != "The Avalon hotel is located in the north area." || q.Entities != policies.ModeBoost {
		t.Errorf("mentions %+v", q.Mentions)
	}

	// One turn, no assistant: the last message alone; mentions still
	// reach back lookback messages.
	zero := 0.0
	one := policies.ArticleQuery{Turns: 1, Assistant: &zero, Lookback: 2, Entities: policies.ModeFilter}
	q = grounding.BuildQuery(conv, one.WithDefaults())
	if len(q.Parts) != 1 || q.Text != "Is there a big room available?" || len(q.Mentions) != 2 || q.Entities != policies.ModeFilter {
		t.Fatalf("%+v", q)
	}

	// Long conversations are cut to MaxQueryText.
	long := []grounding.Turn{{Role: "user", Text: strings.Repeat("word ", 400)}, {Role: "user", Text: "last"}}
	if q := grounding.BuildQuery(long, spec); len(q.Text) > grounding.MaxQueryText || !strings.HasPrefix(q.Text, "last word") {
		t.Fatalf("%d %q", len(q.Text), q.Text[:20])
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// queryIndex records the query it is asked.
type queryIndex struct {
	fakeIndex
	q grounding.Query
}

func (f *queryIndex) SearchQuery(_ context.Context, q grounding.Query, k int, filter grounding.Filter) ([]grounding.Hit, error) {
	f.q, f.k, f.f = q, k, filter
	return f.hits, f.err
}

func TestGroundConversationQuery(t *testing.T) {
	enc, _ := tokens.ForModel("gpt-4o")
	hit := grounding.Hit{Chunk: grounding.Chunk{ArticleID: "a", Number: "hotel.9.reviews.0", Title: "AVALON", ChunkID: "0", Text: "Spacious room."}}
	plan, err := grounding.Compile(grounding.ContextSpec{Articles: &grounding.ArticlesSpec{Top: 2,
		Query: &policies.ArticleQuery{Entities: policies.ModeFilter, Match: []policies.FieldMatch{
			{Field: "domain", Metadata: "domain", Mode: policies.ModeFilter},
			{Field: "entity", Header: "x-place"},
		}}}})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(hotelChat[:len(hotelChat)-1] + `,"metadata":{"domain":"hotel"}}`)
	h := http.Header{"X-Place": {"Avalon, Acorn Guest House"}}

	// A QueryIndex gets the whole query.
	qi := &queryIndex{fakeIndex: fakeIndex{hits: []grounding.Hit{hit}}}
	res, err := plan.Ground(context.Background(), grounding.Sources{Index: qi}, grounding.Request{Header: h, Body: body}, nil, enc)
	if err != nil {
		t.Fatal(err)
	}
	if len(qi.q.Parts) != 5 || qi.q.Entities != policies.ModeFilter || res.Query != qi.q.Text || len(res.Packed.Docs) != 1 {
		t.Fatalf("query %+v res %+v", qi.q, res)
	}
	if len(qi.q.Match) != 2 || qi.q.Match[0].Field != "domain" || !qi.q.Match[0].Filter || qi.q.Match[0].Values[0] != "hotel" ||
		qi.q.Match[1].Filter || strings.Join(qi.q.Match[1].Values, "|") != "Avalon|Acorn Guest House" {
		t.Fatalf("match %+v", qi.q.Match)
	}
	if qi.k != 6 || qi.f.PerArticle != grounding.DefaultPerArticle {
		t.Fatalf("k %d filter %+v", qi.k, qi.f)
	}

	// A plain Index gets the query's text.
	pi := &fakeIndex{hits: []grounding.Hit{hit}}
	if _, err := plan.Ground(context.Background(), grounding.Sources{Index: pi}, grounding.Request{Body: body}, nil, enc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(pi.query, "Is there a big room available? Yes, it has internet. Does it have internet?") {
		t.Fatalf("query %q", pi.query)
	}
}

// A match on the records in play waits for them: the case's title
// filters the search.
func TestGroundMatchFromRecords(t *testing.T) {
	crm, err := records.Load("", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := tokens.ForModel("gpt-4o")
	plan, err := grounding.Compile(grounding.ContextSpec{
		Records: &grounding.RecordsSpec{Entities: []string{"incident"}},
		Articles: &grounding.ArticlesSpec{Query: &policies.ArticleQuery{Match: []policies.FieldMatch{
			{Field: "product", Record: "incident.title", Mode: policies.ModeFilter}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	qi := &queryIndex{}
	body := []byte(`{"messages":[{"role":"user","content":"What about CAS-01001-K7M2Q9?"}]}`)
	if _, err := plan.Ground(context.Background(), grounding.Sources{Records: crm, Index: qi}, grounding.Request{Header: http.Header{}, Body: body}, nil, enc); err != nil {
		t.Fatal(err)
	}
	if len(qi.q.Match) != 1 || qi.q.Match[0].Values[0] != "Hotel room TVs stuck on logo after overnight update" || !qi.q.Match[0].Filter {
		t.Fatalf("match %+v", qi.q.Match)
	}
}

// fakeRewriter answers a fixed query, or fails.
type fakeRewriter struct {
	conv []grounding.Turn
	max  int
	err  error
}

func (f *fakeRewriter) Rewrite(_ context.Context, conv []grounding.Turn, maxTokens int) (grounding.Rewritten, error) {
	f.conv, f.max = conv, maxTokens
	return grounding.Rewritten{Query: " Avalon hotel room size ", Model: "gpt-4o-mini", PromptTokens: 40, CompletionTokens: 5}, f.err
}

func TestGroundRewrite(t *testing.T) {
	enc, _ := tokens.ForModel("gpt-4o")
	plan, err := grounding.Compile(grounding.ContextSpec{Articles: &grounding.ArticlesSpec{
		Query: &policies.ArticleQuery{Rewrite: &policies.QueryRewrite{MaxTokens: 20, InputTokens: 25}}}})
	if err != nil {
		t.Fatal(err)
	}
	rw := &fakeRewriter{}
	qi := &queryIndex{}
	res, err := plan.Ground(context.Background(), grounding.Sources{Index: qi, Rewriter: rw}, grounding.Request{Body: []byte(hotelChat)}, nil, enc)
	if err != nil {
		t.Fatal(err)
	}
	// Only the newest messages that fit 25 tokens were sent.
	if rw.max != 20 || len(rw.conv) == 0 || len(rw.conv) >= 5 || rw.conv[len(rw.conv)-1].Text != "Is there a big room available?" {
		t.Fatalf("sent %+v max %d", rw.conv, rw.max)
	}
	if res.Rewrite == nil || res.Rewrite.PromptTokens != 40 || res.Rewrite.Query != "Avalon hotel room size" {
		t.Fatalf("rewrite %+v", res.Rewrite)
	}
	// keep (default): the rewrite first, then the conversation's query.
	if qi.q.Parts[0].Text != "Avalon hotel room size" || len(qi.q.Parts) != 6 || !strings.HasPrefix(res.Query, "Avalon hotel room size Is there") {
		t.Fatalf("query %+v", qi.q)
	}

	// A failed rewrite: the conversation's own query, and the error.
	rw.err = errors.New("deployment down")
	res, err = plan.Ground(context.Background(), grounding.Sources{Index: qi, Rewriter: rw}, grounding.Request{Body: []byte(hotelChat)}, nil, enc)
	if err == nil || !strings.Contains(err.Error(), "query rewrite: deployment down") || res.Rewrite != nil || len(qi.q.Parts) != 5 {
		t.Fatalf("err %v rewrite %+v parts %d", err, res.Rewrite, len(qi.q.Parts))
	}

	// keep: false searches the rewrite alone; a single message longer
	// than input_tokens is cut, not dropped.
	no := false
	plan, _ = grounding.Compile(grounding.ContextSpec{Articles: &grounding.ArticlesSpec{
		Query: &policies.ArticleQuery{Rewrite: &policies.QueryRewrite{InputTokens: 8, Keep: &no}}}})
	rw.err = nil
	long := []byte(`{"messages":[{"role":"user","content":"` + strings.Repeat("tell me about the rooms ", 20) + `"}]}`)
	if _, err := plan.Ground(context.Background(), grounding.Sources{Index: qi, Rewriter: rw}, grounding.Request{Body: long}, nil, enc); err != nil {
		t.Fatal(err)
	}
	if len(rw.conv) != 1 || enc.Count(rw.conv[0].Text) > 4 || rw.conv[0].Text == "" || len(qi.q.Parts) != 1 || qi.q.Text != "Avalon hotel room size" {
		t.Fatalf("conv %+v query %+v", rw.conv, qi.q)
	}
}

func TestCompileQueryErrors(t *testing.T) {
	bad := 1.5
	_, err := grounding.Compile(grounding.ContextSpec{Articles: &grounding.ArticlesSpec{Query: &policies.ArticleQuery{
		Turns: -1, Decay: 2, Assistant: &bad, Match: []policies.FieldMatch{{Field: "product"}, {Field: "x y", Metadata: "a", Record: "b"}},
		Rewrite: &policies.QueryRewrite{MaxTokens: -1}}}})
	for _, want := range []string{"articles.query.turns", "articles.query.decay", "articles.query.assistant", "articles.query.match[0]: give exactly one",
		"articles.query.match[1]: field must be", "articles.query.rewrite.max_tokens"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err %v does not mention %s", err, want)
		}
	}
}

// With an articles section, a case number given turns ago is still the
// case in play; without one, only the last message is read.
func TestKeysFromEarlierMessages(t *testing.T) {
	body := []byte(`{"messages":[
	 {"role":"user","content":"My case is CAS-01001-K7M2Q9."},
	 {"role":"assistant","content":"Thanks, I see it."},
	 {"role":"user","content":"And CAS-01009-T1N9W3 too. What should the hotel do?"}]}`)
	plan, err := grounding.Compile(grounding.ContextSpec{Records: &grounding.RecordsSpec{}, Articles: &grounding.ArticlesSpec{}})
	if err != nil {
		t.Fatal(err)
	}
	keys := plan.Keys(http.Header{}, body)
	if len(keys) != 2 || keys[0].Value != "CAS-01009-T1N9W3" || keys[0].From != "message" || keys[1].Value != "CAS-01001-K7M2Q9" || keys[1].From != "earlier message" {
		t.Fatalf("keys %+v", keys)
	}
	plan, _ = grounding.Compile(grounding.ContextSpec{Records: &grounding.RecordsSpec{}, Articles: &grounding.ArticlesSpec{Query: &policies.ArticleQuery{Lookback: 2}}})
	if keys := plan.Keys(http.Header{}, body); len(keys) != 1 {
		t.Fatalf("lookback 2: %+v", keys)
	}
	plan, _ = grounding.Compile(grounding.ContextSpec{Records: &grounding.RecordsSpec{}})
	if keys := plan.Keys(http.Header{}, body); len(keys) != 1 || keys[0].Value != "CAS-01009-T1N9W3" {
		t.Fatalf("records only: %+v", keys)
	}
}
