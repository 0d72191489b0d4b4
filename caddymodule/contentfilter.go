package caddymodule

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
	"go.uber.org/zap"

	"github.com/groundgate/groundgate/filters"
	"github.com/groundgate/groundgate/grounding"
	"github.com/groundgate/groundgate/policies"
)

// provisionFilters loads the named content filters. They act on the
// client's messages (input), on retrieved context and on answers
// (output), streamed ones included.
func (g *Gateway) provisionFilters(ctx caddy.Context) error {
	if len(g.FiltersRaw) == 0 {
		return nil
	}
	mods, err := ctx.LoadModule(g, "FiltersRaw")
	if err != nil {
		return fmt.Errorf("loading filters: %v", err)
	}
	g.filters = map[string]filters.Filter{}
	for name, m := range mods.(map[string]any) {
		f, ok := m.(filters.Filter)
		if !ok {
			return fmt.Errorf("filter %q (%T) is not a content filter", name, m)
		}
		g.filters[name] = f
	}
	return nil
}

// compileFilters builds a policy's chain from the filter names it lists.
func (g *Gateway) compileFilters(p *policies.Policy) (*filters.Chain, error) {
	if p.Filters.IsZero() {
		return nil, nil
	}
	var names []string
	if err := p.Filters.Decode(&names); err != nil {
		return nil, err
	}
	if !g.provisioning {
		return nil, nil // adapting a Caddyfile: filters are not loaded yet
	}
	fs := make([]filters.Filter, 0, len(names))
	for _, n := range names {
		f, ok := g.filters[n]
		if !ok {
			return nil, fmt.Errorf("%s:%d: policy %q: filter %q is not configured in llm_gateway (have: %v)", p.Filters.File, p.Filters.Line, p.Name, n, keys(g.filters))
		}
		fs = append(fs, f)
	}
	return filters.NewChain(fs, filters.Options{})
}

// promptFiltered is Azure's 400 content_filter answer to a blocked prompt.
type promptFiltered struct{ body []byte }

func (e *promptFiltered) Error() string { return "prompt blocked by a content filter" }

func (e *promptFiltered) write(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(e.body)))
	w.WriteHeader(http.StatusBadRequest)
	_, _ = w.Write(e.body)
}

// filterInput runs the chain over the text of every user message: a
// block refuses the request with Azure's content_filter error, a
// redaction rewrites the message before it goes anywhere.
func (ex *exchange) filterInput(chain *filters.Chain, body []byte) ([]byte, error) {
	if chain == nil || !chain.Active(filters.StageInput) {
		return body, nil
	}
	var err error
	defer ex.step("groundgate.filter.input").end(&err)
	i := -1
	defer func() {
		if err == nil {
			ex.inputAnn = chain.Annotations(ex.inputFindings, filters.StageInput)
		}
	}()
	gjson.GetBytes(body, "messages").ForEach(func(_, m gjson.Result) bool {
		i++
		if m.Get("role").Str != "user" {
			return true
		}
		c := m.Get("content")
		if c.Type == gjson.String {
			body, err = ex.filterText(chain, body, "messages."+strconv.Itoa(i)+".content", c.Str)
			return err == nil
		}
		j := -1
		c.ForEach(func(_, part gjson.Result) bool {
			j++
			if t := part.Get("text"); part.Get("type").Str == "text" && t.Type == gjson.String {
				body, err = ex.filterText(chain, body, "messages."+strconv.Itoa(i)+".content."+strconv.Itoa(j)+".text", t.Str)
			}
			return err == nil
		})
		return err == nil
	})
	return body, err
}

func (ex *exchange) filterText(chain *filters.Chain, body []byte, path, text string) ([]byte, error) {
	res := chain.Run(text, filters.StageInput)
	for _, f := range res.Findings {
		filterFindings.WithLabelValues(ex.policy.Name, f.Filter, f.Category, "input", f.Action.String()).Inc()
	}
	ex.inputFindings = append(ex.inputFindings, res.Findings...)
	if res.Blocked {
		return nil, &promptFiltered{chain.PromptFilteredError(res.Findings)}
	}
	if res.Redacted {
		return sjson.SetBytes(body, path, res.Text)
	}
	return body, nil
}

// filterContext runs the chain over retrieved records and articles before
// they reach the meta prompt: text an injection hides in is dropped, PII
// is redacted.
func (ex *exchange) filterContext(chain *filters.Chain, p *grounding.Packed) {
	if chain == nil || !chain.Active(filters.StageContext) || p == nil {
		return
	}
	defer ex.step("groundgate.filter.context").end(nil)
	scan := func(what, text string) (string, bool) {
		res := chain.RunContext(text)
		for _, f := range res.Findings {
			filterFindings.WithLabelValues(ex.policy.Name, f.Filter, f.Category, "context", f.Action.String()).Inc()
		}
		if res.Blocked {
			ex.g.logger.Warn("retrieved context withheld by a content filter", zap.String("request_id", ex.id),
				zap.String("policy", ex.policy.Name), zap.String("source", what))
			return "", false
		}
		return res.Text, true
	}
	records := p.Records[:0]
	for _, r := range p.Records {
		keep := true
		fields := make(map[string]string, len(r.Fields))
		for k, v := range r.Fields {
			if fields[k], keep = scan(r.Entity+" "+r.ID, v); !keep {
				break
			}
		}
		if keep {
			r.Fields = fields
			records = append(records, r)
		}
	}
	p.Records = records
	for i := range p.Articles {
		if text, ok := scan("article "+p.Articles[i].Number, p.Articles[i].Content); ok {
			p.Articles[i].Content = text
			p.Docs[i].Content = text
		} else {
			// Keep the numbering stable for citations; withhold the text.
			p.Articles[i].Content = "(withheld by a content filter)"
			p.Docs[i].Content = ""
		}
	}
}

// mergePromptAnnotations adds our input filters' verdicts to Azure's
// prompt_filter_results, so Azure-aware clients read them unchanged.
func (ex *exchange) mergePromptAnnotations(body []byte) []byte {
	if len(ex.inputAnn) <= 2 { // no active input filter: nothing to add
		return body
	}
	if !gjson.GetBytes(body, "prompt_filter_results.0").Exists() {
		body, _ = sjson.SetRawBytes(body, "prompt_filter_results", []byte(`[{"prompt_index":0,"content_filter_results":{}}]`))
	}
	return mergeAnnotations(body, "prompt_filter_results.0.content_filter_results", ex.inputAnn)
}
