package caddymodule

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/tidwall/gjson"

	"github.com/groundgate/groundgate/budgets"
	"github.com/groundgate/groundgate/post"
	"github.com/groundgate/groundgate/tokens"
)

// greedyCap is what a greedy answer takes when the request sets no cap.
const greedyCap = 4000

// greedyHandler is an upstream that always uses everything it is
// allowed: n answers of max_completion_tokens / max_tokens each (the
// larger), or greedyCap without a cap. It counts the prompt it received
// as OpenAI bills it and reports that usage, streamed or not, chat or
// embeddings, answering with tool calls when the request offers tools.
func greedyHandler(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	enc, _ := tokens.ForModel("gpt-4o")
	if strings.HasSuffix(r.URL.Path, "/embeddings") {
		in := countEmbeddingsInput(enc, gjson.GetBytes(body, "input"))
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":%d,"total_tokens":%d}}`, in, in)
		return
	}
	prompt, _ := enc.CountChat(body)
	n := max(gjson.GetBytes(body, "n").Int(), 1)
	per := maxCompletion(body)
	if per == 0 {
		per = greedyCap
	}
	completion := n * per
	usage := fmt.Sprintf(`{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}`, prompt, completion, int64(prompt)+completion)
	tools := gjson.GetBytes(body, "tools").IsArray()
	if !gjson.GetBytes(body, "stream").Bool() {
		var choices []string
		for i := range n {
			msg := `{"role":"assistant","content":"` + strings.Repeat("word ", 5) + `"}`
			if tools {
				msg = `{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"lookup","arguments":"{\"order\":\"1\"}"}}]}`
			}
			choices = append(choices, fmt.Sprintf(`{"index":%d,"finish_reason":"length","message":%s}`, i, msg))
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"chatcmpl-g","object":"chat.completion","created":1,"model":"gpt-4o","choices":[%s],"usage":%s}`, strings.Join(choices, ","), usage)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	for i := range n {
		fmt.Fprintf(w, "data: {\"id\":\"chatcmpl-g\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":%d,\"finish_reason\":null,\"delta\":{\"role\":\"assistant\",\"content\":\"word word\"}}]}\n\n", i)
		fmt.Fprintf(w, "data: {\"id\":\"chatcmpl-g\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":%d,\"finish_reason\":\"length\",\"delta\":{}}]}\n\n", i)
	}
	if gjson.GetBytes(body, "stream_options.include_usage").Bool() {
		fmt.Fprintf(w, "data: {\"id\":\"chatcmpl-g\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[],\"usage\":%s}\n\n", usage)
	}
	io.WriteString(w, "data: [DONE]\n\n")
}

// newGreedy serves greedyHandler (newFake's recording would consume the
// body it reads).
func newGreedy(t *testing.T) *fakeUpstream {
	f := &fakeUpstream{Server: httptest.NewServer(http.HandlerFunc(greedyHandler))}
	t.Cleanup(f.Close)
	return f
}

// usageOf reads the total tokens a client was told it used, from a body
// or from a stream's usage chunk.
func usageOf(t *testing.T, body string) int64 {
	if !strings.HasPrefix(body, "data: ") {
		return gjson.Get(body, "usage.total_tokens").Int()
	}
	for _, ev := range events(body) {
		if u := gjson.Get(ev, "usage.total_tokens"); u.Exists() {
			return u.Int()
		}
	}
	t.Errorf("stream without usage: %.300s", body)
	return 0
}

// budgetShape is one kind of request; est is its reservation, computed
// here independently of the gateway: the prompt as billed plus n answers
// of their cap (the request's, or the policy's completion_estimate).
type budgetShape struct {
	name, path, body string
	est              int64
}

func chatPrompt(t *testing.T, body string) int64 {
	enc, _ := tokens.ForModel("gpt-4o")
	n, err := enc.CountChat([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return int64(n)
}

const shapeEstimate = 100 // the policy's completion_estimate

func budgetShapes(t *testing.T) []budgetShape {
	msgs := `"messages":[{"role":"system","content":"You answer order questions."},{"role":"user","content":"Where is order 1234?"}]`
	tools := `"tools":[{"type":"function","function":{"name":"lookup","description":"Find an order","parameters":{"type":"object","properties":{"order":{"type":"string"}}}}}]`
	chat := func(name, extra string, perAnswer, n int64) budgetShape {
		body := `{"model":"gpt-4o",` + msgs + extra + `}`
		return budgetShape{name, "/v1/chat/completions", body, chatPrompt(t, body) + n*perAnswer}
	}
	enc, _ := tokens.ForModel("gpt-4o")
	return []budgetShape{
		chat("one", `,"max_tokens":50`, 50, 1),
		chat("n8", `,"n":8,"max_tokens":50`, 50, 8),
		chat("n8_stream", `,"n":8,"max_completion_tokens":50,"stream":true,"stream_options":{"include_usage":true}`, 50, 8),
		chat("both_caps", `,"n":2,"max_tokens":10,"max_completion_tokens":120`, 120, 2),
		chat("no_cap", `,"n":3`, shapeEstimate, 3),
		chat("no_cap_stream", `,"stream":true,"stream_options":{"include_usage":true}`, shapeEstimate, 1),
		chat("tools", `,"n":2,"max_tokens":60,`+tools, 60, 2),
		{"embeddings", "/v1/embeddings", `{"model":"text-embedding-3-small","input":["where is my order",[1,2,3,4],"refund status"]}`,
			int64(enc.Count("where is my order") + 4 + enc.Count("refund status"))},
	}
}

// runBudgetBound sends every shape from 64 concurrent clients against one
// daily token quota and checks that the tokens the upstream billed for the
// admitted requests never exceed the quota by more than one request's
// estimate, and that the quota was used up.
func runBudgetBound(t *testing.T, store string) {
	up := newGreedy(t)
	for _, sh := range budgetShapes(t) {
		t.Run(sh.name, func(t *testing.T) {
			limit := 40 * sh.est
			dir := writePolicies(t, map[string]string{"p.yaml": fmt.Sprintf(`name: general
default: true
budgets:
  completion_estimate: %d
  limits:
    - per: global
      name: %s
      tokens_per_day: %d
`, shapeEstimate, uniqueName(t), limit)})
			g := policyGateway(t, dir, func(g *Gateway) {
				if store != "" {
					g.StoreRaw = []byte(store)
				}
			}, up, up)
			var admitted, refused, unavailable atomic.Int64
			var wg sync.WaitGroup
			for range 64 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 3 {
						r := do(t, g, "POST", sh.path, sh.body)
						switch r.status {
						case 200:
							admitted.Add(usageOf(t, r.body))
						case 403:
							refused.Add(1)
						case 503:
							// The store did not answer within its timeout
							// (a loaded machine): fail closed, nothing
							// admitted, the bound unaffected.
							if !strings.Contains(r.body, "budget_store_unavailable") {
								t.Errorf("status 503: %.300s", r.body)
							}
							unavailable.Add(1)
						default:
							t.Errorf("status %d: %.300s", r.status, r.body)
						}
					}
				}()
			}
			wg.Wait()
			t.Logf("%s: admitted %d tokens of %d (estimate %d, %d refused, %d store timeouts)", sh.name, admitted.Load(), limit, sh.est, refused.Load(), unavailable.Load())
			if admitted.Load() > limit+sh.est {
				t.Fatalf("admitted %d tokens against a quota of %d (one request's estimate: %d)", admitted.Load(), limit, sh.est)
			}
			if refused.Load() == 0 || admitted.Load() < limit-2*sh.est {
				t.Fatalf("admitted %d of %d, refused %d: the quota was not used up", admitted.Load(), limit, refused.Load())
			}
		})
	}
}

func TestBudgetBoundEveryShape(t *testing.T) { runBudgetBound(t, "") }

func TestBudgetBoundEveryShapeRedis(t *testing.T) {
	addr, _ := startRedis(t)
	runBudgetBound(t, fmt.Sprintf(`{"type":"redis","address":%q,"prefix":"gg-shapes:","pool_size":32}`, addr))
}

// completion_tokens bounds a request, so n answers share it; a cap that
// cannot give each answer a token is refused.
func TestCompletionTokensSharedByAnswers(t *testing.T) {
	rec := newFake(t, okHandler)
	dir := writePolicies(t, map[string]string{"p.yaml": budgetPolicy(`  limits:
    - per: key
      name: ` + uniqueName(t) + `
      requests_per_minute: 1000
`)}) // completion_tokens: 20
	g := policyGateway(t, dir, nil, rec, rec)
	for _, tc := range []struct {
		extra string
		want  int64 // max_tokens sent upstream
	}{
		{`,"n":4,"max_tokens":500`, 5},
		{`,"n":3`, 6},
		{`,"n":4,"max_tokens":2`, 2},
		{`,"n":null`, 20},
	} {
		r := do(t, g, "POST", "/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]`+tc.extra+`}`)
		_, sent := rec.lastRequest()
		if r.status != 200 || gjson.GetBytes(sent, "max_tokens").Int() != tc.want {
			t.Fatalf("%s: status %d, upstream max_tokens %s, want %d", tc.extra, r.status, gjson.GetBytes(sent, "max_tokens").Raw, tc.want)
		}
	}
	assertOpenAIError(t, do(t, g, "POST", "/v1/chat/completions", `{"model":"gpt-4o","n":21,"messages":[{"role":"user","content":"hi"}]}`), 400, "invalid_value")
	for _, n := range []string{`0`, `129`, `1.5`, `"2"`, `-1`} {
		r := do(t, g, "POST", "/v1/chat/completions", `{"model":"gpt-4o","n":`+n+`,"messages":[{"role":"user","content":"hi"}]}`)
		assertOpenAIError(t, r, 400, "")
		if gjson.Get(r.body, "error.param").Str != "n" {
			t.Fatalf("n=%s: %s", n, r.body)
		}
	}
}

