package simulator

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

const weatherToolJSON = `{"type":"function","name":"get_weather","parameters":{"type":"object","properties":{"location":{"type":"string","minLength":2},"unit":{"type":"string","enum":["celsius","fahrenheit"]},"days":{"type":"integer","minimum":1,"maximum":7},"when":{"$ref":"#/$defs/when"}},"required":["location","unit","days","when"],"$defs":{"when":{"anyOf":[{"type":"null"},{"type":"string","format":"date"}]}}}}`

func TestResponsesObject(t *testing.T) {
	s := newSim(t, nil)
	w := call(t, s, "POST", "/openai/v1/responses", `{"model":"gpt-4o","instructions":"Be brief.","input":"Where is my order?","metadata":{"k":"v"}}`)
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	r := gjson.Parse(w.Body.String())
	for _, k := range []string{"id", "object", "created_at", "status", "error", "incomplete_details", "instructions", "metadata", "model", "output", "parallel_tool_calls", "temperature", "tool_choice", "tools", "top_p", "usage"} {
		if !r.Get(k).Exists() {
			t.Errorf("response lacks %q", k)
		}
	}
	if !strings.HasPrefix(r.Get("id").Str, "resp_") || r.Get("object").Str != "response" || r.Get("status").Str != "completed" ||
		r.Get("model").Str != "gpt-4o-2024-08-06" || r.Get("instructions").Str != "Be brief." || r.Get("metadata.k").Str != "v" {
		t.Fatalf("response %s", w.Body)
	}
	msg := r.Get("output.0")
	if msg.Get("type").Str != "message" || msg.Get("role").Str != "assistant" || msg.Get("content.0.type").Str != "output_text" ||
		msg.Get("content.0.text").Str != `Simulated answer to: "Where is my order?"` {
		t.Fatalf("output %s", msg.Raw)
	}
	u := r.Get("usage")
	if u.Get("input_tokens").Int() == 0 || u.Get("output_tokens").Int() == 0 || u.Get("total_tokens").Int() != u.Get("input_tokens").Int()+u.Get("output_tokens").Int() {
		t.Fatalf("usage %s", u.Raw)
	}

	// Stored: retrieve, input items, a follow-up, delete.
	id := r.Get("id").Str
	if g := call(t, s, "GET", "/openai/v1/responses/"+id, ""); g.Code != 200 || gjson.Get(g.Body.String(), "id").Str != id {
		t.Fatalf("get %d %s", g.Code, g.Body)
	}
	items := call(t, s, "GET", "/openai/responses/"+id+"/input_items?api-version=2025-04-01-preview", "")
	it := gjson.Get(items.Body.String(), "data.0")
	if items.Code != 200 || it.Get("type").Str != "message" || it.Get("content.0.text").Str != "Where is my order?" || !strings.HasPrefix(it.Get("id").Str, "msg_") {
		t.Fatalf("input items %d %s", items.Code, items.Body)
	}
	next := call(t, s, "POST", "/v1/responses", `{"model":"gpt-4o","previous_response_id":"`+id+`","input":"[[sim:echo]]"}`)
	if !strings.Contains(next.Body.String(), "Where is my order?") || gjson.Get(next.Body.String(), "previous_response_id").Str != id {
		t.Fatalf("follow-up does not see the conversation: %s", next.Body)
	}
	if c := call(t, s, "POST", "/v1/responses/"+id+"/cancel", ""); c.Code != 400 {
		t.Fatalf("cancel of a foreground response: %d", c.Code)
	}
	if d := call(t, s, "DELETE", "/v1/responses/"+id, ""); d.Code != 200 || !gjson.Get(d.Body.String(), "deleted").Bool() {
		t.Fatalf("delete %d %s", d.Code, d.Body)
	}
	if g := call(t, s, "GET", "/v1/responses/"+id, ""); g.Code != 404 {
		t.Fatalf("get after delete %d", g.Code)
	}
	if p := call(t, s, "POST", "/v1/responses", `{"model":"gpt-4o","previous_response_id":"resp_nope","input":"x"}`); p.Code != 404 ||
		gjson.Get(p.Body.String(), "error.code").Str != "previous_response_not_found" {
		t.Fatalf("unknown previous: %d %s", p.Code, p.Body)
	}
}

