package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/groundgate/groundgate/budgets"
	"github.com/groundgate/groundgate/tokens"
	"github.com/groundgate/groundgate/wire"
)

// limitSpec is one entry of a policy's budgets.limits: counters for one
// subject (a key, a team, the policy, a model alias, or everyone).
type limitSpec struct {
	// Per is whose counter it is: key, team, policy, model or global.
	Per string `yaml:"per"`
	// Name shares the counter between policies that give the same name;
	// by default each policy counts on its own.
	Name string `yaml:"name"`

	TokensPerMinute   int64 `yaml:"tokens_per_minute"`
	RequestsPerMinute int64 `yaml:"requests_per_minute"`
	TokensPerDay      int64 `yaml:"tokens_per_day"`
	RequestsPerDay    int64 `yaml:"requests_per_day"`
	TokensPerMonth    int64 `yaml:"tokens_per_month"`
	RequestsPerMonth  int64 `yaml:"requests_per_month"`
	// Spend quotas in US dollars, priced with the gateway's price table.
	USDPerDay   float64 `yaml:"usd_per_day"`
	USDPerMonth float64 `yaml:"usd_per_month"`
}

// unit is what a counter counts.
type unit uint8

const (
	unitRequests unit = iota
	unitTokens
	unitMicroUSD
)

// unitName names a unit in headers and messages.
func (u unit) String() string {
	return [...]string{"requests", "tokens", "usd"}[u]
}

// counter is one compiled limit: what it counts and how its key is made.
type counter struct {
	per, prefix string
	window      budgets.Window
	max         int64
	unit        unit
}

func compileLimits(policy string, specs []limitSpec) ([]counter, error) {
	var out []counter
	for i, s := range specs {
		switch s.Per {
		case "key", "team", "policy", "model", "global", "deployment":
		default:
			return nil, fmt.Errorf("limits[%d]: per must be key, team, policy, model, deployment or global, not %q", i, s.Per)
		}
		name := s.Name
		if name == "" {
			name = policy
		} else if !validCounterName(name) {
			return nil, fmt.Errorf("limits[%d]: name %q may use only letters, digits, '-', '_' and '.'", i, name)
		}
		before := len(out)
		add := func(v int64, w budgets.Window, u unit, what string) {
			if v > 0 {
				out = append(out, counter{per: s.Per, prefix: name + "|" + s.Per + "|" + what, window: w, max: v, unit: u})
			}
		}
		add(s.TokensPerMinute, budgets.Minute, unitTokens, "tpm")
		add(s.RequestsPerMinute, budgets.Minute, unitRequests, "rpm")
		add(s.TokensPerDay, budgets.Day, unitTokens, "tpd")
		add(s.RequestsPerDay, budgets.Day, unitRequests, "rpd")
		add(s.TokensPerMonth, budgets.Month, unitTokens, "tpmo")
		add(s.RequestsPerMonth, budgets.Month, unitRequests, "rpmo")
		if s.USDPerDay < 0 || s.USDPerMonth < 0 {
			return nil, fmt.Errorf("limits[%d]: spend limits must not be negative", i)
		}
		add(int64(math.Round(s.USDPerDay*1e6)), budgets.Day, unitMicroUSD, "usdd")
		add(int64(math.Round(s.USDPerMonth*1e6)), budgets.Month, unitMicroUSD, "usdmo")
		if len(out) == before {
			return nil, fmt.Errorf("limits[%d]: no limit set (tokens_per_minute, requests_per_day, …)", i)
		}
	}
	return out, nil
}

// subject is the counter's owner for this request.
func (c *counter) subject(ex *exchange) string {
	switch c.per {
	case "key":
		return ex.principal.name
	case "team":
		return ex.principal.team
	case "model":
		return ex.model.alias
	}
	return "" // policy, global: the prefix says it all
}

// heldBudget is one reservation the request holds, with what each of
// its charges counts.
type heldBudget struct {
	res   *budgets.Reservation
	units []unit
}