func TestEstimateShapes(t *testing.T) {
	enc, _ := tokens.ForModel("gpt-4o")
	ex := &exchange{model: &model{tokenizer: "gpt-4o"}, policy: nil}
	rt := &policyRuntime{budget: budgetSpec{CompletionEstimate: 100}}
	msgs := `"messages":[{"role":"user","content":"hello there"}]`
	prompt := chatPrompt(t, `{`+msgs+`}`)
	for _, tc := range []struct {
		body       string
		completion int64
	}{
		{`{` + msgs + `}`, 100},
		{`{` + msgs + `,"n":5}`, 500},
		{`{` + msgs + `,"n":5,"max_tokens":7}`, 35},
		{`{` + msgs + `,"max_completion_tokens":7,"max_tokens":9}`, 9},
		{`{` + msgs + `,"max_completion_tokens":70,"max_tokens":9,"n":128}`, 128 * 70},
	} {
		est, err := ex.estimate([]byte(tc.body), rt)
		if err != nil || est.prompt != prompt || est.completion != tc.completion {
			t.Fatalf("%s: estimate %+v (%v), want prompt %d completion %d", tc.body, est, err, prompt, tc.completion)
		}
	}
	ex.route.op = opEmbeddings
	est, err := ex.estimate([]byte(`{"input":["a b c",[5,6,7],"dé"]}`), rt)
	if want := int64(enc.Count("a b c") + 3 + enc.Count("dé")); err != nil || est.prompt != want || est.completion != 0 {
		t.Fatalf("embeddings: %+v %v, want %d", est, err, want)
	}
	est, _ = ex.estimate([]byte(`{"input":[1,2,3,4,5]}`), rt)
	if est.prompt != 5 {
		t.Fatalf("token array: %+v", est)
	}
}

