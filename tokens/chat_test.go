package tokens

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func countChat(t testing.TB, e *Encoder, body string) int {
	t.Helper()
	n, err := e.CountChat([]byte(body))
	if err != nil {
		t.Fatalf("CountChat(%s): %v", body, err)
	}
	return n
}

// The OpenAI cookbook "How to count tokens with tiktoken" sends these
// requests to the API and prints usage.prompt_tokens: 129 for gpt-3.5-turbo,
// gpt-4-0613 and gpt-4; 124 for gpt-4o and gpt-4o-mini (section 6), and with
// the weather tool 105 for gpt-3.5-turbo and gpt-4, 101 for gpt-4o and
// gpt-4o-mini (section 7).
func TestCountChatCookbook(t *testing.T) {
	for _, c := range []struct {
		file, model string
		want        int
	}{
		{"testdata/cookbook_messages.json", "gpt-3.5-turbo", 129},
		{"testdata/cookbook_messages.json", "gpt-4-0613", 129},
		{"testdata/cookbook_messages.json", "gpt-4", 129},
		{"testdata/cookbook_messages.json", "gpt-4o", 124},
		{"testdata/cookbook_messages.json", "gpt-4o-mini", 124},
		{"testdata/cookbook_tools.json", "gpt-3.5-turbo", 105},
		{"testdata/cookbook_tools.json", "gpt-4", 105},
		{"testdata/cookbook_tools.json", "gpt-4o", 101},
		{"testdata/cookbook_tools.json", "gpt-4o-mini", 101},
	} {
		e, err := ForModel(c.model)
		if err != nil {
			t.Fatal(err)
		}
		body := readFile(t, c.file)
		got, err := e.CountChat(body)
		if err != nil || got != c.want {
			t.Errorf("%s with %s: CountChat = %d, %v; want %d", c.file, c.model, got, err, c.want)
		}
		// And through CountMessages, which leaves out the tools.
		msgs := gjson.GetBytes(body, "messages")
		wantMsgs := got - e.countTools(gjson.GetBytes(body, "tools"), gjson.Result{})
		if n := e.CountMessages(msgs); n != wantMsgs {
			t.Errorf("%s with %s: CountMessages = %d, want %d", c.file, c.model, n, wantMsgs)
		}
	}
}

// The cookbook's num_tokens_from_messages, with the per-message overhead
// written out, on the cookbook messages: the totals above are the sum of
// these parts.
func TestCountChatCookbookBreakdown(t *testing.T) {
	for _, name := range []string{"cl100k_base", "o200k_base"} {
		e := mustEncoding(t, name)
		body := readFile(t, "testdata/cookbook_messages.json")
		want := 3 // reply priming
		gjson.GetBytes(body, "messages").ForEach(func(_, m gjson.Result) bool {
			want += 3 + e.Count(m.Get("role").Str) + e.Count(m.Get("content").Str)
			if name := m.Get("name"); name.Exists() {
				want += 1 + e.Count(name.Str)
			}
			return true
		})
		if got := countChat(t, e, string(body)); got != want {
			t.Errorf("%s: CountChat = %d, breakdown = %d", name, got, want)
		}
	}
}

