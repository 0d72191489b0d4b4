package caddymodule

import (
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/groundgate/groundgate/console"
	"github.com/groundgate/groundgate/filters"
	"github.com/groundgate/groundgate/post"
)

// provisionAudit loads the audit module: one record per interaction,
// written off the hot path.
func (g *Gateway) provisionAudit(ctx caddy.Context) error {
	if g.AuditRaw == nil {
		return nil
	}
	mod, err := ctx.LoadModule(g, "AuditRaw")
	if err != nil {
		return fmt.Errorf("loading audit: %v", err)
	}
	rec, ok := mod.(post.Recorder)
	if !ok {
		return fmt.Errorf("audit module %T does not record interactions", mod)
	}
	g.audit = rec
	return nil
}

// record hands the interaction to the audit module. It never blocks the
// response: the module queues it.
func (ex *exchange) record() {
	if ex.g.audit == nil || (ex.route.op != opChat && ex.route.op != opEmbeddings && ex.route.op != opResponses) {
		return
	}
	in := &post.Interaction{
		RequestID:        ex.id,
		Time:             ex.start,
		Route:            ex.route.name,
		PromptTokens:     ex.promptTokens,
		CompletionTokens: ex.completionTokens,
		Cost:             float64(ex.costMicroUSD()) / 1e6,
		LatencyMS:        float64(time.Since(ex.start).Microseconds()) / 1e3,
		Status:           ex.status,
		Stream:           ex.streamed,
		DeniedRecords:    ex.denied,
		ResponseID:       ex.responseID,
		CacheHit:         ex.cacheHit,
		FilterActions:    filterActions(ex.inputFindings),
		Incomplete:       ex.incomplete != "",
		IncompleteReason: ex.incomplete,
	}
	if ex.principal != nil {
		in.Principal, in.Team = ex.principal.name, ex.principal.team
	}
	if ex.dryRunAs != "" {
		in.DryRun, in.OnBehalfOf = true, ex.dryRunAs
	}
	if ex.policy != nil {
		in.Policy, in.PolicyVersion, in.Feature = ex.policy.Name, ex.policy.Hash, ex.feature
	}
	if ex.model != nil {
		in.Model = ex.model.alias
	}
	if ex.upstream != nil {
		in.Upstream = ex.upstream.name
	}
	in.SetContext(ex.packed, ex.postResult)
	if ex.g.console != nil {
		console.Remember(in)
	}
	if rw := ex.rewrite; rw != nil {
		in.QueryRewrite = &post.QueryRewrite{Query: rw.Query, Model: rw.Model, PromptTokens: rw.PromptTokens, CompletionTokens: rw.CompletionTokens}
	}
	ex.g.audit.Record(in)
}

// filterActions lists what the input filters did, for the audit record.
func filterActions(found []filters.Finding) []post.FilterAction {
	if len(found) == 0 {
		return nil
	}
	out := make([]post.FilterAction, 0, len(found))
	for _, f := range found {
		out = append(out, post.FilterAction{Filter: f.Filter, Category: f.Category, Stage: "input", Action: f.Action.String()})
	}
	return out
}
