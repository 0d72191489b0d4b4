// Package simulator implements the Caddy HTTP handler
// http.handlers.aoai_simulator: a wire-faithful Azure OpenAI simulator for
// Groundgate's demo, tests, load tests and fault injection.
//
// # Routes
//
//	POST /openai/deployments/{deployment}/chat/completions?api-version=…
//	POST /openai/deployments/{deployment}/embeddings?api-version=…
//	POST /openai/v1/chat/completions   POST /v1/chat/completions   (deployment = body "model")
//	POST /openai/v1/embeddings         POST /v1/embeddings         (deployment = body "model")
//	GET  /openai/v1/models             GET  /v1/models             GET /openai/models?api-version=…
//
// As on Azure, a deployment path without api-version, an unknown path or a
// known path with the wrong method is a 404 {"error":{"code":"404","message":"Resource not found"}}.
// Every route needs a key (api-key header or Authorization: Bearer);
// otherwise 401 with Azure's body.
//
// # Answers
//
// The answer is a pure function of the request. By default it is
//
//	Simulated answer to: "<last user message without directives, first 200 characters>"
//
// Directives in the last user message change it (several may be combined):
//
//	[[sim:echo]]             the answer is the received "messages" array, byte for byte
//	[[sim:echo_system]]      the answer is the content of the system (and developer) messages, joined by "\n"
//	[[sim:tokens=N]]         an answer of exactly N tokens ("The quick brown fox jumps over the lazy dog…")
//	[[sim:status=N]]         answer with HTTP status N (400–599); 429/500/503 carry Azure's bodies,
//	                         429 and 503 the retry-after and retry-after-ms headers
//	[[sim:retry_after_ms=N]] the retry hint of that 429/503 (default: the retry_after option, 1s)
//	[[sim:drop_after=N]]     (streams) cut the connection after N content chunks: no final chunk, no [DONE]
//	[[sim:delay_ms=N]]       wait N ms more before the response headers
//
// Precedence: echo, then echo_system, then tokens, then the default
// sentence. Then stop sequences cut the answer (finish_reason "stop"),
// max_completion_tokens/max_tokens truncate it (finish_reason "length"),
// and a blocked output term filters it (finish_reason "content_filter").
// An unknown directive or an invalid value is a 400 naming it.
//
// # Order of checks
//
// route (404) → key (401) → deployment (404 DeploymentNotFound) → body
// (400/413) → prompt content filter (400 content_filter) → rate limiter
// (429, immediate) → latency + delay_ms → status directive → injected
// error_rate / rate_limit_rate faults → 200.
package simulator
