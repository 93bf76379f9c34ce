package host

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvhost/kvhost/api/rpcerr"
	"github.com/kvhost/kvhost/pluginapi"
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
	// cache and tracking read the figures of the read cache and of the
	// tracking sessions, reported by collector functions (each registers
	// itself: cacheFigures, trackerFigures).
	cache    lateGauge[cacheFigures]
	tracking lateGauge[trackingFigures]
	// pages counts how the plugin's list pages crossed, over all its
	// processes (Open passes it to every start).
	pages pluginapi.PageCounts
}

// lateGauge reads figures of a part of the store that registers itself
// after the metrics were made (zero until it does).
type lateGauge[T any] struct {
	mu   sync.Mutex
	read func() T
}

func (g *lateGauge[T]) figures() T {
	g.mu.Lock()
	defer g.mu.Unlock()
	var zero T
	if g.read == nil {
		return zero
	}
	return g.read()
}

func (g *lateGauge[T]) set(read func() T) {
	g.mu.Lock()
	g.read = read
	g.mu.Unlock()
}

// trackingFigures are what /metrics shows of the tracking sessions.
type trackingFigures struct{ sessions, keys int }

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
			Help: "Failed store operations by gRPC code. A get of a missing key is an answer, not an error; a refresh of one is NotFound.",
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
	fig := func(f func(cacheFigures) float64) func() float64 {
		return func() float64 { return f(m.cache.figures()) }
	}
	funcs := []prometheus.Collector{ // figures read when scraped
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "kvhost", Name: "cache_hits_total",
			Help: "Gets served from the host's read cache."}, fig(func(f cacheFigures) float64 { return float64(f.hits) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "kvhost", Name: "cache_misses_total",
			Help: "Gets the host's read cache passed to the backend."}, fig(func(f cacheFigures) float64 { return float64(f.misses) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "kvhost", Name: "cache_entries",
			Help: "Keys held by the host's read cache."}, fig(func(f cacheFigures) float64 { return float64(f.entries) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "kvhost", Name: "cache_bytes",
			Help: "Bytes held by the host's read cache (keys, values and per-entry overhead)."}, fig(func(f cacheFigures) float64 { return float64(f.bytes) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "kvhost", Name: "tracking_sessions",
			Help: "Open tracking sessions (clients' near caches)."}, func() float64 { return float64(m.tracking.figures().sessions) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "kvhost", Name: "tracked_keys",
			Help: "Keys tracked for clients' near caches, over all sessions."}, func() float64 { return float64(m.tracking.figures().keys) }),
	}
	pages := func(via string, n *atomic.Int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "kvhost", Name: "plugin_list_pages_total",
			Help:        "List pages from the backend plugin, by how they crossed: shared_memory (large pages, docs/RATIONALE.md) or connection.",
			ConstLabels: prometheus.Labels{"via": via}}, func() float64 { return float64(n.Load()) })
	}
	funcs = append(funcs, pages("shared_memory", &m.pages.Shared), pages("connection", &m.pages.Connection),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "kvhost", Name: "plugin_list_pages_reclaimed_total",
			Help: "Large list pages the plugin took back before the host read them (the call was slow or cancelled); each was asked for again on the connection."},
			func() float64 { return float64(m.pages.Reclaimed.Load()) }))
	if reg != nil {
		reg.MustRegister(m.latency, m.errors, m.slow, m.restarts, m.watchers, m.up)
		reg.MustRegister(funcs...)
	}
	return m
}

// pageCounts is what the plugin's clients count their list pages in, or
// nil when nothing is recorded.
func (m *Metrics) pageCounts() *pluginapi.PageCounts {
	if m == nil {
		return nil
	}
	return &m.pages
}

// cacheFigures registers the read cache whose figures the metrics report.
func (m *Metrics) cacheFigures(read func() cacheFigures) {
	if m == nil {
		return
	}
	m.cache.set(read)
}

// trackerFigures registers the tracker whose sessions the metrics report.
func (m *Metrics) trackerFigures(read func() trackingFigures) {
	if m != nil {
		m.tracking.set(read)
	}
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
