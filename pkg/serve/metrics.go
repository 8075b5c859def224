package serve

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gateway's series from docs/metrics.md. Labels are bounded:
// model is a configured/discovered model name or "" (never client input that
// matched nothing), backend a configured name, route one of a few fixed words (routeOf).
type metrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	ttft          *prometheus.HistogramVec
	itl           *prometheus.HistogramVec
	tokens        *prometheus.CounterVec
	inFlight      *prometheus.GaugeVec
	upstreamError *prometheus.CounterVec
	bodyRefused   prometheus.Counter
	children      *metricChildren // metric_children.go
}

func newMetrics(reg prometheus.Registerer, r *router, bodies *bodyBudget) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "llmctl_requests_total",
			Help: "Finished requests by route, model, HTTP status code and backend.",
		}, []string{"route", "model", "code", "backend"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "llmctl_request_duration_seconds",
			Help:    "Whole request duration, accept to last byte.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, []string{"route", "model"}),
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "llmctl_time_to_first_token_seconds",
			Help:    "Streaming: accept to first content event.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"model"}),
		itl: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "llmctl_inter_token_latency_seconds",
			Help:    "Streaming: gap between content events.",
			Buckets: []float64{.001, .0025, .005, .01, .02, .05, .1, .25, .5, 1},
		}, []string{"model"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "llmctl_tokens_total",
			Help: "Prompt (in) and completion (out) tokens.",
		}, []string{"model", "direction"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "llmctl_requests_in_flight",
			Help: "Requests being served now.",
		}, []string{"route"}),
		upstreamError: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "llmctl_upstream_errors_total",
			Help: "Failures talking to backends by reason.",
		}, []string{"backend", "reason"}),
		bodyRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "llmctl_request_bodies_refused_total",
			Help: "Request bodies refused with 503 because the in-flight body budget was spent.",
		}),
	}
	buffered := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "llmctl_request_body_bytes_buffered",
		Help: "Bytes held for request bodies in flight, against the body budget.",
	}, func() float64 { return float64(bodies.inUse()) })
	m.children = newMetricChildren(m)
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.ttft, m.itl, m.tokens, m.inFlight,
		m.upstreamError, m.bodyRefused, buffered, &backendCollector{r: r}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

var (
	backendUpDesc = prometheus.NewDesc("llmctl_backend_up",
		"1 when the backend is healthy and not ejected, else 0.", []string{"backend"}, nil)
	backendInFlightDesc = prometheus.NewDesc("llmctl_backend_in_flight",
		"Outstanding requests per backend.", []string{"backend"}, nil)
)

// backendCollector reads backend state at scrape time, so an ejection that
// simply expires shows without anyone updating a gauge.
type backendCollector struct{ r *router }

func (c *backendCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- backendUpDesc
	ch <- backendInFlightDesc
}

func (c *backendCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	for _, m := range c.r.members {
		up := 0.0
		if m.up(now) {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(backendUpDesc, prometheus.GaugeValue, up, m.name())
		ch <- prometheus.MustNewConstMetric(backendInFlightDesc, prometheus.GaugeValue,
			float64(m.outstanding.Load()), m.name())
	}
}
