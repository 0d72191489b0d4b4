// Package contentsafety is the Caddy module
// llm_gateway.filters.azure_content_safety: a filter that asks Azure AI
// Content Safety about each text scanned.
//
// At every active stage it calls text:analyze (categories Hate, SelfHarm,
// Sexual and Violence, four severity levels 0, 2, 4, 6); a category with
// a severity above 0 is a finding with category "hate", "self_harm",
// "sexual" or "violence" and score severity/6, spanning the piece of text
// analysed. The stage's action applies from the threshold up; below it the
// finding only annotates (Azure's "low" that is not filtered). Findings
// are reported in content_filter_results under Azure's own keys and
// severity shape. With prompt_shields on it also calls
// text:shieldPrompt at the input stage (the text as the user prompt,
// finding "jailbreak") and at the context stage (the text as a document,
// finding "indirect_attack"); those findings span the whole text.
//
// Texts longer than MaxChars characters are sent in MaxChars-character
// pieces. All calls of one Scan share one deadline (timeout). When the
// service fails (transport error, timeout, non-2xx status, unreadable
// answer) the filter fails closed by default: one finding with category
// "content_safety_unavailable" and action Block over the whole text, so
// the request is refused; with fail "open" it returns no finding. Either
// way it logs a warning (never the key).
//
// JSON (inside the gateway's filter list, "filter": "azure_content_safety"):
//
//	{
//	  "filter": "azure_content_safety",
//	  "endpoint": "https://NAME.cognitiveservices.azure.com",
//	  "api_key": "{env.CONTENT_SAFETY_KEY}",
//	  "actions": {"input": "block", "context": "block", "output": "block"},
//	  "threshold": 4,
//	  "prompt_shields": true,
//	  "timeout": "2s",
//	  "fail": "closed"
//	}
package contentsafety

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/groundgate/groundgate/filters"
	"github.com/groundgate/groundgate/wire"
)

func init() {
	caddy.RegisterModule(new(ContentSafety))
}

// Kind is the filter kind in findings.
const Kind = "azure_content_safety"

// Categories of findings.
const (
	CategoryHate           = "hate"
	CategorySelfHarm       = "self_harm"
	CategorySexual         = "sexual"
	CategoryViolence       = "violence"
	CategoryJailbreak      = "jailbreak"
	CategoryIndirectAttack = "indirect_attack"
	CategoryUnavailable    = "content_safety_unavailable"
)

// Defaults and limits.
const (
	APIVersion       = "2024-09-01"
	DefaultThreshold = 4
	DefaultTimeout   = 2 * time.Second
	// MaxChars is the most characters (code points) sent in one request.
	MaxChars = 10000
	// maxParallel bounds the concurrent requests of one Scan.
	maxParallel = 4
	// maxResponse bounds the response body read.
	maxResponse = 1 << 20
)

// ContentSafety filters texts through Azure AI Content Safety.
type ContentSafety struct {
	// Endpoint is the resource's endpoint, e.g.
	// "https://NAME.cognitiveservices.azure.com" (placeholders allowed).
	// It must be https, except for loopback hosts (tests, local proxies).
	Endpoint string `json:"endpoint"`
	// APIKey is sent as Ocp-Apim-Subscription-Key. Use a placeholder
	// such as "{env.CONTENT_SAFETY_KEY}"; it is resolved at provision and
	// never logged nor put in an error.
	APIKey string `json:"api_key"`
	// Actions is the action per stage; a stage left out is off.
	Actions filters.StageActions `json:"actions"`
	// Threshold is the severity (1-6; the service answers 0, 2, 4 or 6) at
	// or above which a category is a finding. 0 means DefaultThreshold (4,
	// medium).
	Threshold int `json:"threshold,omitempty"`
	// PromptShields turns Prompt Shields on at the input and context
	// stages. Default true.
	PromptShields *bool `json:"prompt_shields,omitempty"`
	// Timeout bounds all the calls of one Scan. Default 2s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// Fail is what a failed call means: "closed" (default) blocks with a
	// content_safety_unavailable finding, "open" lets the text through.
	Fail string `json:"fail,omitempty"`

	endpoint  string // resolved, without trailing slash
	key       string // resolved
	threshold int
	shields   bool
	timeout   time.Duration
	failOpen  bool
	client    *http.Client
	logger    *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (*ContentSafety) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "llm_gateway.filters.azure_content_safety",
		New: func() caddy.Module { return new(ContentSafety) },
	}
}

// Provision resolves the placeholders and sets up the HTTP client.
func (c *ContentSafety) Provision(ctx caddy.Context) error {
	c.logger = ctx.Logger()
	return c.setup(caddy.NewReplacer())
}

