package post_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	"github.com/groundgate/groundgate/grounding"
	appendtext "github.com/groundgate/groundgate/plugins/post/append"
	"github.com/groundgate/groundgate/plugins/post/citations"
	"github.com/groundgate/groundgate/policies"
	"github.com/groundgate/groundgate/post"
)

func testPacked() *grounding.Packed {
	return &grounding.Packed{
		Records: []policies.Record{{Entity: "incident", ID: "i-1", Number: "CAS-01000"}},
		Docs: []grounding.Doc{
			{Ref: "doc1", ArticleID: "a-1", Number: "KA-01234", Title: "Reset a password", URL: "https://kb.example/KA-01234", ChunkID: "0", Content: "Go to Settings."},
			{Ref: "doc2", ArticleID: "a-2", Number: "KA-05678", Title: "Unlock an account", ChunkID: "3", Content: "Wait 30 minutes."},
		},
	}
}

func testChain(t testing.TB, cfg citations.Citations) *post.Chain {
	t.Helper()
	c, err := citations.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a, err := appendtext.New("AI-generated; check the sources.", nil)
	if err != nil {
		t.Fatal(err)
	}
	return post.NewChain(c, a)
}

func body(content string) []byte {
	b, _ := json.Marshal(content)
	return []byte(`{"id":"chatcmpl-9","object":"chat.completion","created":7,"model":"gpt-4o","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":` + string(b) + `}}],"usage":{"prompt_tokens":5,"completion_tokens":6,"total_tokens":11}}`)
}

func TestBodyChain(t *testing.T) {
	ch := testChain(t, citations.Citations{Format: "[{number}]({url})", FormatNoURL: "[{number}]"})
	res := new(post.Result)
	out, err := ch.Body(body("Wait [doc2] or reset [doc1][doc5]."), &post.Request{Packed: testPacked()}, res)
	if err != nil {
		t.Fatal(err)
	}
	want := "Wait [KA-05678] or reset [KA-01234](https://kb.example/KA-01234).\n\nAI-generated; check the sources."
	if got := gjson.GetBytes(out, "choices.0.message.content").String(); got != want {
		t.Errorf("content\n got %q\nwant %q", got, want)
	}
	if got := gjson.GetBytes(out, "choices.0.message.context.citations.#.chunk_id").Raw; got != `["3","0"]` {
		t.Errorf("citations %s", got)
	}
	if res.Appended != 1 || res.Invented != 1 || !reflect.DeepEqual(res.Cited, []int{1, 0}) {
		t.Errorf("result %+v", res)
	}
	if !json.Valid(out) {
		t.Error("invalid JSON")
	}
}

// Tool-call answers (content null) and bodies without choices are left
// alone; an empty chain returns the body itself.
func TestBodyUntouched(t *testing.T) {
	ch := testChain(t, citations.Citations{})
	for _, b := range []string{
		`{"choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]}}]}`,
		`{"error":{"message":"x"}}`,
		`{"choices":[]}`,
	} {
		out, err := ch.Body([]byte(b), &post.Request{Packed: testPacked()}, new(post.Result))
		if err != nil || string(out) != b {
			t.Errorf("%s changed: %s (%v)", b, out, err)
		}
	}
	in := body("x [doc1]")
	if out, _ := post.NewChain().Body(in, nil, nil); &out[0] != &in[0] {
		t.Error("empty chain copied the body")
	}
}

// Several choices are rewritten independently.
func TestBodyChoices(t *testing.T) {
	ch := post.NewChain(mustCitations(t, citations.Citations{}))
	in := []byte(`{"choices":[{"index":0,"message":{"content":"a [doc2]"}},{"index":1,"message":{"content":"b [doc1] [doc2]"}}]}`)
	res := new(post.Result)
	out, _ := ch.Body(in, &post.Request{Packed: testPacked()}, res)
	if got := gjson.GetBytes(out, "choices.#.message.content").Raw; got != `["a [doc1]","b [doc1] [doc2]"]` {
		t.Errorf("got %s", got)
	}
	if !reflect.DeepEqual(res.Cited, []int{1, 0}) {
		t.Errorf("cited %v", res.Cited)
	}
}

