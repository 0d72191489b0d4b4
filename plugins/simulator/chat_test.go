package simulator

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/tidwall/gjson"

	"github.com/groundgate/groundgate/tokens"
)

func mustEncoder(t testing.TB, model string) *tokens.Encoder {
	t.Helper()
	enc, err := tokens.ForModel(model)
	if err != nil {
		t.Fatalf("tokens.ForModel(%q): %v", model, err)
	}
	return enc
}

func TestChatCompletionShape(t *testing.T) {
	s := newSim(t, nil)
	w := call(t, s, "POST", chatPath, simpleReq)
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	body := w.Body.String()
	if !gjson.Valid(body) {
		t.Fatalf("invalid JSON: %s", body)
	}
	r := gjson.Parse(body)
	id := r.Get("id").Str
	if !strings.HasPrefix(id, "chatcmpl-") || len(id) != 38 || strings.Trim(id[9:], idAlphabet) != "" {
		t.Fatalf("id = %q", id)
	}
	if r.Get("object").Str != "chat.completion" || r.Get("model").Str != "gpt-4o-2024-08-06" ||
		r.Get("created").Int() < 1_700_000_000 || !strings.HasPrefix(r.Get("system_fingerprint").Str, "fp_") {
		t.Fatalf("top-level fields: %s", body)
	}
	wantPFR := `[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"},"jailbreak":{"filtered":false,"detected":false},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":false,"severity":"safe"}}}]`
	if got := r.Get("prompt_filter_results").Raw; got != wantPFR {
		t.Fatalf("prompt_filter_results = %s", got)
	}
	if n := r.Get("choices.#").Int(); n != 1 {
		t.Fatalf("%d choices", n)
	}
	c := r.Get("choices.0")
	wantCFR := `{"hate":{"filtered":false,"severity":"safe"},"protected_material_code":{"filtered":false,"detected":false},"protected_material_text":{"filtered":false,"detected":false},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":false,"severity":"safe"}}`
	if got := c.Get("content_filter_results").Raw; got != wantCFR {
		t.Fatalf("content_filter_results = %s", got)
	}
	if c.Get("index").Raw != "0" || c.Get("finish_reason").Str != "stop" || c.Get("logprobs").Type != gjson.Null {
		t.Fatalf("choice: %s", c.Raw)
	}
	m := c.Get("message")
	answer := m.Get("content").Str
	if m.Get("role").Str != "assistant" || m.Get("refusal").Type != gjson.Null || !m.Get("refusal").Exists() ||
		answer != `Simulated answer to: "hello there"` {
		t.Fatalf("message: %s", m.Raw)
	}

	enc := mustEncoder(t, "gpt-4o")
	wantPrompt, err := enc.CountChat([]byte(simpleReq))
	if err != nil {
		t.Fatal(err)
	}
	wantCompletion := enc.Count(answer)
	u := r.Get("usage")
	if u.Get("prompt_tokens").Int() != int64(wantPrompt) || u.Get("completion_tokens").Int() != int64(wantCompletion) ||
		u.Get("total_tokens").Int() != int64(wantPrompt+wantCompletion) || wantPrompt == 0 || wantCompletion == 0 {
		t.Fatalf("usage %s, want prompt %d completion %d", u.Raw, wantPrompt, wantCompletion)
	}
	if u.Get("prompt_tokens_details.cached_tokens").Raw != "0" || u.Get("completion_tokens_details.reasoning_tokens").Raw != "0" {
		t.Fatalf("usage details: %s", u.Raw)
	}
}

