package caddymodule

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/tidwall/gjson"
	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/contrib/propagators/autoprop"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/groundgate/groundgate/grounding"
	"github.com/groundgate/groundgate/policies"
	"github.com/groundgate/groundgate/wire"
)

// TracingConfig switches on OpenTelemetry traces of the gateway's
// requests, with the GenAI semantic conventions: a span per request and
// one per step (policy, input and context filters, grounding and each of
// its sources, each upstream attempt, output filters, post-processing).
// Spans are exported over OTLP as Caddy's own `tracing` directive does,
// configured by the standard environment variables
// (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL,
// OTEL_TRACES_EXPORTER, OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER, ...).
// Prompt and answer text are recorded only for policies whose
// `tracing: {content: true}` opts in.
type TracingConfig struct{}

// tracingSpec is a policy's `tracing` section.
type tracingSpec struct {
	// Content records the prompt sent upstream and the answer in the
	// request's span (gen_ai.input.messages, gen_ai.output.messages).
	Content bool `yaml:"content"`
}

func compileTracing(p *policies.Policy) (bool, error) {
	var ts tracingSpec
	if err := p.Tracing.Decode(&ts); err != nil {
		return false, err
	}
	return ts.Content, nil
}

// tracers shares one tracer provider (and so one exporter and its batch
// queue) across reloads; the last config using it flushes it.
var tracers = caddy.NewUsagePool()

const tracerKey = "groundgate"

type sharedTracer struct {
	tp    *sdktrace.TracerProvider
	prop  propagation.TextMapPropagator
	trace trace.Tracer
}

// Destruct flushes the spans still queued.
func (s *sharedTracer) Destruct() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.tp.Shutdown(ctx)
}

