package caddymodule

import (
	"encoding/json"
	"errors"
	"io"
	"net/http/httptrace"
	"reflect"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/groundgate/groundgate/grounding"
	"github.com/groundgate/groundgate/policies"
	"github.com/groundgate/groundgate/tokens"
)

func TestSentBodyReadsUntilReleased(t *testing.T) {
	s := newSentBody([]byte("0123456789"))
	first, _ := s.reader()
	if b, err := io.ReadAll(first); err != nil || string(b) != "0123456789" {
		t.Fatalf("read %q, %v", b, err)
	}
	// Once written, the request's reader lets go of the body; a rewind
	// (a retry on another connection) still reads it whole.
	s.written(httptrace.WroteRequestInfo{})
	if s.readers[0].Size() != 0 {
		t.Fatal("the written request's reader still holds the body")
	}
	again, err := s.reader()
	if b, _ := io.ReadAll(again); err != nil || string(b) != "0123456789" {
		t.Fatalf("rewind read %q, %v", b, err)
	}
	s.release()
	if _, err := s.reader(); !errors.Is(err, errBodyReleased) {
		t.Fatalf("rewind after release: %v", err)
	}
}

func TestReleaseForStreamKeepsCountsAndCitationFields(t *testing.T) {
	body := []byte(`{"model":"gpt-4o","stream":true,"response_format":{"type":"json_object"},"messages":[{"role":"user","content":"Where is my order?"}]}`)
	docs := []grounding.Doc{{Ref: "doc1", ArticleID: "a1", Number: "KA-1", Title: "Orders", URL: "https://kb/1", ChunkID: "c1", Content: "Orders ship in two days."}}
	packed := &grounding.Packed{
		Records:  []policies.Record{{Entity: "incident", ID: "i1", Number: "CAS-1", Title: "Late order", Fields: map[string]string{"description": "late"}}},
		Articles: []policies.Article{{Ref: "doc1", ID: "a1", Content: "Orders ship in two days."}},
		Docs:     docs,
		Tokens:   42,
	}
	sent := newSentBody(body)
	ex := &exchange{api: chatAPI{}, sent: body, est: tokenEstimate{prompt: 17}, packed: packed}
	ex.releaseForStream(&attempt{sent: sent})

	if ex.sent != nil || ex.sentTokens != 17 || !ex.sentKnown() {
		t.Fatalf("sent %q, tokens %d", ex.sent, ex.sentTokens)
	}
	if _, err := sent.reader(); !errors.Is(err, errBodyReleased) {
		t.Fatalf("upstream body not released: %v", err)
	}
	if packed.Articles != nil || !reflect.DeepEqual(packed.Records[0], policies.Record{Entity: "incident", ID: "i1", Number: "CAS-1"}) ||
		len(packed.Docs) != 1 || packed.Docs[0] != docs[0] || packed.Tokens != 42 {
		t.Fatalf("context after release: %+v", packed)
	}
	ex.forgetSent()
	if ex.sentKnown() {
		t.Fatal("an upstream error answer still counts a prompt")
	}

	// Without a count the body stays: counting it for every stream would
	// cost what only a broken one needs.
	ex = &exchange{api: chatAPI{}, sent: body}
	ex.releaseForStream(&attempt{})
	if ex.sent == nil || ex.sentTokens != 0 {
		t.Fatal("an uncounted prompt was released")
	}
}

// A started stream that released its prompt still settles a break with
// the prompt's tokens, and still leaves a JSON answer alone.
func TestReleasedStreamSettlesAndKeepsJSONAnswers(t *testing.T) {
	up := newFake(t, brokenStreamHandler)
	g, st, au := accountedGateway(t, up)
	body := `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Where is my order?"}]}`
	r := do(t, g, "POST", "/v1/chat/completions", body)
	if r.status != 200 || !strings.Contains(r.body, "upstream_stream_error") {
		t.Fatalf("%d %s", r.status, r.body)
	}
	req, sent := up.lastRequest()
	if req.ContentLength != int64(len(sent)) || len(req.TransferEncoding) != 0 || !gjson.ValidBytes(sent) {
		t.Fatalf("upstream got length %d, encoding %v for %d bytes", req.ContentLength, req.TransferEncoding, len(sent))
	}
	enc, _ := tokens.ForModel("gpt-4o")
	want := chatPrompt(t, body) + int64(enc.Count("Your order ships")+enc.Count(`It left the warehouselookup{"order":`))
	if in := au.last(t); in.PromptTokens+in.CompletionTokens != want || len(st.settled) != 1 || st.settled[0][0] != want {
		t.Fatalf("audit %+v, settled %v; want %d", in, st.settled, want)
	}

	cited, main := groundedGateway(t, "name: cited\ndefault: true\nbudgets:\n  prompt_tokens: 6000\ncontext:\n  articles:\n    top: 2\npost: [citations]\n", func(g *Gateway) {
		g.PostRaw = map[string]json.RawMessage{"citations": json.RawMessage(`{"post":"citations","format":"[{number}]({url})"}`)}
	})
	const answer = `{"steps":["Hold the power button [doc1]"]}`
	main.handler = chunkedStream(answer, 7)
	r = do(t, cited, "POST", "/v1/chat/completions", `{"model":"gpt-4o","stream":true,"response_format":{"type":"json_object"},"messages":[{"role":"user","content":"My TV does not turn on"}]}`)
	if text, _ := streamed(t, r.body); text != answer {
		t.Fatalf("a JSON answer was rewritten: %q", text)
	}
	main.handler = chunkedStream("Hold the power button [doc1].", 7)
	r = do(t, cited, "POST", "/v1/chat/completions", `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"My TV does not turn on"}]}`)
	if text, _ := streamed(t, r.body); strings.Contains(text, "[doc1]") || !strings.Contains(text, "](https://") {
		t.Fatalf("citations not rewritten after the release: %q", text)
	}
}
