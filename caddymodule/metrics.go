package caddymodule

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Collectors live for the process and are registered on each config's
// registry, so counters carry across reloads and a reload never panics
// with a duplicate registration.
var (
	requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "groundgate", Name: "requests_total",
		Help: "Requests answered by the gateway, by route, model alias and status code.",
	}, []string{"route", "model", "code"})
	tokensTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "groundgate", Name: "tokens_total",
		Help: "Tokens reported by upstreams (or counted when they report none), by model alias and direction (prompt or completion).",
	}, []string{"model", "direction"})
	upstreamDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "groundgate", Name: "upstream_response_seconds",
		Help:    "Time from sending an upstream request to its response headers, by upstream and status code.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"upstream", "code"})
	timeToFirstToken = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "groundgate", Name: "time_to_first_token_seconds",
		Help:    "Time from the client's request to the first content event sent back on streams, by model alias.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"model"})
	retriesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "groundgate", Name: "upstream_retries_total",
		Help: "Upstream attempts that failed and led to another attempt or failover, by upstream and reason.",
	}, []string{"upstream", "reason"})
	costTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "groundgate", Name: "cost_usd_total",
		Help: "Cost of answered requests in US dollars, from the price table, by model alias and team.",
	}, []string{"model", "team"})
	recordsDenied = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "groundgate", Name: "records_denied_total",
		Help: "Records a request asked for that its key's scope does not allow, withheld from the model, by policy.",
	}, []string{"policy"})
	groundingErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "groundgate", Name: "grounding_errors_total",
		Help: "Requests whose record lookup or search failed, by policy.",
	}, []string{"policy"})
	cacheRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "groundgate", Name: "cache_requests_total",
		Help: "Response cache lookups by policy and result (hit, miss).",
	}, []string{"policy", "result"})
	filterFindings = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "groundgate", Name: "filter_findings_total",
		Help: "Content filter findings by policy, filter, category, stage and action.",
	}, []string{"policy", "filter", "category", "stage", "action"})
	budgetRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "groundgate", Name: "budget_refusals_total",
		Help: "Requests refused by a budget, by policy and kind (rate: 429, quota: 403).",
	}, []string{"policy", "kind"})
	budgetStoreErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "groundgate", Name: "budget_store_errors_total",
		Help: "Budget store failures, by outcome: fail_open (request let through), fail_closed (refused with 503), settle (usage not recorded).",
	}, []string{"outcome"})
	breakerState = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "groundgate", Name: "upstream_breaker_state",
		Help: "Circuit breaker state per upstream: 0 closed, 1 half-open, 2 open.",
	}, []string{"upstream"})
)

// registerMetrics registers the collectors on a config's registry.
func registerMetrics(reg *prometheus.Registry) error {
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{requestsTotal, tokensTotal, upstreamDuration, timeToFirstToken, retriesTotal, breakerState, budgetRefusals, budgetStoreErrors, costTotal, recordsDenied, groundingErrors, cacheRequests, filterFindings} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}