// reserve charges the request's estimate against the policy's limits
// (all but the per-deployment ones, which are reserved per attempt)
// before it goes upstream. Rates exceeded → 429, quotas spent → 403.
func (ex *exchange) reserve(body []byte, rt *policyRuntime) error {
	if len(rt.counters) == 0 && len(rt.deployCounters) == 0 {
		return nil
	}
	est, err := ex.estimate(body, rt)
	if err != nil {
		return err
	}
	ex.est = est
	if len(rt.counters) == 0 {
		return nil
	}
	hb, denied, err := ex.reserveCounters(rt.counters, func(c *counter) string { return c.subject(ex) })
	switch {
	case denied != nil:
		return denied
	case err != nil:
		return err
	case hb != nil:
		ex.held = append(ex.held, hb)
	}
	return nil
}

// reserveDeployment charges a deployment's counters before an attempt on
// it. A refusal lets the caller try another deployment.
func (ex *exchange) reserveDeployment(u *upstream) (*heldBudget, *wire.Error, error) {
	if ex.rt == nil || len(ex.rt.deployCounters) == 0 {
		return nil, nil, nil
	}
	return ex.reserveCounters(ex.rt.deployCounters, func(*counter) string { return u.name })
}

// reserveCounters makes one all-or-nothing reservation. It returns the
// refusal (429/403) separately from store failures, which the policy's
// on_store_error turns into nothing (fail open) or a 503.
func (ex *exchange) reserveCounters(counters []counter, subject func(*counter) string) (*heldBudget, *wire.Error, error) {
	rt := ex.rt
	charges := make([]budgets.Charge, len(counters))
	units := make([]unit, len(counters))
	for i := range counters {
		c := &counters[i]
		var n int64
		switch c.unit {
		case unitRequests:
			n = 1
		case unitTokens:
			n = ex.est.prompt + ex.est.completion
		case unitMicroUSD:
			p, ok := ex.g.prices[ex.model.alias]
			if !ok {
				return nil, nil, fmt.Errorf("policy %q has spend limits but model %q has no price in the gateway's price table", ex.policy.Name, ex.model.alias)
			}
			n = p.microUSD(ex.est.prompt, 0, ex.est.completion)
		}
		units[i] = c.unit
		charges[i] = budgets.Charge{Limit: budgets.Limit{Key: c.prefix + "|" + subject(c), Window: c.window, Max: c.max, Quota: c.window != budgets.Minute}, N: n}
	}
	ctx, cancel := context.WithTimeout(ex.r.Context(), storeTimeout)
	defer cancel()
	res, status, err := ex.g.store.Reserve(ctx, charges)
	var denied *budgets.Denied
	switch {
	case err == nil:
		ex.rateHeaders(status, units)
		return &heldBudget{res, units}, nil, nil
	case errors.As(err, &denied):
		ex.rateHeaders(denied.Status, units)
		budgetRefusals.WithLabelValues(ex.policy.Name, map[bool]string{true: "quota", false: "rate"}[denied.Limit.Quota]).Inc()
		return nil, refusal(denied, charges, units), nil
	}
	// The store could not decide (Redis down, timeout).
	open := rt.budget.OnStoreError == "open"
	outcome := map[bool]string{true: "fail_open", false: "fail_closed"}[open]
	budgetStoreErrors.WithLabelValues(outcome).Inc()
	ex.g.logger.Error("budget store unavailable", zap.String("request_id", ex.id), zap.String("policy", ex.policy.Name),
		zap.String("outcome", outcome), zap.Error(err))
	if open {
		return nil, nil, nil
	}
	return nil, nil, &wire.Error{Status: http.StatusServiceUnavailable, Type: wire.TypeServer, Code: "budget_store_unavailable",
		Message: "The gateway cannot check this request's budget right now; policy " + ex.policy.Name + " refuses requests then. Retry shortly.",
		Header:  http.Header{"Retry-After": {"1"}}}
}

// storeTimeout bounds a budget store call on the request path.
const storeTimeout = 250 * time.Millisecond

// tokenEstimate is what a request may cost: its prompt, counted now, and
// the most its answers may take (all n of them).
type tokenEstimate struct{ prompt, completion int64 }

