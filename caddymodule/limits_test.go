package caddymodule

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/groundgate/groundgate/policies"
	"github.com/groundgate/groundgate/tokens"
)

// metaPolicies loads one policy per meta prompt mode, each quoting the
// user's text, so the prompt the test places is arbitrary text.
func metaPolicies(t testing.TB) map[policies.Mode]*policies.MetaPrompt {
	out := map[policies.Mode]*policies.MetaPrompt{}
	for _, mode := range []policies.Mode{policies.ModePrepend, policies.ModeAppend, policies.ModeReplace} {
		dir := t.TempDir()
		src := "name: m-" + string(mode) + "\ndefault: true\nmeta_prompt:\n  mode: " + string(mode) +
			"\n  template: |\n    Answer from the articles below.\n    {{.User}}\n"
		if err := os.WriteFile(filepath.Join(dir, "p.yaml"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		set, err := policies.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		out[mode] = set.Policies()[0].Meta
	}
	return out
}

// checkMetaCount applies each mode's meta prompt to body and compares the
// prompt count the gateway keeps with a count of the whole result.
func checkMetaCount(t *testing.T, metas map[policies.Mode]*policies.MetaPrompt, enc *tokens.Encoder, body []byte, user string) {
	t.Helper()
	base, err := chatMessages{}.countPrompt(enc, body)
	if err != nil {
		return // not a countable chat body: applyMeta counts nothing then
	}
	for mode, meta := range metas {
		out, added, exact, err := chatMessages{}.applyMetaCounted(body, meta, policies.Data{User: user}, enc)
		if err != nil {
			continue
		}
		if !meta.AddsMessage() || !exact {
			continue // the caller counts the whole body
		}
		whole, err := enc.CountChatValid(out)
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if base+added != whole {
			t.Fatalf("%s: client messages %d + meta prompt %d = %d, the whole body counts %d\nbody %s\nout %s", mode, base, added, base+added, whole, body, out)
		}
	}
}

// The prompt count of a grounded request is the client's messages plus
// the meta prompt's message, counted apart; it must equal the count of
// the body the upstream gets, to the token.
func TestMetaPromptCountedApart(t *testing.T) {
	metas := metaPolicies(t)
	if !metas[policies.ModePrepend].AddsMessage() || !metas[policies.ModeAppend].AddsMessage() || metas[policies.ModeReplace].AddsMessage() {
		t.Fatal("AddsMessage: prepend and append add a message, replace does not")
	}
	enc, err := tokens.ForModel("gpt-4o")
	if err != nil {
		t.Fatal(err)
	}
	bodies := []string{
		`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"gpt-4o","messages":[{"role":"system","content":"Be brief."},{"role":"developer","content":"x"},{"role":"user","name":"ann","content":"My TV \"flickers\"\n\tafter the update"}],"max_tokens":50}`,
		`{"messages":[{"role":"user","content":[{"type":"text","text":"two"},{"type":"image_url","image_url":{"url":"data:,"}}]}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"string"}}}}}]}`,
		`{"messages":[]}`,
	}
	users := []string{"", "why?", "émoji 👍 and \u2028 separators", "line\n\nbreaks\r\n and \"quotes\" \\ ", "bad \xff utf-8"}
	for _, b := range bodies {
		for _, u := range users {
			checkMetaCount(t, metas, enc, []byte(b), u)
		}
	}
}

func FuzzMetaPromptCountedApart(f *testing.F) {
	f.Add([]byte(`{"messages":[{"role":"user","content":"hi"}]}`), "why?")
	f.Add([]byte(`{"messages":[{"role":"system","content":"a\nb"},{"role":"user","content":[{"type":"text","text":"x"}]}]}`), "é\n\n  x")
	metas := metaPolicies(f)
	enc, err := tokens.ForModel("gpt-4o")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, user string) {
		if _, err := (chatAPI{}).parse(body); err != nil {
			return
		}
		checkMetaCount(t, metas, enc, body, user)
	})
}