func TestDefaultAnswerQuotesLastUserMessage(t *testing.T) {
	s := newSim(t, nil)
	long := strings.Repeat("é", 250)
	for _, tc := range []struct{ body, want string }{
		{`{"messages":[{"role":"user","content":"first"},{"role":"assistant","content":"x"},{"role":"user","content":"second \"quoted\"\nline"}]}`,
			"Simulated answer to: \"second \"quoted\"\nline\""},
		{`{"messages":[{"role":"user","content":[{"type":"text","text":"part one"},{"type":"image_url","image_url":{"url":"https://x"}},{"type":"text","text":"part two"}]}]}`,
			"Simulated answer to: \"part one\npart two\""},
		{`{"messages":[{"role":"system","content":"only system"}]}`, `Simulated answer to: ""`},
		{`{"messages":[{"role":"user","content":"` + long + `"}]}`, `Simulated answer to: "` + strings.Repeat("é", 200) + `"`},
		{`{"messages":[{"role":"user","content":"hi [[sim:delay_ms=0]] there"}]}`, `Simulated answer to: "hi  there"`},
	} {
		w := call(t, s, "POST", chatPath, tc.body)
		if got := gjson.Get(w.Body.String(), "choices.0.message.content").Str; got != tc.want {
			t.Errorf("answer = %q, want %q", got, tc.want)
		}
	}
}