// settleRecorder remembers what each reservation was settled to.
type settleRecorder struct {
	budgets.Store
	mu       sync.Mutex
	settled  [][]int64
	released int
}

func (s *settleRecorder) Settle(ctx context.Context, r *budgets.Reservation, actual []int64) error {
	s.mu.Lock()
	s.settled = append(s.settled, actual)
	s.mu.Unlock()
	return s.Store.Settle(ctx, r, actual)
}

func (s *settleRecorder) Release(ctx context.Context, r *budgets.Reservation) error {
	s.mu.Lock()
	s.released++
	s.mu.Unlock()
	return s.Store.Release(ctx, r)
}

type auditRecorder struct {
	mu  sync.Mutex
	got []*post.Interaction
}

func (a *auditRecorder) Record(in *post.Interaction) {
	a.mu.Lock()
	a.got = append(a.got, in)
	a.mu.Unlock()
}

func (a *auditRecorder) last(t *testing.T) *post.Interaction {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.got) == 0 {
		t.Fatal("no audit record")
	}
	return a.got[len(a.got)-1]
}

// accountedGateway is a gateway with a token limit whose settlements and
// audit records the test reads.
func accountedGateway(t *testing.T, up *fakeUpstream) (*Gateway, *settleRecorder, *auditRecorder) {
	dir := writePolicies(t, map[string]string{"p.yaml": budgetPolicy(`  limits:
    - per: key
      name: ` + uniqueName(t) + `
      tokens_per_day: 1000000
`)})
	g := policyGateway(t, dir, nil, up, up)
	st, au := &settleRecorder{Store: g.store}, &auditRecorder{}
	g.store, g.audit = st, au
	return g, st, au
}

