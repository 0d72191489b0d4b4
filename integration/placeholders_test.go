package integration

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// The {llm.*} placeholders reach an access log through log_append, as
// the demo Caddyfile uses them: who asked, the policy, what grounded the
// answer (the case, its contact and account; three articles), the
// upstream and the tokens; a refused request has no
// principal and no outcome.
func TestAccessLogPlaceholders(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "access.log")
	names := []string{"request_id", "principal", "team", "policy", "policy_hash", "feature", "context_records", "context_docs",
		"model", "upstream", "deployment", "attempts", "prompt_tokens", "completion_tokens", "total_tokens", "ttft_ms"}
	block := fmt.Sprintf("\tlog {\n\t\toutput file %s\n\t\tformat filter {\n\t\t\twrap json\n\t\t\trequest>headers>Api-Key delete\n\t\t}\n\t}", logFile)
	for _, n := range names {
		block += fmt.Sprintf("\n\tlog_append %s {llm.%s}", n, n)
	}
	pools := ""
	for _, name := range []string{"gpt-4o", "gpt-4o-mini"} {
		pools += fmt.Sprintf("pool %s {\n azure {\n endpoint http://127.0.0.1:%d\n deployment gpt-4o\n api_key {env.GG_SIM_KEY}\n }\n }\n", name, simPort)
	}
	filters := "post links records {\n format incident \"[{number}](https://crm.example/{id})\"\n}\npost citations citations\npost disclaimer append {\n text \"Check.\"\n}\n" +
		"filter pii pii {\n entities credit_card\n input redact\n}\nfilter prompt_injection prompt_injection {\n input block\n}\n"
	load(t, withSiteLog(caddyfile(pools+filters+"context crm records\ncontext knowledge local_index {\n dir "+t.TempDir()+"\n}\npolicies ../policies/examples", ""), block, ""))

	req, err := http.NewRequestWithContext(t.Context(), "POST", gatewayURL("/v1/chat/completions"),
		strings.NewReader(`{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"The TV keeps restarting on the logo. What now?"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Api-Key", demoKey)
	req.Header.Set("X-Groundgate-Case", "CAS-01001-K7M2Q9")
	resp, err := plainClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	id := resp.Header.Get("X-Request-Id")
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if st, b := send(t, "POST", "/v1/chat/completions", simpleChat, "api-key", "wrong-key-0123456789"); st != 401 {
		t.Fatalf("wrong key: %d %s", st, b)
	}

	lines := waitLogLines(t, logFile, 2)
	if len(lines) != 2 {
		t.Fatalf("%d access entries", len(lines))
	}
	ok, refused := gjson.ParseBytes(lines[0]), gjson.ParseBytes(lines[1])
	for field, want := range map[string]string{"request_id": id, "principal": "demo", "team": "support", "policy": "general-chat",
		"model": "gpt-4o", "upstream": "primary", "deployment": "gpt-4o", "attempts": "1", "context_records": "3", "context_docs": "3"} {
		if got := ok.Get(field).String(); got != want {
			t.Errorf("%s = %q, want %q in %s", field, got, want, lines[0])
		}
	}
	p, c, total := ok.Get("prompt_tokens").Int(), ok.Get("completion_tokens").Int(), ok.Get("total_tokens").Int()
	if p < 500 || c <= 0 || total != p+c || ok.Get("ttft_ms").Type != gjson.Number || len(ok.Get("policy_hash").Str) < 16 {
		t.Errorf("outcome fields in %s", lines[0])
	}
	if refused.Get("request_id").Str == "" || refused.Get("principal").Str != "" || refused.Get("prompt_tokens").Exists() && refused.Get("prompt_tokens").Int() != 0 {
		t.Errorf("refused request's entry: %s", lines[1])
	}
}
