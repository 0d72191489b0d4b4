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

// filterInput runs the input stage of the chain over the client's texts
// through the shape's adapter, and keeps the verdicts as Azure-shaped
// annotations for the answer. Every text the client sends the model is
// scanned, whatever the role and however it is spelled (tool results are
// the usual route for injected instructions); the platform's own meta
// prompt is added after this and is never scanned. A block refuses the
// request with Azure's content_filter error, a redaction rewrites the
// text before it goes anywhere.
func (ex *exchange) filterInput(pa promptAdapter, chain *filters.Chain, body []byte) ([]byte, error) {
	if chain == nil || !chain.Active(filters.StageInput) {
		return body, nil
	}
	var err error
	defer ex.step("groundgate.filter.input").end(&err)
	if body, err = pa.filterInput(ex, chain, body); err != nil {
		return nil, err
	}
	ex.inputAnn = chain.Annotations(ex.inputFindings, filters.StageInput)
	return body, nil
}

// filterChatInput filters a chat request's texts: each message's content
// (a string, or the text of every part that carries one), its name and
// refusal, the arguments of the tool calls an assistant message replays,
// and the descriptions of the tools and functions offered.
func filterChatInput(ex *exchange, chain *filters.Chain, body []byte) ([]byte, error) {
	var texts []inputText
	texts = appendMessageTexts(texts, gjson.GetBytes(body, "messages"))
	texts = appendToolTexts(texts, gjson.GetBytes(body, "tools"), "tools", "function.description")
	texts = appendToolTexts(texts, gjson.GetBytes(body, "functions"), "functions", "description")
	return ex.filterTexts(chain, body, texts)
}

// filterTexts runs the chain over each text, rewriting redactions in
// body; the first block refuses the request.
func (ex *exchange) filterTexts(chain *filters.Chain, body []byte, texts []inputText) ([]byte, error) {
	var err error
	for _, t := range texts {
		if body, err = ex.filterText(chain, body, t.path, t.text); err != nil {
			return nil, err
		}
	}
	return body, nil
}

// filterEmbeddingsInput runs the chain over an embeddings request's input:
// a string or an array of strings (token arrays carry no text to match).
func (ex *exchange) filterEmbeddingsInput(chain *filters.Chain, body []byte) ([]byte, error) {
	if chain == nil || !chain.Active(filters.StageInput) {
		return body, nil
	}
	in := gjson.GetBytes(body, "input")
	var texts []inputText
	switch {
	case in.Type == gjson.String:
		texts = append(texts, inputText{"input", in.Str})
	case in.IsArray():
		k := -1
		in.ForEach(func(_, v gjson.Result) bool {
			k++
			if v.Type == gjson.String {
				texts = append(texts, inputText{"input." + strconv.Itoa(k), v.Str})
			}
			return true
		})
	}
	var err error
	defer ex.step("groundgate.filter.input").end(&err)
	body, err = ex.filterTexts(chain, body, texts)
	return body, err
}

// inputText is one text of a request and its sjson path.
type inputText struct{ path, text string }

// appendMessageTexts lists the texts of every message, all roles alike.
func appendMessageTexts(dst []inputText, messages gjson.Result) []inputText {
	i := -1
	messages.ForEach(func(_, m gjson.Result) bool {
		i++
		base := "messages." + strconv.Itoa(i)
		m.ForEach(func(k, v gjson.Result) bool {
			switch k.Str {
			case "content":
				dst = appendContentTexts(dst, base+".content", v)
			case "name", "refusal":
				if v.Type == gjson.String {
					dst = append(dst, inputText{base + "." + k.Str, v.Str})
				}
			case "tool_calls":
				j := -1
				v.ForEach(func(_, tc gjson.Result) bool {
					j++
					if a := tc.Get("function.arguments"); a.Type == gjson.String {
						dst = append(dst, inputText{base + ".tool_calls." + strconv.Itoa(j) + ".function.arguments", a.Str})
					}
					return true
				})
			case "function_call":
				if a := v.Get("arguments"); a.Type == gjson.String {
					dst = append(dst, inputText{base + ".function_call.arguments", a.Str})
				}
			}
			return true
		})
		return true
	})
	return dst
}

// appendContentTexts lists a content value's texts: the string itself, or
// the text (and refusal) of each part, whatever the part's type.
func appendContentTexts(dst []inputText, path string, c gjson.Result) []inputText {
	if c.Type == gjson.String {
		return append(dst, inputText{path, c.Str})
	}
	j := -1
	c.ForEach(func(_, part gjson.Result) bool {
		j++
		p := path + "." + strconv.Itoa(j)
		if part.Type == gjson.String { // some clients send bare strings
			dst = append(dst, inputText{p, part.Str})
			return true
		}
		for _, k := range [...]string{"text", "refusal"} {
			if t := part.Get(k); t.Type == gjson.String {
				dst = append(dst, inputText{p + "." + k, t.Str})
			}
		}
		return true
	})
	return dst
}

// appendToolTexts lists the descriptions of the tools offered: text the
// model reads as instructions.
func appendToolTexts(dst []inputText, tools gjson.Result, base, member string) []inputText {
	j := -1
	tools.ForEach(func(_, t gjson.Result) bool {
		j++
		if d := t.Get(member); d.Type == gjson.String {
			dst = append(dst, inputText{base + "." + strconv.Itoa(j) + "." + member, d.Str})
		}
		return true
	})
	return dst
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
	if ex.inputAnn[0] == '{' && !gjson.GetBytes(body, "prompt_filter_results.0").Exists() {
		// Nothing to merge with: one patch adds ours.
		v := make([]byte, 0, len(ex.inputAnn)+48)
		v = append(v, `[{"prompt_index":0,"content_filter_results":`...)
		v = append(append(v, ex.inputAnn...), `}]`...)
		body, _ = sjson.SetRawBytes(body, "prompt_filter_results", v)
		return body
	}
	return mergeAnnotations(body, "prompt_filter_results.0.content_filter_results", ex.inputAnn)
}
