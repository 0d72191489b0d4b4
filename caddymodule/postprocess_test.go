package caddymodule

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	_ "github.com/groundgate/groundgate/plugins/post/append"
	_ "github.com/groundgate/groundgate/plugins/post/citations"
	_ "github.com/groundgate/groundgate/plugins/post/records"
)

const citedPolicy = `name: cited
default: true
context:
  articles:
    top: 2
post: [citations, disclaimer]
`

func citedGateway(t *testing.T) (*Gateway, *fakeUpstream) {
	return groundedGateway(t, citedPolicy, func(g *Gateway) {
		g.PostRaw = map[string]json.RawMessage{
			"citations":  json.RawMessage(`{"post":"citations","format":"[{number}]({url})"}`),
			"disclaimer": json.RawMessage(`{"post":"append","text":"AI-generated; check before sending."}`),
		}
	})
}

func TestCitationsAndDisclaimer(t *testing.T) {
	g, main := citedGateway(t)
	main.handler = answerHandler("Hold the power button for 10 seconds [doc1]. Then call us [doc7].")
	r := do(t, g, "POST", "/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"My TV does not turn on and the standby light blinks"}]}`)
	msg := gjson.Get(r.body, "choices.0.message")
	content := msg.Get("content").Str
	if strings.Contains(content, "[doc7]") || strings.Contains(content, "[doc1]") || !strings.Contains(content, "(https://support.contoso.example/kb/KA-") ||
		!strings.HasSuffix(content, "AI-generated; check before sending.") {
		t.Fatalf("content: %q", content)
	}
	cits := msg.Get("context.citations")
	if cits.Get("#").Int() != 1 || cits.Get("0.title").Str == "" || cits.Get("0.url").Str == "" || !cits.Get("0.content").Exists() {
		t.Fatalf("context.citations: %s", msg.Raw)
	}
}

func TestCitationsOnStreams(t *testing.T) {
	g, main := citedGateway(t)
	const answer = "Hold the power button for 10 seconds [doc1]. Then call us [doc7]."
	for _, n := range []int{1, 2, 5, len(answer)} {
		main.handler = chunkedStream(answer, n)
		r := do(t, g, "POST", "/v1/chat/completions", `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"My TV does not turn on and the standby light blinks"}]}`)
		text, finish := streamed(t, r.body)
		if strings.Contains(text, "[doc") || !strings.Contains(text, "(https://support.contoso.example/kb/KA-") ||
			!strings.HasSuffix(text, "AI-generated; check before sending.") || finish != "stop" {
			t.Fatalf("pieces of %d: %q (finish %q)", n, text, finish)
		}
		if !strings.Contains(r.body, `"citations":[`) {
			t.Fatalf("pieces of %d: no context.citations in the stream", n)
		}
	}
}

// Record numbers the model mentions are resolved and linked (step 5).
func TestRecordLinksInAnswers(t *testing.T) {
	g, main := groundedGateway(t, "name: p\ndefault: true\npost: [links]\n", func(g *Gateway) {
		g.PostRaw = map[string]json.RawMessage{
			"links": json.RawMessage(`{"post":"records","formats":{"incident":"[{number}](https://crm.example/incident/{id})"},"unknown":"flag"}`),
		}
	})
	main.handler = answerHandler("This matches CAS-01001-K7M2Q9, not CAS-99999-ZZZZZZ.")
	r := do(t, g, "POST", "/v1/chat/completions", chatBody)
	msg := gjson.Get(r.body, "choices.0.message")
	if msg.Get("content").Str != "This matches [CAS-01001-K7M2Q9](https://crm.example/incident/10464d82-3cda-5e14-a8eb-7ac0529cbde1), not CAS-99999-ZZZZZZ." ||
		msg.Get("context.unresolved_records.0").Str != "CAS-99999-ZZZZZZ" {
		t.Fatalf("%s", r.body)
	}
}