// brokenStreamHandler streams two choices, sends content for each, then
// resets the connection: no finish, no usage chunk, no [DONE].
func brokenStreamHandler(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	rc := http.NewResponseController(w)
	for _, ev := range []string{
		`{"id":"","object":"","created":0,"model":"","prompt_filter_results":[],"choices":[]}`,
		`{"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`,
		`{"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"Your order ships"},"finish_reason":null}]}`,
		`{"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":1,"delta":{"content":"It left the warehouse"},"finish_reason":null}]}`,
		`{"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":1,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"lookup","arguments":"{\"order\":"}}]},"finish_reason":null}]}`,
	} {
		fmt.Fprintf(w, "data: %s\n\n", ev)
	}
	_ = rc.Flush()
	panic(http.ErrAbortHandler)
}

// A stream that breaks after its first tokens is charged what was sent
// and what was delivered, every choice, and audited as incomplete.
func TestBrokenStreamSettlesDeliveredTokens(t *testing.T) {
	up := newFake(t, brokenStreamHandler)
	g, st, au := accountedGateway(t, up)
	body := `{"model":"gpt-4o","stream":true,"n":2,"messages":[{"role":"user","content":"Where is my order?"}]}`
	r := do(t, g, "POST", "/v1/chat/completions", body)
	if r.status != 200 || !strings.Contains(r.body, "upstream_stream_error") {
		t.Fatalf("%d %s", r.status, r.body)
	}
	enc, _ := tokens.ForModel("gpt-4o")
	prompt := chatPrompt(t, body)
	completion := int64(enc.Count("Your order ships") + enc.Count(`It left the warehouselookup{"order":`))
	in := au.last(t)
	if in.PromptTokens != prompt || in.CompletionTokens != completion || in.Status != 502 || !in.Incomplete || in.IncompleteReason != "upstream_error" {
		t.Fatalf("audit: %+v; want prompt %d completion %d, incomplete upstream_error", in, prompt, completion)
	}
	if len(st.settled) != 1 || st.settled[0][0] != prompt+completion || st.released != 0 {
		t.Fatalf("settled %v (released %d), want %d", st.settled, st.released, prompt+completion)
	}
}

// A client that leaves a stream midway is charged what reached it.
func TestAbandonedStreamSettlesDeliveredTokens(t *testing.T) {
	up := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		fmt.Fprint(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Partial answer\"},\"finish_reason\":null}]}\n\n")
		_ = http.NewResponseController(w).Flush()
		<-r.Context().Done()
	})
	g, st, au := accountedGateway(t, up)
	body := `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Tell me everything."}]}`
	ctx, cancel := context.WithCancel(context.Background())
	w := &watchWriter{ResponseRecorder: httptest.NewRecorder(), seen: "Partial answer", onSeen: cancel}
	serveCtx(t, ctx, g, w, "/v1/chat/completions", body)
	enc, _ := tokens.ForModel("gpt-4o")
	want := chatPrompt(t, body) + int64(enc.Count("Partial answer"))
	in := au.last(t)
	if in.PromptTokens+in.CompletionTokens != want || in.IncompleteReason != "client_disconnected" {
		t.Fatalf("audit: %+v, want %d tokens, client_disconnected", in, want)
	}
	if len(st.settled) != 1 || st.settled[0][0] != want {
		t.Fatalf("settled %v, want %d", st.settled, want)
	}
}

// A client that leaves a non-streamed call while the upstream has it: the
// upstream may still bill the whole answer, so the budget keeps the
// reservation's completion; the audit has the prompt and the marker.
func TestAbandonedCallKeepsReservation(t *testing.T) {
	arrived := make(chan struct{})
	up := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done()
	})
	g, st, au := accountedGateway(t, up)
	body := `{"model":"gpt-4o","n":2,"messages":[{"role":"user","content":"Where is my order?"}]}`
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-arrived; cancel() }()
	doCtx(t, ctx, g, "/v1/chat/completions", body)
	prompt := chatPrompt(t, body)
	in := au.last(t)
	if in.PromptTokens != prompt || in.CompletionTokens != 0 || in.Status != 499 || in.IncompleteReason != "client_disconnected" {
		t.Fatalf("audit: %+v, want prompt %d, 499 client_disconnected", in, prompt)
	}
	if want := prompt + 2*10; len(st.settled) != 1 || st.settled[0][0] != want || st.released != 0 {
		t.Fatalf("settled %v (released %d), want %d (prompt + n × completion_tokens/n)", st.settled, st.released, want)
	}
}