// estimate bounds what the request can cost. A chat request's answers are
// capped per answer by max_completion_tokens / max_tokens (applyLimits
// sets a cap whenever the policy counts tokens), and it asks for n of
// them, so its completion is at most n times the cap. An embeddings
// request has no completion: its input is the whole cost.
func (ex *exchange) estimate(body []byte, rt *policyRuntime) (tokenEstimate, error) {
	enc, err := tokens.ForModel(ex.model.tokenizer)
	if err != nil {
		return tokenEstimate{}, fmt.Errorf("policy %q has token budgets but model %q has no known tokenizer: %w", ex.policy.Name, ex.model.alias, err)
	}
	if ex.route.op == opEmbeddings {
		return tokenEstimate{prompt: countEmbeddingsInput(enc, gjson.GetBytes(body, "input"))}, nil
	}
	pa := ex.api.prepare()
	prompt := int64(ex.promptCount)
	if prompt == 0 {
		n, err := pa.countPrompt(enc, body)
		if err != nil {
			return tokenEstimate{}, wire.BadRequest(pa.promptParam(), "invalid_value", err.Error())
		}
		prompt = int64(n)
	}
	n, perAnswer := ex.choices, ex.answerCap
	if n == 0 { // not read while the policy applied
		if n, err = choiceCount(body); err != nil {
			return tokenEstimate{}, err
		}
		perAnswer = pa.maxOutput(body)
	}
	if perAnswer <= 0 {
		perAnswer = int64(rt.budget.CompletionEstimate)
	}
	return tokenEstimate{prompt, min(n*perAnswer, budgets.MaxUnits)}, nil
}

// countEmbeddingsInput counts an embeddings input as the upstream bills
// it: a string by the tokenizer, a token array by its length, and an
// array of either as the sum of its elements.
func countEmbeddingsInput(enc *tokens.Encoder, in gjson.Result) int64 {
	if in.Type == gjson.String {
		return int64(enc.Count(in.Str))
	}
	var n int64
	in.ForEach(func(_, v gjson.Result) bool {
		switch {
		case v.Type == gjson.String:
			n += int64(enc.Count(v.Str))
		case v.IsArray():
			n += v.Get("#").Int()
		default:
			n++ // a token id
		}
		return true
	})
	return n
}

// maxChoices is OpenAI's upper bound on n.
const maxChoices = 128

// choiceCount is the number of answers the request asks for (n, default
// 1). Budgets multiply by it, so a value the upstream might read
// differently is refused rather than guessed.
func choiceCount(body []byte) (int64, error) {
	v := gjson.GetBytes(body, "n")
	switch {
	case !v.Exists() || v.Type == gjson.Null:
		return 1, nil
	case v.Type != gjson.Number || v.Num != math.Trunc(v.Num):
		return 0, wire.BadRequest("n", "invalid_type", "Invalid type for 'n': expected an integer, but got "+v.Raw+" instead.")
	case v.Num < 1:
		return 0, wire.BadRequest("n", "integer_below_min_value", "Invalid 'n': integer below minimum value. Expected a value >= 1, but got "+v.Raw+" instead.")
	case v.Num > maxChoices:
		return 0, wire.BadRequest("n", "integer_above_max_value", "Invalid 'n': integer above maximum value. Expected a value <= 128, but got "+v.Raw+" instead.")
	}
	return int64(v.Num), nil
}

// countsTokens reports whether any of the policy's counters is charged by
// tokens (token limits, spend limits): then every answer needs a cap.
func (rt *policyRuntime) countsTokens() bool {
	for _, cs := range [2][]counter{rt.counters, rt.deployCounters} {
		for i := range cs {
			if cs[i].unit != unitRequests {
				return true
			}
		}
	}
	return false
}

// settle replaces each reservation's estimate with the request's actual
// tokens: what the upstream reported, or what the gateway counted of what
// it sent and received (a broken or abandoned stream), plus, for a
// non-streamed request the client abandoned, the completion the upstream
// may still bill. A request that never reached an upstream gives its
// reservation back.
func (ex *exchange) settle() {
	for _, hb := range ex.held {
		ex.settleOne(hb, ex.upstream == nil && !ex.abandoned)
	}
}

// billed is what the budgets charge: the tokens counted, and the answer
// an abandoned upstream call may still produce.
func (ex *exchange) billed() (prompt, completion int64) {
	return ex.promptTokens, max(ex.completionTokens, ex.unseenCompletion)
}

