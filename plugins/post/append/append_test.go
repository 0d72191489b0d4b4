package appendtext

import (
	"bytes"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/tidwall/gjson"

	"github.com/groundgate/groundgate/post"
)

func mustNew(t *testing.T, text string, sep *string) *Append {
	t.Helper()
	a, err := New(text, sep)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestBody(t *testing.T) {
	a := mustNew(t, "AI-generated.", nil)
	res := new(post.Result)
	in := []byte(`{"id":"x","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"The answer."}}]}`)
	out, err := post.NewChain(a).Body(in, &post.Request{}, res)
	if err != nil {
		t.Fatal(err)
	}
	if got := gjson.GetBytes(out, "choices.0.message.content").String(); got != "The answer.\n\nAI-generated." {
		t.Errorf("got %q", got)
	}
	if res.Appended != 1 {
		t.Errorf("appended %d", res.Appended)
	}
	// Empty answer: no separator. Custom separator.
	empty := ""
	sep := " -- "
	for _, tc := range []struct {
		sep          *string
		answer, want string
	}{
		{nil, "", "AI-generated."},
		{&sep, "A.", "A. -- AI-generated."},
		{&empty, "A.", "A.AI-generated."},
	} {
		a := mustNew(t, "AI-generated.", tc.sep)
		in := []byte(`{"choices":[{"message":{"content":"` + tc.answer + `"}}]}`)
		out, _ := post.NewChain(a).Body(in, &post.Request{}, new(post.Result))
		if got := gjson.GetBytes(out, "choices.0.message.content").String(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
	// Tool calls: nothing appended.
	tool := []byte(`{"choices":[{"message":{"content":null,"tool_calls":[]},"finish_reason":"tool_calls"}]}`)
	if out, _ := post.NewChain(a).Body(tool, &post.Request{}, new(post.Result)); !bytes.Equal(out, tool) {
		t.Errorf("tool call changed: %s", out)
	}
}

// Streamed: the disclaimer is one extra content chunk sent just before
// the finish chunk; the other chunks are forwarded unchanged.
func TestStream(t *testing.T) {
	a := mustNew(t, "AI-generated.", nil)
	s := post.NewChain(a).NewStream(&post.Request{Stream: true}, new(post.Result))
	chunks := []string{
		`{"id":"c","object":"chat.completion.chunk","created":3,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`,
		`{"id":"c","object":"chat.completion.chunk","created":3,"model":"m","choices":[{"index":0,"delta":{"content":"The answer."},"finish_reason":null}]}`,
		`{"id":"c","object":"chat.completion.chunk","created":3,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`,
	}
	var sent []string
	for _, c := range chunks {
		out, err := s.Chunk([]byte(c))
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range out {
			sent = append(sent, string(o))
		}
	}
	want := []string{chunks[0], chunks[1],
		`{"id":"c","object":"chat.completion.chunk","created":3,"model":"m","choices":[{"index":0,"delta":{"content":"\n\nAI-generated."},"finish_reason":null}]}`,
		chunks[2]}
	if strings.Join(sent, "\n") != strings.Join(want, "\n") {
		t.Errorf("sent\n%s\nwant\n%s", strings.Join(sent, "\n"), strings.Join(want, "\n"))
	}
}

func TestCaddyfile(t *testing.T) {
	var a Append
	if err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`append "AI-generated." {
		separator "\n---\n"
	}`)); err != nil {
		t.Fatal(err)
	}
	if a.Text != "AI-generated." || a.Separator == nil || *a.Separator != "\n---\n" {
		t.Errorf("got %q %q", a.Text, *a.Separator)
	}
	var b Append
	if err := b.UnmarshalCaddyfile(caddyfile.NewTestDispenser("append {\n text `Two\nlines`\n}")); err != nil || b.Text != "Two\nlines" {
		t.Errorf("block text: %q %v", b.Text, err)
	}
	for in, msg := range map[string]string{
		"append x {\n colour red\n}": `"colour"`,
		"append x {\n text y\n}":     "twice",
		"append x y":                 "argument",
		"append {\n separator\n}":    "argument",
	} {
		var a Append
		err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in))
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: error %v, want one mentioning %s", in, err, msg)
		}
	}
	if _, err := New("", nil); err == nil {
		t.Error("empty text accepted")
	}
}

func TestModuleRegistered(t *testing.T) {
	m, err := caddy.GetModule("llm_gateway.post.append")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.New().(post.Processor); !ok {
		t.Error("not a post.Processor")
	}
}