// provisionTracing loads the shared tracer when tracing is on. An
// unreachable collector does not fail the config: the exporter drops
// what it cannot send and the requests go on.
func (g *Gateway) provisionTracing() error {
	if g.Tracing == nil {
		return nil
	}
	v, _, err := tracers.LoadOrNew(tracerKey, func() (caddy.Destructor, error) {
		exp, err := autoexport.NewSpanExporter(context.Background())
		if err != nil {
			return nil, err
		}
		res := resource.Default()
		if os.Getenv("OTEL_SERVICE_NAME") == "" && !strings.Contains(os.Getenv("OTEL_RESOURCE_ATTRIBUTES"), "service.name=") {
			res, _ = resource.Merge(res, resource.NewSchemaless(attribute.String("service.name", "groundgate")))
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
		return &sharedTracer{tp: tp, prop: autoprop.NewTextMapPropagator(), trace: tp.Tracer("github.com/groundgate/groundgate")}, nil
	})
	if err != nil {
		return err
	}
	g.held = append(g.held, func() { _, _ = tracers.Delete(tracerKey) })
	g.tracer = v.(*sharedTracer)
	for name, src := range g.recordSources {
		g.recordSources[name] = tracedRecords{src, name, g.tracer.trace}
	}
	for name, idx := range g.indexes {
		g.indexes[name] = tracedIndex{idx, name, g.tracer.trace}
	}
	return nil
}

// reqTrace is one request's trace.
type reqTrace struct {
	t       *sharedTracer
	span    trace.Span
	content bool
	// response attributes seen in a stream
	respID, respModel string
	finish            []string
	text              []byte // the streamed answer, when content is recorded
}

// startTrace starts the request's span: a child of Caddy's `tracing`
// span when there is one, else of the client's W3C trace context. The
// request's context carries it from here on.
func (ex *exchange) startTrace() {
	t := ex.g.tracer
	if t == nil {
		return
	}
	ctx := ex.r.Context()
	kind := trace.SpanKindInternal
	if !trace.SpanContextFromContext(ctx).IsValid() {
		ctx = t.prop.Extract(ctx, propagation.HeaderCarrier(ex.r.Header))
		kind = trace.SpanKindServer
	}
	ctx, span := t.trace.Start(ctx, "groundgate.request", trace.WithSpanKind(kind),
		trace.WithAttributes(attribute.String("groundgate.request_id", ex.id)))
	ex.tr = &reqTrace{t: t, span: span}
	ex.r = ex.r.WithContext(ctx)
}

// endTrace names the request's span after the GenAI conventions
// ("chat gpt-4o") and records the outcome.
func (ex *exchange) endTrace() {
	tr := ex.tr
	if tr == nil {
		return
	}
	sp := tr.span
	op := "chat"
	if ex.route.op == opEmbeddings {
		op = "embeddings"
	}
	attrs := []attribute.KeyValue{
		attribute.String("gen_ai.operation.name", op),
		attribute.String("gen_ai.provider.name", "azure.ai.openai"),
		attribute.Int("http.response.status_code", ex.status),
		attribute.Int("groundgate.attempts", ex.attempts),
	}
	if ex.model != nil {
		sp.SetName(op + " " + ex.model.alias)
		attrs = append(attrs, attribute.String("gen_ai.request.model", ex.model.alias))
	}
	if ex.principal != nil {
		attrs = append(attrs, attribute.String("groundgate.principal", ex.principal.name), attribute.String("groundgate.team", ex.principal.team))
	}
	if ex.policy != nil {
		attrs = append(attrs, attribute.String("groundgate.policy", ex.policy.Name), attribute.String("groundgate.policy_hash", ex.policy.Hash))
		if ex.feature != "" {
			attrs = append(attrs, attribute.String("groundgate.feature", ex.feature))
		}
	}
	if ex.upstream != nil {
		attrs = append(attrs, attribute.String("groundgate.upstream", ex.upstream.name))
	}
	if ex.cacheKey != "" {
		attrs = append(attrs, attribute.Bool("groundgate.cache_hit", ex.cacheHit))
	}
	if ex.promptTokens > 0 || ex.completionTokens > 0 {
		attrs = append(attrs, attribute.Int64("gen_ai.usage.input_tokens", ex.promptTokens),
			attribute.Int64("gen_ai.usage.output_tokens", ex.completionTokens))
	}
	if tr.respID != "" {
		attrs = append(attrs, attribute.String("gen_ai.response.id", tr.respID))
	}
	if tr.respModel != "" {
		attrs = append(attrs, attribute.String("gen_ai.response.model", tr.respModel))
	}
	if len(tr.finish) > 0 {
		attrs = append(attrs, attribute.StringSlice("gen_ai.response.finish_reasons", tr.finish))
	}
	if tr.content && len(tr.text) > 0 {
		attrs = append(attrs, outputMessages(string(tr.text), tr.finish))
	}
	sp.SetAttributes(attrs...)
	if ex.status >= 500 || ex.status == 499 {
		sp.SetStatus(codes.Error, http.StatusText(ex.status))
		sp.SetAttributes(attribute.String("error.type", statusErrorType(ex.status)))
	} else if ex.status >= 400 {
		sp.SetAttributes(attribute.String("error.type", statusErrorType(ex.status)))
	}
	sp.End()
}

func statusErrorType(status int) string {
	if status == 499 {
		return "client_closed_request"
	}
	return http.StatusText(status)
}

// traceRequest records what the client asked for (and, when the policy
// opts in, the prompt as sent upstream).
func (ex *exchange) traceRequest(body []byte) {
	tr := ex.tr
	if tr == nil {
		return
	}
	if ex.rt != nil {
		tr.content = ex.rt.traceContent
	}
	var attrs []attribute.KeyValue
	r := gjson.GetManyBytes(body, "max_tokens", "max_completion_tokens", "temperature", "top_p", "stream")
	if r[0].Exists() {
		attrs = append(attrs, attribute.Int64("gen_ai.request.max_tokens", r[0].Int()))
	} else if r[1].Exists() {
		attrs = append(attrs, attribute.Int64("gen_ai.request.max_tokens", r[1].Int()))
	}
	if r[2].Exists() {
		attrs = append(attrs, attribute.Float64("gen_ai.request.temperature", r[2].Float()))
	}
	if r[3].Exists() {
		attrs = append(attrs, attribute.Float64("gen_ai.request.top_p", r[3].Float()))
	}
	attrs = append(attrs, attribute.Bool("groundgate.stream", r[4].Bool()))
	if tr.content {
		if m := gjson.GetBytes(body, "messages"); m.IsArray() {
			attrs = append(attrs, attribute.String("gen_ai.input.messages", m.Raw))
		}
	}
	tr.span.SetAttributes(attrs...)
}

// traceResponse records a whole answer's id, model and finish reasons.
func (ex *exchange) traceResponse(body []byte) {
	tr := ex.tr
	if tr == nil {
		return
	}
	r := gjson.GetManyBytes(body, "id", "model", "choices.#.finish_reason")
	tr.respID, tr.respModel = r[0].Str, r[1].Str
	for _, f := range r[2].Array() {
		if f.Type == gjson.String {
			tr.finish = append(tr.finish, f.Str)
		}
	}
	if tr.content {
		tr.span.SetAttributes(outputMessages(gjson.GetBytes(body, "choices.0.message.content").Str, tr.finish))
	}
}

// traceChunk records a streamed chunk's id, model and finish reason, and
// the answer's text when the policy opts in.
func (ex *exchange) traceChunk(data []byte) {
	tr := ex.tr
	if tr == nil {
		return
	}
	if tr.respID == "" {
		r := gjson.GetManyBytes(data, "id", "model")
		tr.respID, tr.respModel = r[0].Str, r[1].Str
	}
	if fr := gjson.GetBytes(data, "choices.0.finish_reason"); fr.Type == gjson.String {
		tr.finish = append(tr.finish, fr.Str)
	}
	if tr.content {
		if c := gjson.GetBytes(data, "choices.0.delta.content"); c.Type == gjson.String {
			tr.text = append(tr.text, c.Str...)
		}
	}
}

// outputMessages is gen_ai.output.messages for one answer.
func outputMessages(text string, finish []string) attribute.KeyValue {
	fr := ""
	if len(finish) > 0 {
		fr = finish[0]
	}
	b := []byte(`[{"role":"assistant","parts":[{"type":"text","content":`)
	b = wire.AppendString(b, text)
	b = append(b, `}],"finish_reason":`...)
	b = wire.AppendString(b, fr)
	b = append(b, "}]"...)
	return attribute.String("gen_ai.output.messages", string(b))
}

// stepSpan is one step's span; its zero value (tracing off) does nothing.
type stepSpan struct {
	ex   *exchange
	span trace.Span
	prev *http.Request
}

// step starts a step's span as a child of the current one; the request's
// context carries it until end, so what the step calls (grounding
// sources) nests under it. Steps run on the request's goroutine.
func (ex *exchange) step(name string) stepSpan {
	if ex.tr == nil {
		return stepSpan{}
	}
	ctx, span := ex.tr.t.trace.Start(ex.r.Context(), name)
	prev := ex.r
	ex.r = ex.r.WithContext(ctx)
	return stepSpan{ex: ex, span: span, prev: prev}
}

// end ends the step, marking it failed when *err is set.
func (s stepSpan) end(err *error) {
	if s.span == nil {
		return
	}
	if err != nil && *err != nil {
		s.span.SetStatus(codes.Error, "")
		s.span.SetAttributes(attribute.String("error.type", errorType(*err)))
	}
	s.span.End()
	s.ex.r = s.prev
}

// relayEnd records how the relay ended: streamed or whole, and why the
// answer is incomplete, if it is (a broken, abandoned or filtered stream).
func (s stepSpan) relayEnd(stream bool, incomplete string) {
	if s.span == nil {
		return
	}
	s.span.SetAttributes(attribute.Bool("groundgate.stream", stream))
	if incomplete != "" {
		s.span.SetAttributes(attribute.String("groundgate.incomplete", incomplete))
	}
}

// errorType names an error for error.type: the OpenAI error code the
// client gets, or its type.
func errorType(err error) string {
	var we *wire.Error
	switch {
	case errors.As(err, &we) && we.Code != "":
		return we.Code
	case we != nil:
		return we.Type
	}
	return "error"
}

// traceAttempt starts an upstream attempt's span (CLIENT, "chat
// gpt-4o-deployment"); the returned context carries it, so the upstream
// request's traceparent names it.
func (ex *exchange) traceAttempt(ctx context.Context, u *upstream, op operation) (context.Context, attemptSpan) {
	if ex.tr == nil {
		return ctx, attemptSpan{}
	}
	name := "chat"
	if op == opEmbeddings {
		name = "embeddings"
	}
	ctx, span := ex.tr.t.trace.Start(ctx, name+" "+u.deployment, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("gen_ai.operation.name", name),
			attribute.String("gen_ai.provider.name", "azure.ai.openai"),
			attribute.String("gen_ai.request.model", u.deployment),
			attribute.String("groundgate.upstream", u.name),
			attribute.Int("groundgate.attempt", ex.attempts),
		))
	return ctx, attemptSpan{span}
}