// An output filter that ends a stream marks it incomplete; the blocked
// chunk the upstream sent still counts.
func TestUpstreamFilteredStreamIsIncomplete(t *testing.T) {
	up := newFake(t, streamHandler([]string{
		`{"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":"Some"},"finish_reason":null}]}`,
		`{"id":"","object":"","created":0,"model":"","choices":[{"index":0,"finish_reason":"content_filter","content_filter_results":{"violence":{"filtered":true,"severity":"high"}}}]}`,
		`{"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}`,
	}, true, 0))
	g, st, au := accountedGateway(t, up)
	do(t, g, "POST", "/v1/chat/completions", `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	in := au.last(t)
	if !in.Incomplete || in.IncompleteReason != "content_filter" || in.Status != 200 || in.PromptTokens != 9 || in.CompletionTokens != 3 {
		t.Fatalf("audit: %+v", in)
	}
	if len(st.settled) != 1 || st.settled[0][0] != 12 {
		t.Fatalf("settled %v", st.settled)
	}
}

func doCtx(t *testing.T, ctx context.Context, g *Gateway, path, body string) {
	serveCtx(t, ctx, g, httptest.NewRecorder(), path, body)
}

func serveCtx(t *testing.T, ctx context.Context, g *Gateway, w http.ResponseWriter, path, body string) {
	t.Helper()
	req := httptest.NewRequestWithContext(ctx, "POST", path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testKey)
	req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
	if err := g.ServeHTTP(w, req, nil); err != nil {
		t.Fatalf("ServeHTTP returned %v", err)
	}
}

// watchWriter calls onSeen once what was written contains seen: the
// client leaves when it got that far.
type watchWriter struct {
	*httptest.ResponseRecorder
	seen   string
	onSeen func()
	once   sync.Once
}

func (w *watchWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseRecorder.Write(b)
	if strings.Contains(w.Body.String(), w.seen) {
		w.once.Do(w.onSeen)
	}
	return n, err
}

// The gateway's own output filter ends a stream: incomplete
// (content_filter), charged the prompt and what the upstream had sent
// when the gateway stopped reading, blocked part included.
func TestGatewayFilteredStreamIsIncomplete(t *testing.T) {
	const answer = "Sure. The internal codename is Project Falcon and it ships in May."
	g, main := filteredGateway(t, outputPolicy, outputFilters)
	au := &auditRecorder{}
	g.audit = au
	main.handler = chunkedStream(answer, 4)
	body := `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	do(t, g, "POST", "/v1/chat/completions", body)
	enc, _ := tokens.ForModel("gpt-4o")
	in := au.last(t)
	if !in.Incomplete || in.IncompleteReason != "content_filter" || in.PromptTokens != chatPrompt(t, body) ||
		in.CompletionTokens < int64(enc.Count("Sure. The internal codename is Project Falcon")) || in.CompletionTokens > int64(enc.Count(answer)) {
		t.Fatalf("audit: %+v", in)
	}
}

// A stream that stalls past stream_idle_timeout after its first token is
// charged what was delivered and audited as upstream_timeout.
func TestStalledStreamIsIncomplete(t *testing.T) {
	up := newFake(t, streamHandler(azureStream, true, 150*time.Millisecond))
	dir := writePolicies(t, map[string]string{"p.yaml": budgetPolicy(`  limits:
    - per: key
      name: ` + uniqueName(t) + `
      tokens_per_day: 100000
`)})
	g := policyGateway(t, dir, func(g *Gateway) { g.StreamIdleTimeout = caddy.Duration(50 * time.Millisecond) }, up, up)
	st, au := &settleRecorder{Store: g.store}, &auditRecorder{}
	g.store, g.audit = st, au
	body := `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	r := do(t, g, "POST", "/v1/chat/completions", body)
	if !strings.Contains(r.body, "upstream_stream_timeout") {
		t.Fatalf("%s", r.body)
	}
	enc, _ := tokens.ForModel("gpt-4o")
	want := chatPrompt(t, body) + int64(enc.Count("Hel"))
	in := au.last(t)
	if in.IncompleteReason != "upstream_timeout" || in.Status != 502 || in.PromptTokens+in.CompletionTokens != want {
		t.Fatalf("audit: %+v, want %d tokens", in, want)
	}
	if len(st.settled) != 1 || st.settled[0][0] != want {
		t.Fatalf("settled %v, want %d", st.settled, want)
	}
}
