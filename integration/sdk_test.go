package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/option"
	"github.com/tidwall/gjson"
)

// client returns an addressable OpenAI client (its services have pointer
// methods).
func client() *openai.Client {
	c := openaiClient()
	return &c
}

func openaiClient(opts ...option.RequestOption) openai.Client {
	base := []option.RequestOption{
		option.WithBaseURL(gatewayURL("/v1/")),
		option.WithAPIKey(demoKey),
		option.WithMaxRetries(0),
	}
	return openai.NewClient(append(base, opts...)...)
}

func azureClient() openai.Client {
	return openai.NewClient(
		azure.WithEndpoint(gatewayURL(""), "2024-10-21"),
		azure.WithAPIKey(demoKey),
		azure.WithUnsafeAllowHTTP(),
		option.WithMaxRetries(0),
	)
}

func azureV1Client() openai.Client {
	return openai.NewClient(
		option.WithBaseURL(gatewayURL("/openai/v1/")),
		option.WithAPIKey(demoKey),
		option.WithMaxRetries(0),
	)
}

func chatParams(user string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model: "gpt-4o",
		Messages: []openai.ChatCompletionMessageParamUnion{
			openai.SystemMessage("You are a support agent for Contoso Electronics."),
			openai.UserMessage(user),
		},
	}
}

func TestSDKChatAllShapes(t *testing.T) {
	load(t, caddyfile("", ""))
	ctx := t.Context()
	for name, c := range map[string]openai.Client{"openai": openaiClient(), "azure": azureClient(), "azure_v1": azureV1Client()} {
		t.Run(name, func(t *testing.T) {
			resp, err := c.Chat.Completions.New(ctx, chatParams("My soundbar has no sound"))
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Choices) != 1 || !strings.Contains(resp.Choices[0].Message.Content, "My soundbar has no sound") {
				t.Fatalf("answer: %+v", resp.Choices)
			}
			if resp.Usage.PromptTokens == 0 || resp.Usage.TotalTokens != resp.Usage.PromptTokens+resp.Usage.CompletionTokens {
				t.Fatalf("usage: %+v", resp.Usage)
			}
		})
	}
}

func TestSDKStreamAllShapes(t *testing.T) {
	load(t, caddyfile("", ""))
	for name, c := range map[string]openai.Client{"openai": openaiClient(), "azure": azureClient(), "azure_v1": azureV1Client()} {
		for _, withUsage := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/usage=%v", name, withUsage), func(t *testing.T) {
				p := chatParams("How do I reset my headphones?")
				if withUsage {
					p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
				}
				stream := c.Chat.Completions.NewStreaming(t.Context(), p)
				acc := openai.ChatCompletionAccumulator{}
				usageChunks := 0
				for stream.Next() {
					ch := stream.Current()
					acc.AddChunk(ch)
					if ch.Usage.TotalTokens > 0 {
						usageChunks++
					}
				}
				if err := stream.Err(); err != nil {
					t.Fatal(err)
				}
				if len(acc.Choices) == 0 || !strings.Contains(acc.Choices[0].Message.Content, "How do I reset my headphones?") {
					t.Fatalf("streamed answer: %+v", acc.Choices)
				}
				if want := map[bool]int{false: 0, true: 1}[withUsage]; usageChunks != want {
					t.Fatalf("usage chunks = %d, want %d", usageChunks, want)
				}
			})
		}
	}
}

func TestSDKEmbeddingsAndModels(t *testing.T) {
	load(t, caddyfile("", ""))
	for name, c := range map[string]openai.Client{"openai": openaiClient(), "azure": azureClient(), "azure_v1": azureV1Client()} {
		t.Run(name, func(t *testing.T) {
			emb, err := c.Embeddings.New(t.Context(), openai.EmbeddingNewParams{
				Model: "text-embedding-3-small",
				Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"battery drains fast", "screen flickers"}},
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(emb.Data) != 2 || len(emb.Data[0].Embedding) == 0 || emb.Usage.PromptTokens == 0 {
				t.Fatalf("embeddings: %d vectors, usage %+v", len(emb.Data), emb.Usage)
			}
		})
	}
	c := openaiClient()
	page, err := c.Models.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range page.Data {
		ids = append(ids, m.ID)
	}
	if strings.Join(ids, ",") != "gpt-4o,text-embedding-3-small" {
		t.Fatalf("models: %v", ids)
	}
}

