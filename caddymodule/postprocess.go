package caddymodule

import (
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"github.com/tidwall/gjson"

	"github.com/groundgate/groundgate/policies"
	"github.com/groundgate/groundgate/post"
)

// provisionPost loads the named post-processors (citations, append).
func (g *Gateway) provisionPost(ctx caddy.Context) error {
	if len(g.PostRaw) == 0 {
		return nil
	}
	mods, err := ctx.LoadModule(g, "PostRaw")
	if err != nil {
		return fmt.Errorf("loading post-processors: %v", err)
	}
	g.processors = map[string]post.Processor{}
	for name, m := range mods.(map[string]any) {
		p, ok := m.(post.Processor)
		if !ok {
			return fmt.Errorf("post-processor %q (%T) does not rewrite answers (audit is configured with `audit`)", name, m)
		}
		g.processors[name] = p
	}
	return nil
}

// compilePost builds a policy's post-processing chain, in the order the
// policy lists the processors.
func (g *Gateway) compilePost(p *policies.Policy) (*post.Chain, error) {
	if p.Post.IsZero() {
		return nil, nil
	}
	var names []string
	if err := p.Post.Decode(&names); err != nil {
		return nil, err
	}
	if !g.provisioning {
		return nil, nil
	}
	procs := make([]post.Processor, 0, len(names))
	for _, n := range names {
		proc, ok := g.processors[n]
		if !ok {
			return nil, fmt.Errorf("%s:%d: policy %q: post-processor %q is not configured in llm_gateway (have: %v)", p.Post.File, p.Post.Line, p.Name, n, keys(g.processors))
		}
		procs = append(procs, proc)
	}
	return post.NewChain(procs...), nil
}

func (ex *exchange) postRequest() *post.Request {
	req := &post.Request{Packed: ex.packed, Stream: ex.streamed, Policy: ex.policy.Name, Feature: ex.feature,
		Structured: ex.structuredAnswer()}
	if ex.principal != nil {
		req.Scope, req.AllRecords = ex.principal.scope, ex.principal.scope == nil
	}
	return req
}

// structuredOutput reports whether a chat request asks for a JSON answer
// (response_format json_object or json_schema): post-processors must then
// leave the answer's text alone.
func structuredOutput(body []byte) bool {
	switch gjson.GetBytes(body, "response_format.type").Str {
	case "json_object", "json_schema":
		return true
	}
	return false
}

// postAnswer post-processes a whole answer (citations, disclaimers).
func (ex *exchange) postAnswer(body []byte) ([]byte, error) {
	if ex.rt == nil || ex.rt.post == nil {
		return body, nil
	}
	defer ex.step("groundgate.post").end(nil)
	ex.postResult = new(post.Result)
	out, err := ex.rt.post.Body(body, ex.postRequest(), ex.postResult)
	if err != nil {
		return nil, err
	}
	if v := ex.postResult.HeaderValue(); v != "" {
		ex.w.Header().Set(post.GroundingHeader, v)
	}
	return out, nil
}

// postStream is the streamed form of postAnswer (nil without processors).
func (ex *exchange) postStream() *post.Stream {
	if ex.rt == nil || ex.rt.post == nil {
		return nil
	}
	ex.postResult = new(post.Result)
	return ex.rt.post.NewStream(ex.postRequest(), ex.postResult)
}
