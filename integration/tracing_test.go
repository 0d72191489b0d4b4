package integration

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3/option"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an OTLP/HTTP endpoint (POST /v1/traces, protobuf) that
// keeps every span it is sent.
type otlpReceiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	spans []*tracepb.Span
	res   []*commonpb.KeyValue
}

// receiver is shared by the tracing tests: the OTEL_* settings are read
// once per process, when the first config that traces creates the
// exporter (as Caddy's own tracing does).
var (
	receiverOnce sync.Once
	receiver     *otlpReceiver
)

func sharedReceiver() *otlpReceiver {
	receiverOnce.Do(func() {
		receiver = newOTLPReceiver()
		os.Setenv("OTEL_TRACES_EXPORTER", "otlp")
		os.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
		os.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.srv.URL)
		os.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
		os.Setenv("OTEL_SERVICE_NAME", "groundgate-test")
	})
	return receiver
}

func newOTLPReceiver() *otlpReceiver {
	rc := &otlpReceiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "unexpected "+r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"), http.StatusBadRequest)
			return
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		b, err := io.ReadAll(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var req collectortrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(b, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		for _, rs := range req.ResourceSpans {
			rc.res = rs.GetResource().GetAttributes()
			for _, ss := range rs.ScopeSpans {
				rc.spans = append(rc.spans, ss.Spans...)
			}
		}
		rc.mu.Unlock()
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	return rc
}

// trace waits for the spans of one trace, until one named root arrives.
func (rc *otlpReceiver) trace(t *testing.T, traceID []byte, root string) []*tracepb.Span {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rc.mu.Lock()
		var out []*tracepb.Span
		done := false
		for _, s := range rc.spans {
			if bytes.Equal(s.TraceId, traceID) {
				out = append(out, s)
				done = done || strings.HasPrefix(s.Name, root)
			}
		}
		rc.mu.Unlock()
		if done {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("no span %q of trace %x within 10s; got %d spans of it", root, traceID, len(out))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func attr(s *tracepb.Span, key string) *commonpb.AnyValue {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return kv.Value
		}
	}
	return nil
}

func spanNamed(spans []*tracepb.Span, prefix string) []*tracepb.Span {
	var out []*tracepb.Span
	for _, s := range spans {
		if strings.HasPrefix(s.Name, prefix) {
			out = append(out, s)
		}
	}
	return out
}

const tracedPolicy = `name: traced
default: true
context:
  records:
    entities: [incident, contact, account]
  articles:
    top: 2
filters: [pii]
post: [citations]
tracing:
  content: %v
meta_prompt:
  mode: prepend
  template: |
    Answer from these articles.
    {{.Articles}}
`

// TestTracing: with tracing on, a request through a real Caddy exports,
// over OTLP/HTTP to a local receiver, a trace that continues the client's
// W3C trace context: the request span with the GenAI attributes, a span
// per step (policy, filters, grounding and each source, each upstream
// attempt, post-processing), and the upstream got the attempt span's
// traceparent. Prompt and answer text appear only when the policy opts in.
func TestTracing(t *testing.T) {
	rc := sharedReceiver()

	for _, content := range []bool{false, true} {
		t.Run(fmt.Sprintf("content=%v", content), func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "traced.yaml"), []byte(fmt.Sprintf(tracedPolicy, content)), 0o644); err != nil {
				t.Fatal(err)
			}
			extra := "filter pii pii {\n entities credit_card\n input redact\n}\npost citations citations\n" +
				"context crm records\ncontext knowledge local_index {\n dir " + t.TempDir() + "\n}\n" +
				"policies " + dir + "\ntracing"
			// The upstream is the simulator behind a proxy that keeps the
			// trace context each request carries.
			var (
				tpMu sync.Mutex
				seen []string
			)
			sim, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", simPort))
			rp := httputil.NewSingleHostReverseProxy(sim)
			rec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				tpMu.Lock()
				seen = append(seen, r.Header.Get("traceparent"))
				tpMu.Unlock()
				rp.ServeHTTP(w, r)
			}))
			defer rec.Close()
			extra += "\nmodel gpt-4o-rec rec\npool rec {\n azure {\n endpoint " + rec.URL + "\n deployment gpt-4o\n api_key {env.GG_SIM_KEY}\n }\n}"
			load(t, caddyfile(extra, ""))

			traceID := fmt.Sprintf("4bf92f3577b34da6a3ce929d0e0e473%d", map[bool]int{false: 6, true: 7}[content])
			parent := "00f067aa0ba902b7"
			c := client()
			params := chatParams("The TVs keep restarting on the logo. My card is 4111 1111 1111 1111")
			params.Model = "gpt-4o-rec"
			resp, err := c.Chat.Completions.New(t.Context(), params,
				option.WithHeader("traceparent", "00-"+traceID+"-"+parent+"-01"),
				option.WithHeader("x-groundgate-case", "CAS-01001-K7M2Q9"))
			if err != nil {
				t.Fatal(err)
			}
			tid, _ := hex.DecodeString(traceID)
			spans := rc.trace(t, tid, "chat gpt-4o-rec")
			root := spanNamed(spans, "chat gpt-4o-rec")
			var req *tracepb.Span
			for _, s := range root {
				if s.Kind == tracepb.Span_SPAN_KIND_SERVER {
					req = s
				}
			}
			if req == nil {
				t.Fatalf("no SERVER span named chat gpt-4o-rec among %v", names(spans))
			}
			if hex.EncodeToString(req.ParentSpanId) != parent {
				t.Errorf("request span's parent %x, want the client's %s", req.ParentSpanId, parent)
			}
			for key, want := range map[string]string{
				"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-rec", "gen_ai.provider.name": "azure.ai.openai",
				"gen_ai.response.model": resp.Model, "gen_ai.response.id": resp.ID,
				"groundgate.principal": "demo", "groundgate.team": "support", "groundgate.policy": "traced",
			} {
				if v := attr(req, key); v.GetStringValue() != want {
					t.Errorf("%s = %v, want %q", key, v, want)
				}
			}
			if v := attr(req, "gen_ai.usage.input_tokens"); v.GetIntValue() != resp.Usage.PromptTokens {
				t.Errorf("input tokens %v, want %d", v, resp.Usage.PromptTokens)
			}
			if v := attr(req, "gen_ai.usage.output_tokens"); v.GetIntValue() != resp.Usage.CompletionTokens {
				t.Errorf("output tokens %v, want %d", v, resp.Usage.CompletionTokens)
			}
			if v := attr(req, "gen_ai.response.finish_reasons"); len(v.GetArrayValue().GetValues()) != 1 || v.GetArrayValue().Values[0].GetStringValue() != "stop" {
				t.Errorf("finish reasons %v", v)
			}
			// A span per step, all in this trace, under the request span.
			byID := map[string]*tracepb.Span{}
			for _, s := range spans {
				byID[string(s.SpanId)] = s
			}
			under := func(s *tracepb.Span, anc *tracepb.Span) bool {
				for p := byID[string(s.ParentSpanId)]; p != nil; p = byID[string(p.ParentSpanId)] {
					if p == anc {
						return true
					}
				}
				return false
			}
			for _, name := range []string{"groundgate.policy", "groundgate.filter.input", "groundgate.grounding",
				"groundgate.grounding.records crm", "groundgate.grounding.index knowledge", "groundgate.relay", "groundgate.post"} {
				found := false
				for _, s := range spanNamed(spans, name) {
					if s != req && under(s, req) {
						found = true
					}
				}
				if !found {
					t.Errorf("no span %q under the request span; spans: %v", name, names(spans))
				}
			}
			// The upstream attempt: a CLIENT span named for the deployment.
			var attempt *tracepb.Span
			for _, s := range spanNamed(spans, "chat gpt-4o") {
				if s.Kind == tracepb.Span_SPAN_KIND_CLIENT && s.Name == "chat gpt-4o" && under(s, req) {
					attempt = s
				}
			}
			if attempt == nil || attr(attempt, "http.response.status_code").GetIntValue() != 200 {
				t.Fatalf("upstream attempt span: %v", attempt)
			}
			var grounding *tracepb.Span
			for _, s := range spanNamed(spans, "groundgate.grounding") {
				if s.Name == "groundgate.grounding" {
					grounding = s
				}
			}
			for _, src := range spanNamed(spans, "groundgate.grounding.") {
				if !under(src, grounding) {
					t.Errorf("source span %s is not under the grounding span", src.Name)
				}
			}
			// The upstream received the attempt span's context.
			wantTP := "00-" + traceID + "-" + hex.EncodeToString(attempt.SpanId) + "-01"
			tpMu.Lock()
			if len(seen) != 1 || seen[0] != wantTP {
				t.Errorf("upstream got traceparent %q, want [%s]", seen, wantTP)
			}
			tpMu.Unlock()
			// Text only when the policy opts in.
			var text []string
			for _, s := range spans {
				for _, kv := range s.Attributes {
					if strings.Contains(kv.Value.GetStringValue(), "restarting on the logo") {
						text = append(text, s.Name+" "+kv.Key)
					}
				}
			}
			if content {
				if attr(req, "gen_ai.input.messages") == nil || attr(req, "gen_ai.output.messages") == nil {
					t.Errorf("content opted in but no gen_ai.input/output.messages: %v", req.Attributes)
				}
				if strings.Contains(attr(req, "gen_ai.input.messages").GetStringValue(), "4111 1111") {
					t.Error("the recorded prompt is the one before the PII filter")
				}
			} else if len(text) > 0 {
				t.Errorf("prompt text in spans without opting in: %v", text)
			}

			// A stream: the same attributes, read from its chunks.
			streamID := fmt.Sprintf("5bf92f3577b34da6a3ce929d0e0e473%d", map[bool]int{false: 6, true: 7}[content])
			st := c.Chat.Completions.NewStreaming(t.Context(), params,
				option.WithHeader("traceparent", "00-"+streamID+"-"+parent+"-01"))
			var answer strings.Builder
			var respID string
			for st.Next() {
				ch := st.Current()
				respID = ch.ID
				if len(ch.Choices) > 0 {
					answer.WriteString(ch.Choices[0].Delta.Content)
				}
			}
			if err := st.Err(); err != nil {
				t.Fatal(err)
			}
			sid, _ := hex.DecodeString(streamID)
			var sreq, relay *tracepb.Span
			sspans := rc.trace(t, sid, "chat gpt-4o-rec")
			for _, s := range sspans {
				switch s.Name {
				case "chat gpt-4o-rec":
					if s.Kind == tracepb.Span_SPAN_KIND_SERVER {
						sreq = s
					}
				case "groundgate.relay":
					relay = s
				}
			}
			// The stream's relay, with its output filters, is a step of
			// the request, ending when the stream does.
			if relay == nil || sreq == nil || string(relay.ParentSpanId) != string(sreq.SpanId) ||
				!attr(relay, "groundgate.stream").GetBoolValue() || relay.EndTimeUnixNano > sreq.EndTimeUnixNano {
				t.Errorf("stream relay span %v under %v; spans %v", relay, sreq, names(sspans))
			}
			if attr(sreq, "gen_ai.response.id").GetStringValue() != respID || attr(sreq, "groundgate.stream") == nil ||
				attr(sreq, "gen_ai.usage.output_tokens").GetIntValue() == 0 ||
				len(attr(sreq, "gen_ai.response.finish_reasons").GetArrayValue().GetValues()) != 1 {
				t.Errorf("stream span attributes: %v", sreq.Attributes)
			}
			out := attr(sreq, "gen_ai.output.messages").GetStringValue()
			if content != (out != "") || (content && !strings.Contains(out, answer.String()[:min(20, answer.Len())])) {
				t.Errorf("content %v: gen_ai.output.messages %q, answer %q", content, out, answer.String())
			}
		})
	}
	found := false
	for _, kv := range rc.res {
		found = found || (kv.Key == "service.name" && kv.Value.GetStringValue() == "groundgate-test")
	}
	if !found {
		t.Errorf("resource %v lacks service.name from OTEL_SERVICE_NAME", rc.res)
	}
}