type attemptSpan struct{ span trace.Span }

// end records the attempt's outcome: its status, or why it failed.
func (s attemptSpan) end(at **attempt, reason *string, err *error) {
	if s.span == nil {
		return
	}
	if *at != nil && (*at).resp != nil {
		s.span.SetAttributes(attribute.Int("http.response.status_code", (*at).resp.StatusCode))
	}
	if *err != nil {
		s.span.SetStatus(codes.Error, *reason)
		s.span.SetAttributes(attribute.String("error.type", *reason))
	}
	s.span.End()
}

// injectTrace sets the upstream request's W3C trace context: the
// attempt's span when tracing is on, else the client's own traceparent
// passed through, so Azure's diagnostics join the client's trace.
func (ex *exchange) injectTrace(ctx context.Context, h http.Header) {
	if ex.tr != nil {
		ex.tr.t.prop.Inject(ctx, propagation.HeaderCarrier(h))
		return
	}
	if tp := ex.r.Header["Traceparent"]; len(tp) == 1 {
		h["Traceparent"] = tp
		if ts := ex.r.Header["Tracestate"]; len(ts) > 0 {
			h["Tracestate"] = ts
		}
	}
}

// tracedRecords gives each lookup of a record source its span.
type tracedRecords struct {
	grounding.RecordSource
	name string
	t    trace.Tracer
}