func TestResponsesStreamEvents(t *testing.T) {
	s := newSim(t, nil)
	w := call(t, s, "POST", "/openai/v1/responses", `{"model":"gpt-4o","stream":true,"input":[{"role":"user","content":[{"type":"input_text","text":"Reset my router"}]}]}`)
	var types []string
	var text strings.Builder
	for i, raw := range strings.Split(strings.TrimSpace(w.Body.String()), "\n\n") {
		name, data, _ := strings.Cut(raw, "\ndata: ")
		ev := gjson.Parse(data)
		if name != "event: "+ev.Get("type").Str || ev.Get("sequence_number").Int() != int64(i) {
			t.Fatalf("event %d: %q", i, raw)
		}
		types = append(types, ev.Get("type").Str)
		if ev.Get("type").Str == "response.output_text.delta" {
			text.WriteString(ev.Get("delta").Str)
		}
		if ev.Get("type").Str == "response.completed" && ev.Get("response.output.0.content.0.text").Str != text.String() {
			t.Fatalf("final text differs from the deltas")
		}
	}
	want := []string{"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"}
	if strings.Join(types[:4], ",") != strings.Join(want, ",") || types[len(types)-1] != "response.completed" ||
		types[len(types)-2] != "response.output_item.done" || text.String() != `Simulated answer to: "Reset my router"` {
		t.Fatalf("events %v, text %q", types, text.String())
	}
}

func TestResponsesToolCallAndFormats(t *testing.T) {
	s := newSim(t, nil)
	w := call(t, s, "POST", "/v1/responses", `{"model":"gpt-4o","input":"weather?","tools":[{"type":"web_search_preview"},`+weatherToolJSON+`]}`)
	item := gjson.Get(w.Body.String(), "output.0")
	if item.Get("type").Str != "function_call" || item.Get("name").Str != "get_weather" || !strings.HasPrefix(item.Get("call_id").Str, "call_") {
		t.Fatalf("call %s", w.Body)
	}
	var args struct {
		Location string  `json:"location"`
		Unit     string  `json:"unit"`
		Days     int     `json:"days"`
		When     *string `json:"when"`
	}
	if err := json.Unmarshal([]byte(item.Get("arguments").Str), &args); err != nil || len(args.Location) < 2 || args.Unit != "celsius" || args.Days != 1 || args.When == nil || *args.When != "2024-01-01" {
		t.Fatalf("arguments %s: %v", item.Get("arguments").Str, err)
	}
	// The tool's result gets a text answer that uses it.
	id := gjson.Get(w.Body.String(), "id").Str
	w = call(t, s, "POST", "/v1/responses", `{"model":"gpt-4o","previous_response_id":"`+id+`","tools":[`+weatherToolJSON+`],"input":[{"type":"function_call_output","call_id":"`+item.Get("call_id").Str+`","output":"sunny"}]}`)
	if got := gjson.Get(w.Body.String(), "output.0.content.0.text").Str; got != "Simulated answer using the tool result: sunny" {
		t.Fatalf("after the tool: %s", w.Body)
	}
	// tool_choice none answers in text.
	w = call(t, s, "POST", "/v1/responses", `{"model":"gpt-4o","input":"hi","tool_choice":"none","tools":[`+weatherToolJSON+`]}`)
	if gjson.Get(w.Body.String(), "output.0.type").Str != "message" {
		t.Fatalf("tool_choice none: %s", w.Body)
	}
	// text.format json_schema and json_object.
	w = call(t, s, "POST", "/v1/responses", `{"model":"gpt-4o","input":"classify","text":{"format":{"type":"json_schema","name":"t","schema":{"type":"object","properties":{"n":{"type":"number","exclusiveMinimum":3},"tags":{"type":"array","items":{"type":"string"},"minItems":2}}}}}}`)
	if got := gjson.Get(w.Body.String(), "output.0.content.0.text").Str; got != `{"n":4,"tags":["example","example"]}` {
		t.Fatalf("json_schema: %s", got)
	}
	w = call(t, s, "POST", "/v1/responses", `{"model":"gpt-4o","input":"classify","text":{"format":{"type":"json_object"}}}`)
	if got := gjson.Get(w.Body.String(), "output.0.content.0.text").Str; !json.Valid([]byte(got)) {
		t.Fatalf("json_object: %s", got)
	}
	// Logprobs, when included.
	w = call(t, s, "POST", "/v1/responses", `{"model":"gpt-4o","input":"hi","include":["message.output_text.logprobs"]}`)
	lp := gjson.Get(w.Body.String(), "output.0.content.0.logprobs")
	var joined strings.Builder
	lp.ForEach(func(_, e gjson.Result) bool { joined.WriteString(e.Get("token").Str); return true })
	if len(lp.Array()) < 3 || joined.String() != gjson.Get(w.Body.String(), "output.0.content.0.text").Str {
		t.Fatalf("logprobs %s", lp.Raw)
	}
}

