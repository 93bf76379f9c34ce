package policy

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the engine's Prometheus collectors. All are labelled by
// policy name; per-policy children are resolved once per load so that
// the hot path touches only the latency histogram's atomics. Evaluations
// are the histogram's _count: a separate counter would be one more
// contended atomic per policy per operation.
type metrics struct {
	denials    *prometheus.CounterVec   // policy, code, mode
	failures   *prometheus.CounterVec   // policy, kind: timeout, trap, out_of_memory, ...
	latency    *prometheus.HistogramVec // policy
	reloads    *prometheus.CounterVec   // result: ok, refused, unchanged
	logDropped *prometheus.CounterVec   // policy
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kvhost", Subsystem: "policy", Name: "denials_total",
			Help: "Policy denials by policy, code and mode (audit denials are not enforced).",
		}, []string{"policy", "code", "mode"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kvhost", Subsystem: "policy", Name: "failures_total",
			Help: "Policy failures by kind: timeout, trap, out_of_memory, crash, bad_answer, unavailable.",
		}, []string{"policy", "kind"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "kvhost", Subsystem: "policy", Name: "evaluation_seconds",
			Help:    "Time to evaluate one policy, including the host side of the call; its _count is the number of evaluations.",
			Buckets: []float64{1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1},
		}, []string{"policy"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kvhost", Subsystem: "policy", Name: "reloads_total",
			Help: "Policy chain loads by result (ok, refused, unchanged).",
		}, []string{"result"}),
		logDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kvhost", Subsystem: "policy", Name: "log_lines_dropped_total",
			Help: "Policy log lines dropped by the rate limit.",
		}, []string{"policy"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.denials, m.failures, m.latency, m.reloads, m.logDropped} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, errors.New("policy: metrics already registered: give each engine its own registerer")
			}
			return nil, err
		}
	}
	return m, nil
}

// setMetrics are one policy's pre-resolved children.
type setMetrics struct {
	latency prometheus.Observer
}

func (m *metrics) forPolicy(name string) setMetrics {
	return setMetrics{latency: m.latency.WithLabelValues(name)}
}