func TestBadRequests(t *testing.T) {
	s := newSim(t, nil)
	invalidJSON := `{"error":{"message":"We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)","type":"invalid_request_error","param":null,"code":null}}`
	expectBody(t, call(t, s, "POST", chatPath, `{"messages":[`), 400, invalidJSON)
	expectBody(t, call(t, s, "POST", chatPath, ``), 400, invalidJSON)
	expectBody(t, call(t, s, "POST", chatPath, `{}`), 400,
		`{"error":{"message":"Missing required parameter: 'messages'.","type":"invalid_request_error","param":"messages","code":"missing_required_parameter"}}`)

	for _, tc := range []struct{ body, param, code string }{
		{`[1,2]`, "", "invalid_type"},
		{`{"messages":"hi"}`, "messages", "invalid_type"},
		{`{"messages":[]}`, "messages", "empty_array"},
		{`{"messages":[1]}`, "messages[0]", "invalid_type"},
		{`{"messages":[{"content":"x"}]}`, "messages[0].role", "missing_required_parameter"},
		{`{"messages":[{"role":"wizard","content":"x"}]}`, "messages[0].role", "invalid_value"},
		{`{"messages":[{"role":"user","content":"x"},{"role":"user"}]}`, "messages[1].content", "missing_required_parameter"},
		{`{"messages":[{"role":"user","content":5}]}`, "messages[0].content", "invalid_type"},
		{`{"messages":[{"role":"user","content":"x"}],"n":0}`, "n", "integer_below_min_value"},
		{`{"messages":[{"role":"user","content":"x"}],"n":129}`, "n", "integer_above_max_value"},
		{`{"messages":[{"role":"user","content":"x"}],"n":1.5}`, "n", "invalid_type"},
		{`{"messages":[{"role":"user","content":"x"}],"max_tokens":"10"}`, "max_tokens", "invalid_type"},
		{`{"messages":[{"role":"user","content":"x"}],"max_completion_tokens":0}`, "max_completion_tokens", "integer_below_min_value"},
		{`{"messages":[{"role":"user","content":"x"}],"stream":"yes"}`, "stream", "invalid_type"},
		{`{"messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true}}`, "stream_options", "invalid_value"},
		{`{"messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e"]}`, "stop", "array_above_max_length"},
		{`{"messages":[{"role":"user","content":"x"}],"stop":7}`, "stop", "invalid_type"},
		{`{"messages":[{"role":"user","content":"[[sim:bogus]]"}]}`, "messages", ""},
		{`{"messages":[{"role":"user","content":"[[sim:tokens=abc]]"}]}`, "messages", ""},
		{`{"messages":[{"role":"user","content":"[[sim:status=200]]"}]}`, "messages", ""},
		{`{"messages":[{"role":"user","content":"[[sim:tokens=5"}]}`, "messages", ""},
	} {
		w := call(t, s, "POST", chatPath, tc.body)
		r := gjson.Parse(w.Body.String())
		if w.Code != 400 || r.Get("error.type").Str != "invalid_request_error" || r.Get("error.param").Str != tc.param ||
			r.Get("error.code").Str != tc.code || r.Get("error.message").Str == "" {
			t.Errorf("%s: %d %s", tc.body, w.Code, w.Body)
		}
		for _, k := range []string{"message", "type", "param", "code"} {
			if !r.Get("error." + k).Exists() {
				t.Errorf("%s: error.%s missing", tc.body, k)
			}
		}
	}
	if w := call(t, s, "POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}]}`); w.Code != 400 ||
		gjson.Get(w.Body.String(), "error.param").Str != "model" {
		t.Errorf("v1 without model: %d %s", w.Code, w.Body)
	}

	small := newSim(t, func(s *Simulator) { s.MaxRequestBodySize = 100 })
	w := call(t, small, "POST", chatPath, `{"messages":[{"role":"user","content":"`+strings.Repeat("x", 200)+`"}]}`)
	if w.Code != 413 || gjson.Get(w.Body.String(), "error.type").Str != "invalid_request_error" {
		t.Errorf("oversized body: %d %s", w.Code, w.Body)
	}
}

func TestPromptContentFilter(t *testing.T) {
	s := newSim(t, func(s *Simulator) { s.BlockedTerms = []string{"Forbidden Phrase", "other"} })
	want := `{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry. To learn more about our content filtering policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"hate":{"filtered":false,"severity":"safe"},"jailbreak":{"filtered":false,"detected":false},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":true,"severity":"high"}}}}}`
	for _, body := range []string{
		`{"messages":[{"role":"user","content":"say the FORBIDDEN phrase now"}]}`,
		`{"messages":[{"role":"system","content":"an OTHER thing"},{"role":"user","content":"hi"}]}`,
		`{"messages":[{"role":"user","content":[{"type":"text","text":"forbidden phrase"}]}]}`,
		`{"messages":[{"role":"user","content":"forbidden phrase"}],"stream":true}`,
	} {
		expectBody(t, call(t, s, "POST", chatPath, body), 400, want)
	}
	if w := call(t, s, "POST", chatPath, `{"messages":[{"role":"user","content":"forbidden, phrase"}]}`); w.Code != 200 {
		t.Fatalf("non-matching prompt: %d", w.Code)
	}
	sexual := newSim(t, func(s *Simulator) { s.BlockedTerms = []string{"x"}; s.FilterCategory = "sexual" })
	w := call(t, sexual, "POST", chatPath, `{"messages":[{"role":"user","content":"x"}]}`)
	if gjson.Get(w.Body.String(), "error.innererror.content_filter_result.sexual.filtered").Type != gjson.True ||
		gjson.Get(w.Body.String(), "error.innererror.content_filter_result.violence.filtered").Type != gjson.False {
		t.Fatalf("category: %s", w.Body)
	}
}

func TestOutputContentFilter(t *testing.T) {
	s := newSim(t, func(s *Simulator) { s.BlockedOutputTerms = []string{"SECRET"} })
	w := call(t, s, "POST", chatPath, `{"messages":[{"role":"user","content":"tell me the secret"}],"n":2}`)
	r := gjson.Parse(w.Body.String())
	if w.Code != 200 || r.Get("choices.#").Int() != 2 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	for _, c := range r.Get("choices").Array() {
		if c.Get("finish_reason").Str != "content_filter" || c.Get("message.content").Exists() ||
			c.Get("message.role").Str != "assistant" ||
			c.Get("content_filter_results.violence").Raw != `{"filtered":true,"severity":"high"}` ||
			c.Get("content_filter_results.hate.filtered").Type != gjson.False {
			t.Fatalf("filtered choice: %s", c.Raw)
		}
	}
	// The prompt itself is not filtered by output terms.
	if r.Get("prompt_filter_results.0.content_filter_results.violence.filtered").Type != gjson.False {
		t.Fatal("prompt marked filtered")
	}
	// Usage still counts the generated answer (Azure bills filtered output).
	if r.Get("usage.completion_tokens").Int() == 0 {
		t.Fatalf("usage: %s", r.Get("usage").Raw)
	}
}

func TestDirectiveEcho(t *testing.T) {
	s := newSim(t, nil)
	msgs := `[ {"role":"system","content":"You are \"Groundgate\".\nCite [doc1]."},{"role":"user","content":"q? [[sim:echo]]"} ]`
	w := call(t, s, "POST", chatPath, `{"messages":`+msgs+`,"temperature":0}`)
	if got := gjson.Get(w.Body.String(), "choices.0.message.content").Str; got != msgs {
		t.Fatalf("echo = %q\nwant   %q", got, msgs)
	}
	w = call(t, s, "POST", chatPath, `{"messages":[{"role":"system","content":"one"},{"role":"user","content":"u"},{"role":"developer","content":[{"type":"text","text":"two"}]},{"role":"user","content":"[[sim:echo_system]]"}]}`)
	if got := gjson.Get(w.Body.String(), "choices.0.message.content").Str; got != "one\ntwo" {
		t.Fatalf("echo_system = %q", got)
	}
}

func TestDirectiveTokensExact(t *testing.T) {
	s := newSim(t, nil)
	for _, dep := range []struct{ path, model string }{
		{chatPath, "gpt-4o"},
		{"/openai/deployments/gpt-35-turbo/chat/completions?api-version=2024-10-21", "gpt-35-turbo"},
	} {
		enc := mustEncoder(t, dep.model)
		for _, n := range []int{0, 1, 2, 7, 9, 100, 1000, 4097} {
			w := call(t, s, "POST", dep.path, `{"messages":[{"role":"user","content":"[[sim:tokens=`+strconv.Itoa(n)+`]]"}]}`)
			r := gjson.Parse(w.Body.String())
			answer := r.Get("choices.0.message.content").Str
			if got := enc.Count(answer); got != n {
				t.Fatalf("%s tokens=%d: answer counts %d tokens", dep.model, n, got)
			}
			if r.Get("usage.completion_tokens").Int() != int64(n) || r.Get("choices.0.finish_reason").Str != "stop" {
				t.Fatalf("%s tokens=%d: %s", dep.model, n, r.Get("usage").Raw)
			}
		}
	}
}

func TestMaxTokensAndStop(t *testing.T) {
	s := newSim(t, nil)
	enc := mustEncoder(t, "gpt-4o")
	for _, field := range []string{"max_tokens", "max_completion_tokens"} {
		w := call(t, s, "POST", chatPath, `{"messages":[{"role":"user","content":"[[sim:tokens=50]]"}],"`+field+`":10}`)
		r := gjson.Parse(w.Body.String())
		answer := r.Get("choices.0.message.content").Str
		if r.Get("choices.0.finish_reason").Str != "length" || enc.Count(answer) != 10 || r.Get("usage.completion_tokens").Int() != 10 {
			t.Fatalf("%s: %q %s", field, answer, r.Get("usage").Raw)
		}
	}
	// default answer truncated inside the quote
	w := call(t, s, "POST", chatPath, `{"messages":[{"role":"user","content":"a rather long question about many things"}],"max_tokens":3}`)
	r := gjson.Parse(w.Body.String())
	answer := r.Get("choices.0.message.content").Str
	if r.Get("choices.0.finish_reason").Str != "length" || enc.Count(answer) > 3 || !strings.HasPrefix("Simulated answer to:", answer) || answer == "" {
		t.Fatalf("truncated = %q", answer)
	}
	// a large max_tokens changes nothing
	w = call(t, s, "POST", chatPath, `{"messages":[{"role":"user","content":"hi"}],"max_tokens":1000}`)
	if gjson.Get(w.Body.String(), "choices.0.finish_reason").Str != "stop" {
		t.Fatal(w.Body)
	}
	// stop sequences (string and array)
	for _, stop := range []string{`" fox"`, `["zzz"," jumps"," fox"]`} {
		w = call(t, s, "POST", chatPath, `{"messages":[{"role":"user","content":"[[sim:tokens=20]]"}],"stop":`+stop+`}`)
		r = gjson.Parse(w.Body.String())
		if got := r.Get("choices.0.message.content").Str; got != "The quick brown" || r.Get("choices.0.finish_reason").Str != "stop" ||
			r.Get("usage.completion_tokens").Int() != 3 {
			t.Fatalf("stop %s: %q %s", stop, got, r.Raw)
		}
	}
}

func TestChoicesN(t *testing.T) {
	s := newSim(t, nil)
	for _, tc := range []struct{ n, want int }{{3, 3}, {20, maxChoices}} {
		w := call(t, s, "POST", chatPath, `{"messages":[{"role":"user","content":"[[sim:tokens=5]]"}],"n":`+strconv.Itoa(tc.n)+`}`)
		r := gjson.Parse(w.Body.String())
		if int(r.Get("choices.#").Int()) != tc.want {
			t.Fatalf("n=%d: %d choices", tc.n, r.Get("choices.#").Int())
		}
		for i, c := range r.Get("choices").Array() {
			if c.Get("index").Int() != int64(i) || c.Get("message.content").Str != "The quick brown fox jumps" {
				t.Fatalf("choice %d: %s", i, c.Raw)
			}
		}
		if r.Get("usage.completion_tokens").Int() != int64(5*tc.want) {
			t.Fatalf("usage: %s", r.Get("usage").Raw)
		}
	}
}

func TestInjectedStatus(t *testing.T) {
	s := newSim(t, func(s *Simulator) { s.RetryAfter = caddy.Duration(2500 * time.Millisecond) })
	w := call(t, s, "POST", chatPath, `{"messages":[{"role":"user","content":"[[sim:status=429]]"}]}`)
	want429 := `{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 3 seconds. Please go here: https://aka.ms/oai/quotaincrease if you would like to further increase the default rate limit."}}`
	expectBody(t, w, 429, want429)
	if w.Header().Get("retry-after") != "3" || w.Header().Get("retry-after-ms") != "2500" {
		t.Fatalf("retry headers: %v", w.Header())
	}
	w = call(t, s, "POST", chatPath, `{"messages":[{"role":"user","content":"[[sim:status=429]][[sim:retry_after_ms=800]]"}]}`)
	if w.Code != 429 || w.Header().Get("retry-after") != "1" || w.Header().Get("retry-after-ms") != "800" ||
		!strings.Contains(w.Body.String(), "Please retry after 1 second. ") {
		t.Fatalf("%d %v %s", w.Code, w.Header(), w.Body)
	}
	expectBody(t, call(t, s, "POST", chatPath, `{"messages":[{"role":"user","content":"[[sim:status=500]]"}]}`), 500,
		`{"error":{"code":"InternalServerError","message":"Backend returned unexpected response. Please contact Microsoft for help."}}`)
	w = call(t, s, "POST", chatPath, `{"messages":[{"role":"user","content":"[[sim:status=503]]"}],"stream":true}`)
	if w.Code != 503 || gjson.Get(w.Body.String(), "error.code").Str != "ServiceUnavailable" || w.Header().Get("retry-after") == "" {
		t.Fatalf("503: %d %s", w.Code, w.Body)
	}
	w = call(t, s, "POST", "/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"[[sim:status=418]]"}]}`)
	if w.Code != 418 || gjson.Get(w.Body.String(), "error.code").Str != "418" {
		t.Fatalf("418: %d %s", w.Code, w.Body)
	}
}

func TestInjectedFaultRates(t *testing.T) {
	errs := newSim(t, func(s *Simulator) { s.ErrorRate = 1 })
	for _, p := range []string{chatPath, embedPath} {
		if w := call(t, errs, "POST", p, `{"messages":[{"role":"user","content":"x"}],"input":"x"}`); w.Code != 500 ||
			gjson.Get(w.Body.String(), "error.code").Str != "InternalServerError" {
			t.Fatalf("%s: %d %s", p, w.Code, w.Body)
		}
	}
	rl := newSim(t, func(s *Simulator) { s.RateLimitRate = 1 })
	w := call(t, rl, "POST", "/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}`)
	if w.Code != 429 || w.Header().Get("retry-after") != "1" || w.Header().Get("retry-after-ms") != "1000" ||
		!strings.Contains(w.Body.String(), "API version v1 have exceeded token rate limit") {
		t.Fatalf("%d %v %s", w.Code, w.Header(), w.Body)
	}

	// A fraction: about half of 400 requests fail, reproducibly.
	half := func() int {
		s := newSim(t, func(s *Simulator) { s.ErrorRate = 0.5 })
		fails := 0
		for range 400 {
			if call(t, s, "POST", chatPath, simpleReq).Code == 500 {
				fails++
			}
		}
		return fails
	}
	a, b := half(), half()
	if a != b || a < 140 || a > 260 {
		t.Fatalf("error_rate 0.5 gave %d and %d failures of 400", a, b)
	}
}
