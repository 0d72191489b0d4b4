package integration

import (
	"fmt"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3/option"
)

// The shipped example policies over the embedded sample data: a case
// number in a header grounds the request in that case and in knowledge
// articles, which the model receives numbered [doc1]…; features by alias
// use their own meta prompt.
func TestExamplePoliciesGroundRequests(t *testing.T) {
	pools := ""
	for _, name := range []string{"gpt-4o", "gpt-4o-mini"} {
		pools += fmt.Sprintf("pool %s {\n azure {\n endpoint http://127.0.0.1:%d\n deployment gpt-4o\n api_key {env.GG_SIM_KEY}\n }\n }\n", name, simPort)
	}
	load(t, caddyfile(pools+"context crm records\ncontext knowledge local_index {\n dir "+t.TempDir()+"\n}\npolicies ../policies/examples", ""))

	c := client()
	resp, err := c.Chat.Completions.New(t.Context(), chatParams("[[sim:echo_system]] The TVs keep restarting on the logo. What now?"),
		option.WithHeader("x-groundgate-case", "CAS-01001-K7M2Q9"))
	if err != nil {
		t.Fatal(err)
	}
	sys := resp.Choices[0].Message.Content
	for _, want := range []string{"CAS-01001-K7M2Q9", "Fabrikam Hotels Group", "doc1", "KA-0"} {
		if !strings.Contains(sys, want) {
			t.Errorf("the model's system prompt lacks %q:\n%s", want, sys)
		}
	}

	p := chatParams("[[sim:echo_system]] Customer says the parcel never arrived. CAS-01001-K7M2Q9")
	p.Model = "copilot-draft-email"
	resp, err = c.Chat.Completions.New(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	if sys := resp.Choices[0].Message.Content; !strings.Contains(sys, "draft") || !strings.Contains(sys, "CAS-01001-K7M2Q9") {
		t.Errorf("draft-email feature prompt:\n%s", sys)
	}
}