func TestSDKErrors(t *testing.T) {
	load(t, caddyfile("", ""))
	bad := openaiClient(option.WithAPIKey("not-a-key-at-all"))
	_, err := bad.Chat.Completions.New(t.Context(), chatParams("hi"))
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 || apiErr.Code != "invalid_api_key" {
		t.Fatalf("wrong key: %v", err)
	}
	p := chatParams("hi")
	p.Model = "gpt-9"
	_, err = client().Chat.Completions.New(t.Context(), p)
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Code != "model_not_found" {
		t.Fatalf("unknown model: %v", err)
	}
	// The simulator throttles every call: the gateway gives up with 503
	// and a retry-after.
	_, err = client().Chat.Completions.New(t.Context(), chatParams("[[sim:status=429]] hi"))
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 503 || apiErr.Response.Header.Get("Retry-After") == "" {
		t.Fatalf("throttled: %v", err)
	}
}

// The model receives the client's messages unchanged; the client's key
// is not what reaches it.
func TestWhatReachesTheModel(t *testing.T) {
	load(t, caddyfile("", ""))
	resp, err := client().Chat.Completions.New(t.Context(), chatParams("[[sim:echo]] check"))
	if err != nil {
		t.Fatal(err)
	}
	msgs := gjson.Parse(resp.Choices[0].Message.Content)
	if msgs.Get("#").Int() != 2 || msgs.Get("0.role").Str != "system" || msgs.Get("1.content").Str != "[[sim:echo]] check" {
		t.Fatalf("model saw %s", resp.Choices[0].Message.Content)
	}
}

func TestStreamDroppedUpstreamEndsCleanly(t *testing.T) {
	load(t, caddyfile("", ""))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	body := `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"[[sim:drop_after=3]] tell me a long story"}]}`
	req, _ := http.NewRequestWithContext(ctx, "POST", gatewayURL("/v1/chat/completions"), strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+demoKey)
	resp, err := plainClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("stream did not end cleanly: %v", err)
	}
	s := string(raw)
	if !strings.HasSuffix(s, "data: [DONE]\n\n") || !strings.Contains(s, `"code":"upstream_stream_error"`) {
		t.Fatalf("stream tail: %q", s[max(0, len(s)-300):])
	}
	// The SDK surfaces it as an error, not a hang or a silent truncation.
	stream := client().Chat.Completions.NewStreaming(ctx, chatParams("[[sim:drop_after=2]] again"))
	for stream.Next() {
	}
	if stream.Err() == nil {
		t.Fatal("SDK saw no error for a broken stream")
	}
}

func TestMetricsExposed(t *testing.T) {
	load(t, caddyfile("", ""))
	if _, err := client().Chat.Completions.New(t.Context(), chatParams("count me")); err != nil {
		t.Fatal(err)
	}
	resp, err := plainClient.Get(fmt.Sprintf("http://localhost:%d/metrics", adminPort))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`groundgate_requests_total{code="200",model="gpt-4o",route="chat.completions"}`,
		`groundgate_tokens_total{direction="prompt",model="gpt-4o"}`,
		`groundgate_upstream_response_seconds_bucket{code="200",upstream="primary"`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(string(b), "sim-upstream-key") {
		t.Fatal("upstream key in metrics")
	}
}

func TestConfigNeverShowsUpstreamKey(t *testing.T) {
	load(t, caddyfile("", ""))
	resp, err := plainClient.Get(fmt.Sprintf("http://localhost:%d/config/", adminPort))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if strings.Contains(string(b), "sim-upstream-key") || !strings.Contains(string(b), "{env.GG_SIM_KEY}") {
		t.Fatalf("config exposes the key or lost the placeholder")
	}
}