func (s tracedRecords) Lookup(ctx context.Context, keys []grounding.RecordKey, scope *grounding.Scope) ([]grounding.Record, []grounding.Denied, error) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return s.RecordSource.Lookup(ctx, keys, scope)
	}
	ctx, span := s.t.Start(ctx, "groundgate.grounding.records "+s.name,
		trace.WithAttributes(attribute.String("groundgate.source", s.name), attribute.Int("groundgate.keys", len(keys))))
	recs, denied, err := s.RecordSource.Lookup(ctx, keys, scope)
	span.SetAttributes(attribute.Int("groundgate.records", len(recs)), attribute.Int("groundgate.denied", len(denied)))
	if err != nil {
		span.SetStatus(codes.Error, "")
		span.SetAttributes(attribute.String("error.type", "source_failed"))
	}
	span.End()
	return recs, denied, err
}

// tracedIndex gives each search of an index its span.
type tracedIndex struct {
	grounding.Index
	name string
	t    trace.Tracer
}

func (s tracedIndex) Search(ctx context.Context, query string, k int, f grounding.Filter) ([]grounding.Hit, error) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return s.Index.Search(ctx, query, k, f)
	}
	ctx, span := s.t.Start(ctx, "groundgate.grounding.index "+s.name,
		trace.WithAttributes(attribute.String("groundgate.source", s.name), attribute.Int("groundgate.k", k)))
	hits, err := s.Index.Search(ctx, query, k, f)
	span.SetAttributes(attribute.Int("groundgate.hits", len(hits)))
	if err != nil {
		span.SetStatus(codes.Error, "")
		span.SetAttributes(attribute.String("error.type", "source_failed"))
	}
	span.End()
	return hits, err
}