func mustCitations(t testing.TB, cfg citations.Citations) *citations.Citations {
	t.Helper()
	c, err := citations.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// azureStream builds the data of an Azure-shaped stream whose content
// deltas are the given pieces: prompt annotations (choices []), a role
// chunk, the content chunks, the finish chunk, the usage chunk.
func azureStream(pieces []string) [][]byte {
	var out [][]byte
	out = append(out, []byte(`{"id":"","object":"","created":0,"model":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{}}],"choices":[]}`))
	out = append(out, []byte(`{"id":"chatcmpl-s","object":"chat.completion.chunk","created":17,"model":"gpt-4o","choices":[{"index":0,"finish_reason":null,"delta":{"role":"assistant"},"content_filter_results":{}}],"system_fingerprint":"fp_1"}`))
	for _, p := range pieces {
		b, _ := json.Marshal(p)
		out = append(out, []byte(`{"id":"chatcmpl-s","object":"chat.completion.chunk","created":17,"model":"gpt-4o","choices":[{"index":0,"finish_reason":null,"delta":{"content":`+string(b)+`},"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}}}],"system_fingerprint":"fp_1","usage":null}`))
	}
	out = append(out, []byte(`{"id":"chatcmpl-s","object":"chat.completion.chunk","created":17,"model":"gpt-4o","choices":[{"index":0,"finish_reason":"stop","delta":{}}],"system_fingerprint":"fp_1","usage":null}`))
	out = append(out, []byte(`{"id":"chatcmpl-s","object":"chat.completion.chunk","created":17,"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":6,"total_tokens":11}}`))
	return out
}

// runStream feeds the chunks through a Stream and returns what is sent.
func runStream(t testing.TB, s *post.Stream, chunks [][]byte) [][]byte {
	t.Helper()
	var sent [][]byte
	for _, c := range chunks {
		out, err := s.Chunk(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range out {
			if !json.Valid(o) {
				t.Fatalf("invalid chunk %s", o)
			}
			sent = append(sent, append([]byte(nil), o...))
		}
	}
	for _, o := range s.End() {
		sent = append(sent, append([]byte(nil), o...))
	}
	return sent
}

// accumulate does what a client does with a stream: concatenates
// choices[0].delta.content and merges delta.context.
func accumulate(sent [][]byte) (string, []byte) {
	var b strings.Builder
	var ctx []byte
	for _, c := range sent {
		d := gjson.GetBytes(c, "choices.0.delta")
		b.WriteString(d.Get("content").String())
		if cx := d.Get("context"); cx.Exists() {
			ctx = post.MergeContext(ctx, []byte(cx.Raw))
		}
	}
	return b.String(), ctx
}

func TestStreamEqualsBody(t *testing.T) {
	answer := "Wait [doc2] or reset it [doc1][doc1]; not [doc3]. Café ☕ [Doc1]"
	for _, cfg := range []citations.Citations{
		{},
		{Format: "[{number}]({url})"},
		{Context: citations.ContextAll},
		{Require: true, OnUngrounded: citations.Refuse},
	} {
		ch := testChain(t, cfg)
		req := &post.Request{Packed: testPacked(), Stream: true}
		wantRes := new(post.Result)
		b, err := ch.Body(body(answer), req, wantRes)
		if err != nil {
			t.Fatal(err)
		}
		want := gjson.GetBytes(b, "choices.0.message.content").String()
		wantCtx := gjson.GetBytes(b, "choices.0.message.context").Raw
		check := func(pieces []string) {
			t.Helper()
			res := new(post.Result)
			sent := runStream(t, ch.NewStream(req, res), azureStream(pieces))
			got, ctx := accumulate(sent)
			if got != want || string(ctx) != wantCtx {
				t.Fatalf("cfg %+v pieces %q:\n got %q %s\nwant %q %s", cfg, pieces, got, ctx, want, wantCtx)
			}
			if !reflect.DeepEqual(res, wantRes) {
				t.Fatalf("result %+v, want %+v", res, wantRes)
			}
		}
		// Every split between two runes (a chunk's content is a JSON
		// string: it cannot end inside a UTF-8 sequence; the citations
		// package tests every byte boundary at the text level).
		for i := 0; i <= len(answer); i++ {
			if i < len(answer) && !utf8.RuneStart(answer[i]) {
				continue
			}
			check([]string{answer[:i], answer[i:]})
		}
		rng := rand.New(rand.NewPCG(3, 4))
		for range 100 {
			var pieces []string
			for s := answer; len(s) > 0; {
				n := 1 + rng.IntN(min(len(s), 9))
				for n < len(s) && !utf8.RuneStart(s[n]) {
					n++
				}
				pieces = append(pieces, s[:n])
				s = s[n:]
			}
			check(pieces)
		}
	}
}

// The shape of the stream: chunks without choices and the usage chunk
// pass byte for byte; the citations context and the disclaimer come in
// one extra chunk just before the finish chunk, with the stream's id,
// created, model and system_fingerprint.
func TestStreamShape(t *testing.T) {
	ch := testChain(t, citations.Citations{})
	chunks := azureStream([]string{"Reset it [do", "c1]."})
	sent := runStream(t, ch.NewStream(&post.Request{Packed: testPacked()}, new(post.Result)), chunks)
	if len(sent) != len(chunks)+1 {
		t.Fatalf("%d chunks sent, want %d", len(sent), len(chunks)+1)
	}
	for _, i := range []int{0, 1} {
		if !bytes.Equal(sent[i], chunks[i]) {
			t.Errorf("chunk %d changed: %s", i, sent[i])
		}
	}
	if got := gjson.GetBytes(sent[2], "choices.0.delta.content").String(); got != "Reset it " {
		t.Errorf("first content %q", got)
	}
	if got := gjson.GetBytes(sent[3], "choices.0.delta.content").String(); got != "[doc1]." {
		t.Errorf("second content %q", got)
	}
	extra := sent[4]
	want := `{"id":"chatcmpl-s","object":"chat.completion.chunk","created":17,"model":"gpt-4o","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":"\n\nAI-generated; check the sources.","context":{"citations":[{"content":"Go to Settings.","title":"Reset a password","filepath":"KA-01234","url":"https://kb.example/KA-01234","chunk_id":"0"}]}},"finish_reason":null}]}`
	if string(extra) != want {
		t.Errorf("extra chunk\n got %s\nwant %s", extra, want)
	}
	if !bytes.Equal(sent[5], chunks[4]) || !bytes.Equal(sent[6], chunks[5]) {
		t.Errorf("finish/usage chunks changed:\n%s\n%s", sent[5], sent[6])
	}
	// An unchanged chunk is passed through as is, not copied.
	s := ch.NewStream(&post.Request{Packed: testPacked()}, new(post.Result))
	for _, c := range chunks[:2] {
		out, _ := s.Chunk(c)
		if len(out) != 1 || &out[0][0] != &c[0] {
			t.Errorf("unchanged chunk copied")
		}
	}
}

// A finish chunk that carries content itself gets the tail in its delta.
func TestStreamFinishWithContent(t *testing.T) {
	ch := testChain(t, citations.Citations{Context: citations.ContextOff})
	s := ch.NewStream(&post.Request{Packed: testPacked()}, new(post.Result))
	out, _ := s.Chunk([]byte(`{"id":"x","choices":[{"index":0,"delta":{"content":"See [doc"},"finish_reason":null}]}`))
	if got := gjson.GetBytes(out[0], "choices.0.delta.content").String(); got != "See " {
		t.Errorf("got %q", got)
	}
	out, _ = s.Chunk([]byte(`{"id":"x","choices":[{"index":0,"delta":{"content":"2]"},"finish_reason":"stop"}]}`))
	if len(out) != 1 {
		t.Fatalf("%d chunks", len(out))
	}
	if got := gjson.GetBytes(out[0], "choices.0.delta.content").String(); got != "[doc1]\n\nAI-generated; check the sources." {
		t.Errorf("got %q", got)
	}
	if got := gjson.GetBytes(out[0], "choices.0.finish_reason").String(); got != "stop" {
		t.Errorf("finish_reason %q", got)
	}
	if len(s.End()) != 0 {
		t.Error("End after finish sent more")
	}
}

// A stream cut before its finish chunk: End flushes what was held.
func TestStreamEnd(t *testing.T) {
	ch := testChain(t, citations.Citations{Context: citations.ContextOff})
	s := ch.NewStream(&post.Request{Packed: testPacked()}, new(post.Result))
	out, _ := s.Chunk([]byte(`{"id":"x","model":"m","created":1,"choices":[{"index":0,"delta":{"content":"Tail [doc"},"finish_reason":null}]}`))
	if got := gjson.GetBytes(out[0], "choices.0.delta.content").String(); got != "Tail " {
		t.Errorf("got %q", got)
	}
	end := s.End()
	if len(end) != 1 {
		t.Fatalf("End: %d chunks", len(end))
	}
	if got := gjson.GetBytes(end[0], "choices.0.delta.content").String(); got != "[doc\n\nAI-generated; check the sources." {
		t.Errorf("End content %q", got)
	}
}

// Tool-call streams have no text content: nothing is added.
func TestStreamToolCalls(t *testing.T) {
	ch := testChain(t, citations.Citations{})
	chunks := [][]byte{
		[]byte(`{"id":"t","choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"f","arguments":""}}]},"finish_reason":null}]}`),
		[]byte(`{"id":"t","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]},"finish_reason":null}]}`),
		[]byte(`{"id":"t","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}`),
	}
	sent := runStream(t, ch.NewStream(&post.Request{Packed: testPacked()}, new(post.Result)), chunks)
	if len(sent) != len(chunks) {
		t.Fatalf("%d chunks sent", len(sent))
	}
	for i := range chunks {
		if !bytes.Equal(sent[i], chunks[i]) {
			t.Errorf("chunk %d changed: %s", i, sent[i])
		}
	}
}

// Two choices in one stream each get their own rewriter.
func TestStreamChoices(t *testing.T) {
	ch := post.NewChain(mustCitations(t, citations.Citations{Context: citations.ContextOff}))
	s := ch.NewStream(&post.Request{Packed: testPacked()}, new(post.Result))
	var got [2]strings.Builder
	for _, c := range []string{
		`{"id":"m","choices":[{"index":0,"delta":{"content":"a [do"}},{"index":1,"delta":{"content":"b [doc2"}}]}`,
		`{"id":"m","choices":[{"index":1,"delta":{"content":"] [doc1]"}},{"index":0,"delta":{"content":"c2]"}}]}`,
	} {
		out, err := s.Chunk([]byte(c))
		if err != nil {
			t.Fatal(err)
		}
		gjson.GetBytes(out[0], "choices").ForEach(func(_, v gjson.Result) bool {
			got[v.Get("index").Int()].WriteString(v.Get("delta.content").String())
			return true
		})
	}
	if got[0].String() != "a [doc1]" || got[1].String() != "b [doc1] [doc2]" {
		t.Errorf("got %q %q", got[0].String(), got[1].String())
	}
}

func TestMergeContext(t *testing.T) {
	for _, tc := range []struct{ a, b, want string }{
		{"", `{"x":1}`, `{"x":1}`},
		{`{"x":1}`, "", `{"x":1}`},
		{`{"intent":"i","citations":[]}`, `{"citations":[1],"ungrounded":true}`, `{"intent":"i","citations":[1],"ungrounded":true}`},
		{`{}`, `{"a":1}`, `{"a":1}`},
		{`[1]`, `{"a":1}`, `{"a":1}`},
		{`{"a":1}`, `"x"`, `{"a":1}`},
	} {
		if got := string(post.MergeContext([]byte(tc.a), []byte(tc.b))); got != tc.want {
			t.Errorf("merge(%s, %s) = %s, want %s", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestInteractionSetContext(t *testing.T) {
	var in post.Interaction
	res := &post.Result{Cited: []int{1}, Invented: 2, Ungrounded: false}
	in.SetContext(testPacked(), res)
	b, _ := json.Marshal(in)
	for _, want := range []string{
		`"records":[{"entity":"incident","id":"i-1","number":"CAS-01000"}]`,
		`"articles":[{"ref":"doc1","id":"a-1","number":"KA-01234","chunk_id":"0","cited":false},{"ref":"doc2","id":"a-2","number":"KA-05678","chunk_id":"3","cited":true}]`,
		`"citations":{"cited":1,"invented":2}`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s\nlacks %s", b, want)
		}
	}
}

func ExampleStream() {
	c, _ := citations.New(citations.Citations{Format: "[{number}]"})
	s := post.NewChain(c).NewStream(&post.Request{Packed: testPacked()}, new(post.Result))
	for _, data := range []string{
		`{"id":"c","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Reset it [do"},"finish_reason":null}]}`,
		`{"id":"c","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"c1]."},"finish_reason":null}]}`,
		`{"id":"c","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`,
	} {
		out, _ := s.Chunk([]byte(data))
		for _, o := range out {
			fmt.Println(string(o))
		}
	}
	// Output:
	// {"id":"c","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Reset it "},"finish_reason":null}]}
	// {"id":"c","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"[KA-01234]."},"finish_reason":null}]}
	// {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"","context":{"citations":[{"content":"Go to Settings.","title":"Reset a password","filepath":"KA-01234","url":"https://kb.example/KA-01234","chunk_id":"0"}]}},"finish_reason":null}]}
	// {"id":"c","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}
}

// A JSON answer (response_format json_object or json_schema) keeps its
// text byte for byte, streamed or not: citations go to message.context,
// nothing is appended, and an answer citations would refuse is flagged
// ungrounded instead of replaced.
func TestStructuredAnswerKeepsItsText(t *testing.T) {
	const answer = `{"reply":"Reset it [doc1] or wait [doc2].","n":[1,2]}`
	ch := testChain(t, citations.Citations{Format: "[{number}]({url})"})
	req := &post.Request{Packed: testPacked(), Structured: true}
	res := new(post.Result)
	out, err := ch.Body(body(answer), req, res)
	if err != nil {
		t.Fatal(err)
	}
	if got := gjson.GetBytes(out, "choices.0.message.content").Str; got != answer {
		t.Errorf("content %q", got)
	}
	if got := gjson.GetBytes(out, "choices.0.message.context.citations.#.chunk_id").Raw; got != `["0","3"]` {
		t.Errorf("citations %s", got)
	}
	for _, n := range []int{1, 5, len(answer)} {
		var pieces []string
		for i := 0; i < len(answer); i += n {
			pieces = append(pieces, answer[i:min(i+n, len(answer))])
		}
		sent := runStream(t, ch.NewStream(req, new(post.Result)), azureStream(pieces))
		text, ctx := accumulate(sent)
		if text != answer || gjson.GetBytes(ctx, "citations.#").Int() != 2 {
			t.Errorf("pieces of %d: %q %s", n, text, ctx)
		}
	}
	refusing := post.NewChain(mustCitations(t, citations.Citations{Require: true, OnUngrounded: citations.Refuse, Refusal: "No."}))
	res = new(post.Result)
	out, err = refusing.Body(body(`{"reply":"no sources"}`), req, res)
	if err != nil {
		t.Fatal(err)
	}
	if got := gjson.GetBytes(out, "choices.0.message.content").Str; got != `{"reply":"no sources"}` || res.Refused || !res.Ungrounded {
		t.Errorf("ungrounded JSON answer: %q %+v", got, res)
	}
}
