package caddymodule

import (
	"errors"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/groundgate/groundgate/policies"
	"github.com/groundgate/groundgate/wire"
)

// For any chat body the gateway accepts and any completion_tokens, the
// body sent upstream caps every answer, the caps of the n answers fit in
// completion_tokens, and the reservation is n times the cap: the estimate
// bounds what the answers can cost. A refusal is a 400 naming n.
func FuzzAnswerCaps(f *testing.F) {
	for _, s := range []string{
		`{"messages":[{"role":"user","content":"hi"}]}`,
		`{"n":4,"max_tokens":500,"messages":[{"role":"user","content":"hi"}]}`,
		`{"n":128,"max_completion_tokens":7,"max_tokens":90,"messages":[{"role":"user","content":"hi"}]}`,
		`{"n":1.5,"messages":[{"role":"user","content":"hi"}]}`,
		`{"n":"3","messages":[{"role":"user","content":"hi"}]}`,
		`{"n":null,"max_tokens":null,"messages":[{"role":"user","content":"hi"}]}`,
		`{"n":1e2,"max_tokens":1e9,"messages":[{"role":"user","content":"hi"}]}`,
	} {
		f.Add([]byte(s), uint16(700))
		f.Add([]byte(s), uint16(0))
	}
	f.Fuzz(func(t *testing.T, body []byte, c uint16) {
		if _, err := wire.ParseChat(body); err != nil {
			return
		}
		rt := &policyRuntime{budget: budgetSpec{CompletionTokens: int(c % 5000), CompletionEstimate: 100}, counters: []counter{{unit: unitTokens}}}
		ex := &exchange{model: &model{tokenizer: "gpt-4o"}, policy: &policies.Policy{Name: "p"}}
		out, err := ex.capAnswers(body, rt)
		if err != nil {
			var we *wire.Error
			if !errors.As(err, &we) || we.Status != 400 || we.Param != "n" {
				t.Fatalf("capAnswers(%s): %v", body, err)
			}
			return
		}
		est, err := ex.estimate(out, rt)
		if err != nil {
			t.Fatalf("estimate of an accepted body %s: %v", out, err)
		}
		n, _ := choiceCount(out)
		perAnswer := maxCompletion(out)
		if perAnswer < 1 || est.completion != n*perAnswer {
			t.Fatalf("%s: cap per answer %d, n %d, reserved completion %d", out, perAnswer, n, est.completion)
		}
		for _, f := range []string{"max_tokens", "max_completion_tokens"} {
			if v := gjson.GetBytes(out, f); v.Exists() && v.Type == gjson.Number && v.Int() > perAnswer {
				t.Fatalf("%s: %s %d above the cap %d", out, f, v.Int(), perAnswer)
			}
		}
		if c := int64(rt.budget.CompletionTokens); c > 0 && est.completion > c {
			t.Fatalf("%s: %d answer tokens reserved under completion_tokens %d", out, est.completion, c)
		}
	})
}

// Whatever a stream chunk holds, collecting its answers never panics and
// keeps at most one buffer per possible choice.
func FuzzCollectDelta(f *testing.F) {
	f.Add([]byte(`{"choices":[{"index":0,"delta":{"content":"Hel"}},{"index":1,"delta":{"tool_calls":[{"function":{"name":"f","arguments":"{\"a\":"}}]}}]}`))
	f.Add([]byte(`{"choices":[{"index":-3,"delta":{"refusal":"no"},"finish_reason":"content_filter"}]}`))
	f.Add([]byte(`{"choices":[{"index":1e12,"delta":{"function_call":{"name":"x"}}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ex := &exchange{}
		ex.collectDelta(gjson.GetBytes(data, "choices"))
		ex.collectMessages(data)
		if len(ex.answers) > maxCountedChoices {
			t.Fatalf("%d buffers", len(ex.answers))
		}
	})
}
