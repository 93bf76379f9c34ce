package host

import (
	"time"

	"github.com/kvhost/kvhost/api/rpcerr"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the store's Prometheus metrics. A nil *Metrics records
// nothing.
type Metrics struct {
	latency  *prometheus.HistogramVec
	errors   *prometheus.CounterVec
	slow     *prometheus.CounterVec
	restarts prometheus.Counter
	watchers prometheus.Gauge
	up       prometheus.Gauge
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "kvhost", Name: "operation_duration_seconds",
			Help:    "Latency of store operations, policy checks included.",
			Buckets: []float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1},
		}, []string{"op", "backend"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kvhost", Name: "operation_errors_total",
			Help: "Failed store operations by gRPC code (NotFound included).",
		}, []string{"op", "code"}),
		slow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kvhost", Name: "slow_operations_total",
			Help: "Operations slower than the configured slow threshold.",
		}, []string{"op"}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "kvhost", Name: "plugin_restarts_total",
			Help: "Times the backend plugin process was restarted after it died.",
		}),
		watchers: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "kvhost", Name: "watchers",
			Help: "Open watch streams.",
		}),
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "kvhost", Name: "backend_up",
			Help: "1 when the backend plugin is serving, 0 while it is down or restarting.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.latency, m.errors, m.slow, m.restarts, m.watchers, m.up)
	}
	return m
}

func (m *Metrics) observe(op, backend string, d time.Duration, err error, slow time.Duration) {
	if m == nil {
		return
	}
	m.latency.WithLabelValues(op, backend).Observe(d.Seconds())
	if err != nil {
		m.errors.WithLabelValues(op, rpcerr.Code(err).String()).Inc()
	}
	if slow > 0 && d >= slow {
		m.slow.WithLabelValues(op).Inc()
	}
}

func (m *Metrics) restarted() {
	if m != nil {
		m.restarts.Inc()
	}
}

func (m *Metrics) watch(delta float64) {
	if m != nil {
		m.watchers.Add(delta)
	}
}

func (m *Metrics) setUp(up bool) {
	if m == nil {
		return
	}
	if up {
		m.up.Set(1)
	} else {
		m.up.Set(0)
	}
}

// Restarts is the plugin restart counter (for tests and dashboards).
func (m *Metrics) Restarts() prometheus.Counter { return m.restarts }