func names(spans []*tracepb.Span) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

// TestTracingUnderCaddyTracing: with Caddy's own `tracing` handler in
// front, the gateway's request span is a child of Caddy's span (which
// continues the client's trace).
func TestTracingUnderCaddyTracing(t *testing.T) {
	rc := sharedReceiver()
	cf := strings.Replace(caddyfile("tracing", ""), "\tllm_gateway {", "\ttracing {\n\t\tspan caddy-front\n\t}\n\tllm_gateway {", 1)
	load(t, cf)
	traceID := "0af7651916cd43dd8448eb211c80319c"
	c := client()
	if _, err := c.Chat.Completions.New(t.Context(), chatParams("hello"),
		option.WithHeader("traceparent", "00-"+traceID+"-b7ad6b7169203331-01")); err != nil {
		t.Fatal(err)
	}
	tid, _ := hex.DecodeString(traceID)
	spans := rc.trace(t, tid, "chat gpt-4o")
	// Caddy's span is exported by Caddy's own provider; wait for it too.
	deadline := time.Now().Add(10 * time.Second)
	for len(spanNamed(spans, "caddy-front")) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		spans = rc.trace(t, tid, "chat gpt-4o")
	}
	front := spanNamed(spans, "caddy-front")
	if len(front) != 1 || hex.EncodeToString(front[0].ParentSpanId) != "b7ad6b7169203331" {
		t.Fatalf("Caddy's span: %v (spans %v)", front, names(spans))
	}
	var req *tracepb.Span
	for _, s := range spans {
		if s.Name == "chat gpt-4o" && s.Kind == tracepb.Span_SPAN_KIND_INTERNAL {
			req = s
		}
	}
	if req == nil || !bytes.Equal(req.ParentSpanId, front[0].SpanId) {
		t.Fatalf("the gateway's request span is not Caddy's child: %v", req)
	}
}
