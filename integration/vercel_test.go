package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The Vercel AI SDK's openai('gpt-4o') and azure('gpt-4o') speak the
// Responses API by default: generateText, streamText and a two-step tool
// call through a real Caddy, with only the base URL changed.
// scripts/node-clients.sh installs the SDK (test.sh runs it and sets
// GROUNDGATE_REQUIRE_NODE_CLIENTS=1, which turns a missing SDK into a
// failure rather than a skip).
func TestVercelAISDKResponses(t *testing.T) {
	dir := filepath.Join("clients", "vercel-ai")
	node, err := exec.LookPath("node")
	if _, statErr := os.Stat(filepath.Join(dir, "node_modules", "ai")); err != nil || statErr != nil {
		if os.Getenv("GROUNDGATE_REQUIRE_NODE_CLIENTS") == "1" {
			t.Fatalf("the Vercel AI SDK is not installed: run scripts/node-clients.sh install (node: %v)", err)
		}
		t.Skip("the Vercel AI SDK is not installed (scripts/node-clients.sh install)")
	}
	load(t, caddyfile("", ""))
	cmd := exec.CommandContext(t.Context(), node, "check.mjs", gatewayURL(""), demoKey)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	type step struct {
		Finish string `json:"finish"`
		Calls  []struct {
			Name  string         `json:"name"`
			Input map[string]any `json:"input"`
		} `json:"calls"`
		Text string `json:"text"`
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var r struct {
			Provider, Text, Finish, ID, Streamed, StreamFinish, ToolStreamed string
			InputTokens                                                      int    `json:"inputTokens"`
			OutputTokens                                                     int    `json:"outputTokens"`
			ToolSteps                                                        []step `json:"toolSteps"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%v: %s", err, sc.Bytes())
		}
		seen[r.Provider] = true
		if !strings.Contains(r.Text, "My soundbar has no sound") || r.Finish != "stop" || r.InputTokens == 0 || r.OutputTokens == 0 || !strings.HasPrefix(r.ID, "resp_") {
			t.Errorf("%s generateText: %+v", r.Provider, r)
		}
		if !strings.Contains(r.Streamed, "How do I reset my headphones?") || r.StreamFinish != "stop" {
			t.Errorf("%s streamText: %q (%s)", r.Provider, r.Streamed, r.StreamFinish)
		}
		if len(r.ToolSteps) != 2 || r.ToolSteps[0].Finish != "tool-calls" || len(r.ToolSteps[0].Calls) != 1 ||
			r.ToolSteps[0].Calls[0].Name != "get_weather" || r.ToolSteps[0].Calls[0].Input["city"] == nil ||
			!strings.Contains(r.ToolSteps[1].Text, `"temperature":21`) {
			t.Errorf("%s tool steps: %+v", r.Provider, r.ToolSteps)
		}
		if !strings.Contains(r.ToolStreamed, `"temperature":21`) {
			t.Errorf("%s streamed tool steps: %q", r.Provider, r.ToolStreamed)
		}
	}
	if !seen["openai"] || !seen["azure"] {
		t.Fatalf("providers checked: %v\n%s", seen, stderr.String())
	}
}