func (ex *exchange) settleOne(hb *heldBudget, release bool) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	var err error
	if release {
		err = ex.g.store.Release(ctx, hb.res)
	} else {
		prompt, completion := ex.billed()
		actual := make([]int64, len(hb.res.Charges))
		for i, c := range hb.res.Charges {
			switch hb.units[i] {
			case unitRequests:
				actual[i] = c.N
			case unitTokens:
				actual[i] = prompt + completion + ex.rewriteTokens()
			case unitMicroUSD:
				actual[i] = ex.priceMicroUSD(prompt, completion)
			}
		}
		err = ex.g.store.Settle(ctx, hb.res, actual)
	}
	if err != nil {
		budgetStoreErrors.WithLabelValues("settle").Inc()
		ex.g.logger.Error("budget settle failed", zap.String("request_id", ex.id), zap.Error(err))
	}
}

// rateHeaders sets OpenAI's x-ratelimit-* headers from the per-minute
// limits (the tightest of each kind) and, for daily and monthly quotas,
// x-ratelimit-*-tokens-day / -month style headers.
func (ex *exchange) rateHeaders(status []budgets.Status, units []unit) {
	type best struct {
		s  budgets.Status
		ok bool
	}
	tight := map[string]best{}
	for i, s := range status {
		kind := "requests"
		if i < len(units) {
			kind = units[i].String()
		}
		suffix := ""
		switch s.Limit.Window {
		case budgets.Day:
			suffix = "-day"
		case budgets.Month:
			suffix = "-month"
		}
		name := kind + suffix
		if b := tight[name]; !b.ok || s.Remaining < b.s.Remaining {
			tight[name] = best{s, true}
		}
	}
	h := ex.w.Header()
	for name, b := range tight {
		h.Set("X-Ratelimit-Limit-"+name, strconv.FormatInt(b.s.Limit.Max, 10))
		h.Set("X-Ratelimit-Remaining-"+name, strconv.FormatInt(b.s.Remaining, 10))
		h.Set("X-Ratelimit-Reset-"+name, formatReset(b.s.Reset))
	}
}

// formatReset writes a duration as OpenAI does ("1s", "6m0s", "120ms").
func formatReset(d time.Duration) string {
	if d < time.Second {
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	}
	return d.Round(time.Second).String()
}

func refusal(d *budgets.Denied, charges []budgets.Charge, units []unit) *wire.Error {
	secs := int64(math.Ceil(d.RetryAfter.Seconds()))
	h := http.Header{"Retry-After": {strconv.FormatInt(max(secs, 1), 10)}, "Retry-After-Ms": {strconv.FormatInt(d.RetryAfter.Milliseconds(), 10)}}
	what, limit, est := "requests", strconv.FormatInt(d.Limit.Max, 10), int64(0)
	for i, c := range charges {
		if c.Limit.Key == d.Limit.Key && c.Limit.Window == d.Limit.Window {
			what, est = units[i].String(), c.N
		}
	}
	requested := strconv.FormatInt(est, 10)
	if what == "usd" {
		limit, requested = fmt.Sprintf("$%.2f", float64(d.Limit.Max)/1e6), fmt.Sprintf("$%.4f", float64(est)/1e6)
		what = "spend"
	}
	per := map[budgets.Window]string{budgets.Minute: "per minute", budgets.Day: "per day", budgets.Month: "per month"}[d.Limit.Window]
	if d.Limit.Quota {
		return &wire.Error{Status: http.StatusForbidden, Type: "insufficient_quota", Code: "insufficient_quota", Header: h,
			Message: fmt.Sprintf("Quota of %s %s %s is spent (this request needs %s); it renews in %s.", limit, what, per, requested, d.RetryAfter.Round(time.Second))}
	}
	return &wire.Error{Status: http.StatusTooManyRequests, Type: what, Code: "rate_limit_exceeded", Header: h,
		Message: fmt.Sprintf("Rate limit reached on %s %s: limit %s, requested %s. Please try again in %s.", what, per, limit, requested, d.RetryAfter.Round(time.Millisecond))}
}

func validCounterName(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return s != ""
}

// maxCompletion is the request's cap per answer (0 when it sets none):
// the larger of max_completion_tokens and max_tokens, since upstreams
// differ in which one they honour when both are sent.
func maxCompletion(body []byte) int64 {
	var m int64
	for _, f := range [...]string{"max_completion_tokens", "max_tokens"} {
		if v := gjson.GetBytes(body, f); v.Type == gjson.Number {
			m = max(m, v.Int())
		}
	}
	return m
}
