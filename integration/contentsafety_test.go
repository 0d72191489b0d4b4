package integration

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/tidwall/gjson"
)

// TestContentSafetyThroughCaddy configures azure_content_safety from the
// Caddyfile against a local Content Safety stand-in and drives it with
// the OpenAI SDK: a violent prompt is refused with Azure's content_filter
// error (the verdict in Azure's shape), a clean one is answered with the
// verdicts in prompt_filter_results, and an unreachable service fails
// closed.
func TestContentSafetyThroughCaddy(t *testing.T) {
	var calls atomic.Int64
	var down atomic.Bool
	cs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		if down.Load() {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		if r.Header.Get("Ocp-Apim-Subscription-Key") != "cs-test-key" || r.URL.Query().Get("api-version") != "2024-09-01" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/contentsafety/text:analyze":
			violence := 0
			if strings.Contains(gjson.GetBytes(body, "text").Str, "VIOLENT") {
				violence = 6
			}
			fmt.Fprintf(w, `{"blocklistsMatch":[],"categoriesAnalysis":[{"category":"Hate","severity":0},{"category":"SelfHarm","severity":0},{"category":"Sexual","severity":0},{"category":"Violence","severity":%d}]}`, violence)
		case "/contentsafety/text:shieldPrompt":
			fmt.Fprint(w, `{"userPromptAnalysis":{"attackDetected":false},"documentsAnalysis":[]}`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(cs.Close)
	t.Setenv("GG_CS_KEY", "cs-test-key")
	policies := t.TempDir()
	if err := os.WriteFile(filepath.Join(policies, "p.yaml"), []byte("name: safe\ndefault: true\nfilters: [safety]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	load(t, caddyfile(fmt.Sprintf("filter safety azure_content_safety {\n\t\t\tendpoint %s\n\t\t\tapi_key {env.GG_CS_KEY}\n\t\t\tinput block\n\t\t\ttimeout 2s\n\t\t}\n\t\tpolicies %s", cs.URL, policies), ""))

	_, err := client().Chat.Completions.New(t.Context(), chatParams("a VIOLENT question"))
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Code != "content_filter" {
		t.Fatalf("violent prompt: %v", err)
	}
	raw := apiErr.RawJSON()
	if got := gjson.Get(raw, "innererror.content_filter_result.violence").Raw; got != `{"filtered":true,"severity":"high"}` {
		t.Errorf("verdict %s in %s", got, raw)
	}

	resp, err := client().Chat.Completions.New(t.Context(), chatParams("a kind question"))
	if err != nil {
		t.Fatal(err)
	}
	pfr := gjson.Get(resp.RawJSON(), "prompt_filter_results.0.content_filter_results")
	if pfr.Get("violence.severity").Str != "safe" || pfr.Get("jailbreak.detected").Type != gjson.False {
		t.Errorf("prompt_filter_results %s", pfr.Raw)
	}

	down.Store(true)
	_, err = client().Chat.Completions.New(t.Context(), chatParams("a kind question"))
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 ||
		!gjson.Get(apiErr.RawJSON(), "innererror.content_filter_result.content_safety_unavailable.filtered").Bool() {
		t.Fatalf("service down: %v", err)
	}
	if n := calls.Load(); n < 5 {
		t.Errorf("%d calls reached the service", n)
	}
}