func TestChatToolCallsFormatsAndLogprobs(t *testing.T) {
	s := newSim(t, nil)
	chatTool := `{"type":"function","function":` + strings.Replace(weatherToolJSON, `{"type":"function",`, `{`, 1) + `}`
	body := `{"messages":[{"role":"user","content":"weather?"}],"tools":[` + chatTool + `]}`
	w := call(t, s, "POST", "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", body)
	c := gjson.Get(w.Body.String(), "choices.0")
	tc := c.Get("message.tool_calls.0")
	if c.Get("finish_reason").Str != "tool_calls" || tc.Get("function.name").Str != "get_weather" || !json.Valid([]byte(tc.Get("function.arguments").Str)) || c.Get("message.content").Type != gjson.Null {
		t.Fatalf("tool call: %s", w.Body)
	}
	// Streamed: the name first, then the arguments in pieces.
	w = call(t, s, "POST", "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", strings.Replace(body, `{"messages"`, `{"stream":true,"messages"`, 1))
	var args strings.Builder
	finish, name := "", ""
	for _, raw := range strings.Split(strings.TrimSpace(w.Body.String()), "\n\n") {
		ev := gjson.Parse(strings.TrimPrefix(raw, "data: "))
		d := ev.Get("choices.0.delta.tool_calls.0")
		name += d.Get("function.name").Str
		args.WriteString(d.Get("function.arguments").Str)
		if f := ev.Get("choices.0.finish_reason"); f.Type == gjson.String {
			finish = f.Str
		}
	}
	if name != "get_weather" || finish != "tool_calls" || args.String() != tc.Get("function.arguments").Str {
		t.Fatalf("streamed call: name %q finish %q args %q", name, finish, args.String())
	}
	// A tool's result gets a text answer.
	w = call(t, s, "POST", "/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"weather?"},{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c","content":"sunny"}],"tools":[`+chatTool+`]}`)
	if got := gjson.Get(w.Body.String(), "choices.0.message.content").Str; got != "Simulated answer using the tool result: sunny" {
		t.Fatalf("after the tool: %s", w.Body)
	}
	// response_format json_schema.
	w = call(t, s, "POST", "/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"t","schema":{"type":"object","properties":{"ok":{"type":"boolean"}}}}}}`)
	if got := gjson.Get(w.Body.String(), "choices.0.message.content").Str; got != `{"ok":true}` {
		t.Fatalf("json_schema: %s", got)
	}
	// logprobs.
	w = call(t, s, "POST", "/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"logprobs":true}`)
	if n := len(gjson.Get(w.Body.String(), "choices.0.logprobs.content").Array()); n < 3 {
		t.Fatalf("logprobs: %s", w.Body)
	}
}

func TestExampleJSONBounded(t *testing.T) {
	// A recursive schema with minItems would be exponential without the bound.
	out := exampleJSON(nil, gjson.Parse(`{"type":"array","minItems":8,"items":{"$ref":"#"}}`))
	if len(out) > 2*maxExampleBytes || !json.Valid(out) {
		t.Fatalf("%d bytes, valid %v", len(out), json.Valid(out))
	}
}