func (c *ContentSafety) setup(repl *caddy.Replacer) error {
	if c.logger == nil {
		c.logger = zap.NewNop()
	}
	ep, err := repl.ReplaceOrErr(c.Endpoint, true, true)
	if err != nil {
		return fmt.Errorf("azure_content_safety: endpoint: %v", err)
	}
	key, err := repl.ReplaceOrErr(c.APIKey, true, true)
	if err != nil {
		// the error names the placeholder, not its value
		return fmt.Errorf("azure_content_safety: api_key: %v", err)
	}
	c.endpoint = strings.TrimRight(ep, "/")
	c.key = key
	c.threshold = c.Threshold
	if c.threshold == 0 {
		c.threshold = DefaultThreshold
	}
	c.shields = c.PromptShields == nil || *c.PromptShields
	c.timeout = time.Duration(c.Timeout)
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	c.failOpen = c.Fail == "open"
	c.client = &http.Client{
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          64,
			MaxIdleConnsPerHost:   32,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
		},
		// never follow a redirect: it could carry the key elsewhere
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return nil
}

// Cleanup closes idle connections.
func (c *ContentSafety) Cleanup() error {
	if c.client != nil {
		c.client.CloseIdleConnections()
	}
	return nil
}

// Validate checks the configuration (after Provision).
func (c *ContentSafety) Validate() error {
	if err := c.Actions.Validate(); err != nil {
		return fmt.Errorf("azure_content_safety: %v", err)
	}
	if !c.Actions.Any() {
		return errors.New("azure_content_safety: no stage has an action (set input, context or output)")
	}
	if c.endpoint == "" {
		return errors.New("azure_content_safety: endpoint is required")
	}
	u, err := url.Parse(c.endpoint)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("azure_content_safety: endpoint %q is not a base URL", c.endpoint)
	}
	if _, err := wire.ServiceURL(c.endpoint); err != nil {
		return fmt.Errorf("azure_content_safety: endpoint %v", err)
	}
	if c.key == "" {
		return errors.New("azure_content_safety: api_key is required (empty after placeholders)")
	}
	if c.threshold < 1 || c.threshold > 6 {
		return fmt.Errorf("azure_content_safety: threshold %d out of 1..6", c.threshold)
	}
	if c.timeout < 0 {
		return fmt.Errorf("azure_content_safety: negative timeout %v", c.timeout)
	}
	if c.Fail != "" && c.Fail != "open" && c.Fail != "closed" {
		return fmt.Errorf("azure_content_safety: fail %q (want open or closed)", c.Fail)
	}
	return nil
}

// Kind implements filters.Filter.
func (*ContentSafety) Kind() string { return Kind }

// Remote implements filters.Remote: verdicts come from the service, so
// chains do not remember them (an outage must not block a text forever).
func (*ContentSafety) Remote() bool { return true }

// AnnotationKeys implements filters.Keyed: Azure's four harm categories,
// and jailbreak (input) or indirect_attack (context) with Prompt Shields.
func (c *ContentSafety) AnnotationKeys(s filters.Stage) []string {
	switch {
	case c.shields && s == filters.StageInput:
		return keysWithJailbreak
	case c.shields && s == filters.StageContext:
		return keysWithIndirectAttack
	}
	return harmKeys
}

// The key lists AnnotationKeys returns (read only).
var (
	harmKeys               = []string{CategoryHate, CategorySelfHarm, CategorySexual, CategoryViolence}
	keysWithJailbreak      = append(harmKeys[:4:4], CategoryJailbreak)
	keysWithIndirectAttack = append(harmKeys[:4:4], CategoryIndirectAttack)
)

// Active implements filters.Filter.
func (c *ContentSafety) Active(s filters.Stage) bool { return c.Actions.For(s) != filters.Off }

// Scan implements filters.Filter.
func (c *ContentSafety) Scan(text string, s filters.Stage) []filters.Finding {
	act := c.Actions.For(s)
	if act == filters.Off || strings.TrimSpace(text) == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()

	pieces := split(text, MaxChars)
	shield := c.shields && (s == filters.StageInput || s == filters.StageContext)
	type job struct {
		piece  span
		shield bool
	}
	jobs := make([]job, 0, 2*len(pieces))
	for _, p := range pieces {
		jobs = append(jobs, job{p, false})
		if shield {
			jobs = append(jobs, job{p, true})
		}
	}

	var (
		mu       sync.Mutex
		found    []filters.Finding
		attack   bool
		firstErr error
		wg       sync.WaitGroup
		sem      = make(chan struct{}, maxParallel)
	)
	for _, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			piece := text[j.piece.start:j.piece.end]
			if j.shield {
				hit, err := c.shieldPrompt(ctx, piece, s == filters.StageContext)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					if firstErr == nil {
						firstErr = err
						cancel() // the answer is decided: stop the others
					}
					return
				}
				attack = attack || hit
				return
			}
			sev, err := c.analyze(ctx, piece)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
					cancel()
				}
				return
			}
			for _, cs := range sev {
				if cs.severity <= 0 {
					continue
				}
				// under the threshold: reported (as Azure reports "low"
				// without filtering) but not acted on
				a := act
				if cs.severity < c.threshold {
					a = filters.Annotate
				}
				found = append(found, filters.Finding{
					Filter: Kind, Category: cs.category,
					Start: j.piece.start, End: j.piece.end,
					Score: min(float64(cs.severity)/6, 1), Action: a,
				})
			}
		}()
	}
	wg.Wait()

	if firstErr != nil {
		c.logger.Warn("azure content safety unavailable",
			zap.String("stage", s.String()),
			zap.Bool("fail_open", c.failOpen),
			zap.Error(firstErr))
		if c.failOpen {
			return nil
		}
		return []filters.Finding{{Filter: Kind, Category: CategoryUnavailable, Start: 0, End: len(text), Score: 1, Action: filters.Block}}
	}
	if attack {
		cat := CategoryJailbreak
		if s == filters.StageContext {
			cat = CategoryIndirectAttack
		}
		found = append(found, filters.Finding{Filter: Kind, Category: cat, Start: 0, End: len(text), Score: 1, Action: act})
	}
	return found
}