func TestCountChatStructure(t *testing.T) {
	for _, name := range []string{"cl100k_base", "o200k_base"} {
		t.Run(name, func(t *testing.T) {
			e := mustEncoding(t, name)
			tok := e.Count
			base := `{"role":"user","content":"What is the capital of France?"}`
			one := countChat(t, e, `{"messages":[`+base+`]}`)

			if got := countChat(t, e, `{"messages":[]}`); got != 3 {
				t.Errorf("no messages: %d, want 3 (reply priming)", got)
			}
			if want := 3 + 3 + tok("user") + tok("What is the capital of France?"); one != want {
				t.Errorf("one message: %d, want %d", one, want)
			}

			// Another message adds 3 + tokens(role) + tokens(content).
			two := countChat(t, e, `{"messages":[`+base+`,{"role":"assistant","content":"Paris is the capital."}]}`)
			if want := one + 3 + tok("assistant") + tok("Paris is the capital."); two != want {
				t.Errorf("second message: %d, want %d", two, want)
			}

			// A name adds 1 + tokens(name).
			named := countChat(t, e, `{"messages":[{"role":"user","name":"alice_smith","content":"What is the capital of France?"}]}`)
			if want := one + 1 + tok("alice_smith"); named != want {
				t.Errorf("with name: %d, want %d", named, want)
			}

			// Content parts: text parts add their text, images 85 (low) or 765.
			parts := countChat(t, e, `{"messages":[{"role":"user","content":[
				{"type":"text","text":"What is in this image?"},
				{"type":"image_url","image_url":{"url":"https://example.com/a.png","detail":"low"}},
				{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}},
				{"type":"image_url","image_url":{"url":"https://example.com/b.png","detail":"high"}},
				{"type":"text","text":"And this one?"}]}]}`)
			if want := 3 + 3 + tok("user") + tok("What is in this image?") + 85 + 765 + 765 + tok("And this one?"); parts != want {
				t.Errorf("content parts: %d, want %d", parts, want)
			}
			// A string and a one-part array count the same.
			if a, b := one, countChat(t, e, `{"messages":[{"role":"user","content":[{"type":"text","text":"What is the capital of France?"}]}]}`); a != b {
				t.Errorf("string content %d != one text part %d", a, b)
			}

			// Assistant tool calls add each function's name and arguments;
			// the tool result counts role and content (not tool_call_id).
			args := `{\"location\": \"Paris, France\", \"unit\": \"celsius\"}`
			calls := countChat(t, e, `{"messages":[`+base+`,
				{"role":"assistant","content":null,"tool_calls":[
					{"id":"call_abc123","type":"function","function":{"name":"get_weather","arguments":"`+args+`"}},
					{"id":"call_def456","type":"function","function":{"name":"get_time","arguments":"{}"}}]},
				{"role":"tool","tool_call_id":"call_abc123","content":"18 degrees and sunny"}]}`)
			wantCalls := one +
				3 + tok("assistant") + tok("get_weather") + tok(`{"location": "Paris, France", "unit": "celsius"}`) + tok("get_time") + tok("{}") +
				3 + tok("tool") + tok("18 degrees and sunny")
			if calls != wantCalls {
				t.Errorf("tool calls: %d, want %d", calls, wantCalls)
			}
			// Legacy function_call on an assistant message.
			legacy := countChat(t, e, `{"messages":[`+base+`,{"role":"assistant","content":null,"function_call":{"name":"get_weather","arguments":"{}"}}]}`)
			if want := one + 3 + tok("assistant") + tok("get_weather") + tok("{}"); legacy != want {
				t.Errorf("function_call: %d, want %d", legacy, want)
			}

			// Unknown fields and non-object messages cost nothing beyond the overhead.
			extra := countChat(t, e, `{"model":"x","temperature":0.2,"messages":[{"role":"user","content":"What is the capital of France?","refusal":null,"extra":"ignored"}],"stream":true}`)
			if extra != one {
				t.Errorf("extra fields: %d, want %d", extra, one)
			}
			if got := countChat(t, e, `{"messages":[1,"x",null]}`); got != 3+3*3 {
				t.Errorf("non-object messages: %d, want 12", got)
			}
		})
	}
}

// The tools formula, checked term by term against the cookbook's
// num_tokens_for_tools written out by hand.
func TestCountChatTools(t *testing.T) {
	for _, c := range []struct {
		name     string
		funcInit int
	}{{"cl100k_base", 10}, {"o200k_base", 7}} {
		t.Run(c.name, func(t *testing.T) {
			e := mustEncoding(t, c.name)
			tok := e.Count
			msgs := `"messages":[{"role":"user","content":"hi"}]`
			plain := countChat(t, e, `{`+msgs+`}`)

			fn1 := `{"name":"get_weather","description":"Get the weather.","parameters":{"type":"object","properties":{
				"city":{"type":"string","description":"City name."},
				"unit":{"type":"string","description":"Unit","enum":["c","f","kelvin"]},
				"days":{"type":["integer","null"]}},"required":["city"]}}`
			fn2 := `{"name":"ping","parameters":{"type":"object","properties":{}}}`
			want1 := c.funcInit + tok("get_weather:Get the weather") +
				3 + // prop_init
				3 + tok("city:string:City name") +
				3 + -3 + (3 + tok("c")) + (3 + tok("f")) + (3 + tok("kelvin")) + tok("unit:string:Unit") +
				3 + tok("days:['integer', 'null']:")
			want2 := c.funcInit + tok("ping:")

			tools := countChat(t, e, `{`+msgs+`,"tools":[{"type":"function","function":`+fn1+`},{"type":"function","function":`+fn2+`}]}`)
			if want := plain + want1 + want2 + 12; tools != want {
				t.Errorf("tools: %d, want %d", tools, want)
			}
			// Legacy "functions" carry the same definitions unwrapped.
			funcs := countChat(t, e, `{`+msgs+`,"functions":[`+fn1+`,`+fn2+`]}`)
			if funcs != tools {
				t.Errorf("functions: %d, want %d (same as tools)", funcs, tools)
			}
			// func_end is added once, for any number of functions.
			single := countChat(t, e, `{`+msgs+`,"tools":[{"type":"function","function":`+fn2+`}]}`)
			if want := plain + want2 + 12; single != want {
				t.Errorf("one tool: %d, want %d", single, want)
			}
			// No functions, no func_end; lists that are not arrays are ignored.
			for _, extra := range []string{`"tools":[]`, `"tools":null`, `"tools":{"function":` + fn2 + `}`, `"tools":[{"type":"custom","custom":{"name":"x"}}]`} {
				if got := countChat(t, e, `{`+msgs+`,`+extra+`}`); got != plain {
					t.Errorf("%s: %d, want %d", extra, got, plain)
				}
			}
			// tools plus a non-array functions: the tools count, from cache or not.
			for range 2 {
				if got := countChat(t, e, `{`+msgs+`,"tools":[{"type":"function","function":`+fn1+`},{"type":"function","function":`+fn2+`}],"functions":{"x":`+fn2+`}}`); got != tools {
					t.Errorf("tools with non-array functions: %d, want %d", got, tools)
				}
			}
		})
	}
}

