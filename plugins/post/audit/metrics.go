package audit

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Collectors live for the process and are registered on each config's
// registry, so counts carry across reloads and a reload never panics with
// a duplicate registration.
var (
	recordsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "groundgate", Name: "audit_records_total",
		Help: "Audit records by sink kind and result: written, dropped (queue full or closed), failed (rejected by the sink), lost (drain deadline passed).",
	}, []string{"sink", "result"})
	retriesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "groundgate", Name: "audit_retries_total",
		Help: "Failed audit sink writes that were retried, by sink kind.",
	}, []string{"sink"})
	queueLength = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "groundgate", Name: "audit_queue_length",
		Help: "Audit records waiting in the queue, by sink kind.",
	}, []string{"sink"})
)

func registerMetrics(reg *prometheus.Registry) error {
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{recordsTotal, retriesTotal, queueLength} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}