type span struct{ start, end int }

// split cuts text into byte ranges of at most n code points each, on
// code point boundaries.
func split(text string, n int) []span {
	var out []span
	start, count := 0, 0
	for i := range text {
		if count == n {
			out = append(out, span{start, i})
			start, count = i, 0
		}
		count++
	}
	return append(out, span{start, len(text)})
}

// categorySeverity is one category's severity in an analyze answer.
type categorySeverity struct {
	category string
	severity int
}

var categoryNames = map[string]string{
	"Hate":     CategoryHate,
	"SelfHarm": CategorySelfHarm,
	"Sexual":   CategorySexual,
	"Violence": CategoryViolence,
}

type analyzeRequest struct {
	Text       string   `json:"text"`
	Categories []string `json:"categories"`
	OutputType string   `json:"outputType"`
}

type analyzeResponse struct {
	BlocklistsMatch    []json.RawMessage `json:"blocklistsMatch"`
	CategoriesAnalysis []struct {
		Category string `json:"category"`
		Severity *int   `json:"severity"`
	} `json:"categoriesAnalysis"`
}

func (c *ContentSafety) analyze(ctx context.Context, text string) ([]categorySeverity, error) {
	var resp analyzeResponse
	err := c.post(ctx, "text:analyze", analyzeRequest{
		Text:       text,
		Categories: []string{"Hate", "SelfHarm", "Sexual", "Violence"},
		OutputType: "FourSeverityLevels",
	}, &resp)
	if err != nil {
		return nil, err
	}
	if resp.CategoriesAnalysis == nil {
		return nil, errors.New("text:analyze: answer without categoriesAnalysis")
	}
	out := make([]categorySeverity, 0, len(resp.CategoriesAnalysis))
	for _, ca := range resp.CategoriesAnalysis {
		name, ok := categoryNames[ca.Category]
		if !ok || ca.Severity == nil {
			return nil, fmt.Errorf("text:analyze: unexpected category entry %q", ca.Category)
		}
		out = append(out, categorySeverity{name, *ca.Severity})
	}
	return out, nil
}

type shieldRequest struct {
	UserPrompt string   `json:"userPrompt"`
	Documents  []string `json:"documents"`
}

type shieldAnalysis struct {
	AttackDetected bool `json:"attackDetected"`
}

type shieldResponse struct {
	UserPromptAnalysis *shieldAnalysis  `json:"userPromptAnalysis"`
	DocumentsAnalysis  []shieldAnalysis `json:"documentsAnalysis"`
}

// shieldPrompt reports whether Prompt Shields detects an attack in text,
// sent as the user prompt or, when document, as the only document.
func (c *ContentSafety) shieldPrompt(ctx context.Context, text string, document bool) (bool, error) {
	req := shieldRequest{UserPrompt: text, Documents: []string{}}
	if document {
		req = shieldRequest{UserPrompt: "", Documents: []string{text}}
	}
	var resp shieldResponse
	if err := c.post(ctx, "text:shieldPrompt", req, &resp); err != nil {
		return false, err
	}
	if document {
		if len(resp.DocumentsAnalysis) != 1 {
			return false, fmt.Errorf("text:shieldPrompt: %d document analyses for 1 document", len(resp.DocumentsAnalysis))
		}
		return resp.DocumentsAnalysis[0].AttackDetected, nil
	}
	if resp.UserPromptAnalysis == nil {
		return false, errors.New("text:shieldPrompt: answer without userPromptAnalysis")
	}
	return resp.UserPromptAnalysis.AttackDetected, nil
}

// post sends body as JSON to {endpoint}/contentsafety/{op} and decodes a
// 200 answer into out. Errors never contain the key.
func (c *ContentSafety) post(ctx context.Context, op string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	u := c.endpoint + "/contentsafety/" + op + "?api-version=" + APIVersion
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("%s: %v", op, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Ocp-Apim-Subscription-Key", c.key)
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %v", op, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
		return fmt.Errorf("%s: status %s", op, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponse)).Decode(out); err != nil {
		return fmt.Errorf("%s: decoding answer: %v", op, err)
	}
	return nil
}

// Interface guards.
var (
	_ caddy.Provisioner  = (*ContentSafety)(nil)
	_ caddy.Validator    = (*ContentSafety)(nil)
	_ caddy.CleanerUpper = (*ContentSafety)(nil)
	_ filters.Filter     = (*ContentSafety)(nil)
	_ filters.Keyed      = (*ContentSafety)(nil)
	_ filters.Remote     = (*ContentSafety)(nil)
)
