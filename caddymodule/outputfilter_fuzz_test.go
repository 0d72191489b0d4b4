package caddymodule

import (
	"encoding/json"
	"reflect"
	"strconv"
	"testing"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/groundgate/groundgate/filters"
)

// FuzzStreamFilterChunk checks the stream window's in-place edits of a
// chunk against setting each scanned text at its path: the same chunk,
// the same verdict, whatever the chunk holds. Both start from fresh
// scanners, so they emit the same texts.
func FuzzStreamFilterChunk(f *testing.F) {
	f.Add([]byte(`{"id":"c","choices":[{"index":0,"delta":{"content":"card 4111 1111 1111 1111"},"finish_reason":null}]}`))
	f.Add([]byte(`{"choices":[{"index":0,"delta":{"refusal":"no 4111","content":"4111 1111 1111 1111\n\u00e9"},"finish_reason":"stop"},{"index":1,"delta":{"content":"x"}}]}`))
	f.Add([]byte(`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{\"card\":\"4111 1111 1111 1111\"}"}},{"index":0,"function":{"name":"f"}}]},"finish_reason":"tool_calls"}]}`))
	f.Add([]byte(`{"choices":[{"index":0,"delta":{"content":"project falcon"}}]}`))
	f.Add([]byte(`{"choices":[{"index":2,"finish_reason":"length","delta":{}}],"usage":null}`))
	g, _ := filteredGateway(f, outputPolicy, outputFilters)
	chain := g.policies.cur.Load().rt["p"].filters
	f.Fuzz(func(t *testing.T, data []byte) {
		ex := &exchange{g: g, policy: g.policies.cur.Load().set.Policies()[0]}
		got, gotBlocked := newStreamFilter(chain).chunk(ex, data, readChatChunk(data).choices)
		want, wantBlocked := referenceChunk(newStreamFilter(chain), data)
		// When several choices block in one chunk, which one is named
		// may differ: the stream ends either way.
		if (gotBlocked >= 0) != (wantBlocked >= 0) {
			t.Fatalf("blocked %d, want %d", gotBlocked, wantBlocked)
		}
		if gotBlocked >= 0 || !json.Valid(data) {
			return
		}
		var a, b any
		if err := json.Unmarshal(got, &a); err != nil {
			t.Fatalf("edited chunk is not JSON: %v: %s", err, got)
		}
		if err := json.Unmarshal(want, &b); err != nil || !reflect.DeepEqual(a, b) {
			t.Fatalf("edited chunk differs:\n got %s\nwant %s", got, want)
		}
	})
}

// referenceChunk is what chunk does, one sjson set per text.
func referenceChunk(sf *streamFilter, data []byte) ([]byte, int64) {
	out := data
	blocked := int64(-1)
	gjson.GetBytes(data, "choices").ForEach(func(key, ch gjson.Result) bool {
		idx := ch.Get("index").Int()
		if sf.closed[idx] {
			return true
		}
		delta := "choices." + key.String() + ".delta"
		for k, member := range [...]string{"content", "refusal"} {
			c := ch.Get("delta." + member)
			if c.Type != gjson.String {
				continue
			}
			emit, verdict := sf.scanner(streamText{idx, -1 - int64(k)}).Push(c.Str)
			if verdict == filters.Blocked {
				blocked = idx
				return false
			}
			out, _ = sjson.SetBytes(out, delta+"."+member, emit)
		}
		j := -1
		ch.Get("delta.tool_calls").ForEach(func(_, tc gjson.Result) bool {
			j++
			a := tc.Get("function.arguments")
			if a.Type != gjson.String {
				return true
			}
			emit, verdict := sf.scanner(streamText{idx, tc.Get("index").Int()}).Push(a.Str)
			if verdict == filters.Blocked {
				blocked = idx
				return false
			}
			out, _ = sjson.SetBytes(out, delta+".tool_calls."+strconv.Itoa(j)+".function.arguments", emit)
			return true
		})
		if blocked >= 0 || ch.Get("finish_reason").Type != gjson.String {
			return blocked < 0
		}
		sf.closed[idx] = true
		var ok bool
		if out, ok = sf.release(out, delta, idx); !ok {
			blocked = idx
		}
		return ok
	})
	return out, blocked
}
