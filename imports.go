// Package groundgate is an LLM gateway built as Caddy v2 modules, in front
// of Azure OpenAI and any OpenAI-compatible API.
//
// Importing this package registers every Groundgate module with Caddy, so
//
//	xcaddy build --with github.com/groundgate/groundgate
//
// builds a Caddy binary with all of them.
package groundgate

import (
	// The gateway handler, llm_gateway.
	_ "github.com/groundgate/groundgate/caddymodule"
	// The Azure OpenAI simulator, aoai_simulator.
	_ "github.com/groundgate/groundgate/plugins/simulator"
	// Context sources: embedded records, the local semantic index,
	// Dataverse, Azure AI Search, and the query rewriter.
	_ "github.com/groundgate/groundgate/plugins/context/azuresearch"
	_ "github.com/groundgate/groundgate/plugins/context/dataverse"
	_ "github.com/groundgate/groundgate/plugins/context/localindex"
	_ "github.com/groundgate/groundgate/plugins/context/records"
	_ "github.com/groundgate/groundgate/plugins/context/rewriter"
	// Content filters.
	_ "github.com/groundgate/groundgate/plugins/filters/blocklist"
	_ "github.com/groundgate/groundgate/plugins/filters/contentsafety"
	_ "github.com/groundgate/groundgate/plugins/filters/pii"
	_ "github.com/groundgate/groundgate/plugins/filters/promptinjection"
	_ "github.com/groundgate/groundgate/plugins/filters/regex"
	// Post-processors: citations, append, and the audit recorder.
	_ "github.com/groundgate/groundgate/plugins/post/append"
	_ "github.com/groundgate/groundgate/plugins/post/audit"
	_ "github.com/groundgate/groundgate/plugins/post/citations"
	_ "github.com/groundgate/groundgate/plugins/post/records"
	_ "github.com/groundgate/groundgate/plugins/post/redact"
	// Budget stores: memory (default) and redis.
	_ "github.com/groundgate/groundgate/plugins/stores/memory"
	_ "github.com/groundgate/groundgate/plugins/stores/redis"
)