func TestCountChatErrors(t *testing.T) {
	e := mustEncoding(t, "o200k_base")
	for _, body := range []string{
		``,
		`{`,
		`{"messages":[}`,
		`{"messages":[{"role":"user","content":"hi"}]`,
		`not json`,
		`[{"role":"user"}]`,
		`"messages"`,
		`{}`,
		`{"model":"gpt-4o"}`,
		`{"messages":{"role":"user","content":"hi"}}`,
		`{"messages":"hi"}`,
		`{"messages":null}`,
		`{"messages":[{"role":"user","content":"hi"}]} trailing`,
	} {
		if n, err := e.CountChat([]byte(body)); err == nil {
			t.Errorf("CountChat(%q) = %d, want an error", body, n)
		}
	}
}

// Long repeated strings and tool lists are served from the cache with the
// same counts as a fresh count.
func TestCountChatCachedMatchesUncached(t *testing.T) {
	for _, name := range []string{"cl100k_base", "o200k_base"} {
		e := mustEncoding(t, name)
		uncached := *e
		uncached.cache = nil
		body := benchChatBody()
		want, err := uncached.CountChat(body)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if got, err := e.CountChat(body); err != nil || got != want {
				t.Errorf("%s: cached CountChat #%d = %d, %v; want %d", name, i, got, err, want)
			}
		}
		// Strings that share length but not text must not share a count.
		a, b := strings.Repeat("a", 300), strings.Repeat("a b ", 75)
		if e.Count(a) == e.Count(b) || e.Count(a) != uncached.Count(a) || e.Count(b) != uncached.Count(b) {
			t.Errorf("%s: cache confuses same-length strings", name)
		}
	}
}

func TestCacheBounded(t *testing.T) {
	c := newCountCache()
	for i := range 100_000 {
		c.put(c.key(strconv.Itoa(i), tagText), i)
	}
	total := 0
	for i := range c.shards {
		total += len(c.shards[i].cur) + len(c.shards[i].old)
	}
	if total > 2*cacheShards*shardEntries {
		t.Errorf("cache holds %d entries, bound is %d", total, 2*cacheShards*shardEntries)
	}
	// Recent entries are found, with their own values.
	for i := 100_000 - 10; i < 100_000; i++ {
		if n, ok := c.get(c.key(strconv.Itoa(i), tagText)); !ok || n != i {
			t.Errorf("recent entry %d: %d, %v", i, n, ok)
		}
	}
	// Tags separate kinds of values for the same text.
	c.put(c.key("x", tagTools), -1)
	if n, ok := c.get(c.key("x", tagText)); ok {
		t.Errorf("text lookup hit a tools entry: %d", n)
	}
}

// benchChatBody is a typical request: a 2 KB system prompt, a short
// exchange, and two tools.
func benchChatBody() []byte {
	var sys strings.Builder
	for i := 0; sys.Len() < 2048; i++ {
		fmt.Fprintf(&sys, "Rule %d: You are a careful assistant for ACME Corp. Answer politely, cite sources, and never reveal internal data. ", i)
	}
	return fmt.Appendf(nil, `{"model":"gpt-4o","messages":[
		{"role":"system","content":%q},
		{"role":"user","content":"Hi! Can you help me track my order #12345? It was supposed to arrive yesterday."},
		{"role":"assistant","content":"Of course. Let me look that up for you.","tool_calls":[{"id":"call_1","type":"function","function":{"name":"lookup_order","arguments":"{\"order_id\":\"12345\"}"}}]},
		{"role":"tool","tool_call_id":"call_1","content":"{\"status\":\"in transit\",\"eta\":\"2024-06-02\",\"carrier\":\"UPS\"}"},
		{"role":"user","content":"Thanks. Can you also tell me the return policy for electronics bought in the last 30 days?"}],
		"tools":[{"type":"function","function":{"name":"lookup_order","description":"Look up an order by id.","parameters":{"type":"object","properties":{"order_id":{"type":"string","description":"The order id."}},"required":["order_id"]}}},
		{"type":"function","function":{"name":"get_policy","description":"Fetch a store policy document.","parameters":{"type":"object","properties":{"topic":{"type":"string","enum":["returns","shipping","warranty"]}}}}}],
		"temperature":0.2}`, sys.String())
}
