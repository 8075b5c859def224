// Package toptest has test doubles for `llmctl top`'s upstreams: a gateway
// /metrics endpoint built with prometheus/client_golang that registers the
// contract's metric names (docs/metrics.md), and a stepping clock.
package toptest

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/llmctl/llmctl/pkg/top/metrics"
)

// Gateway is a stand-in for the gateway's admin /metrics.
type Gateway struct {
	Registry *prometheus.Registry
	Requests *prometheus.CounterVec
	Duration *prometheus.HistogramVec
	TTFT     *prometheus.HistogramVec
	Tokens   *prometheus.CounterVec
	InFlight *prometheus.GaugeVec
	Up       *prometheus.GaugeVec
	BInF     *prometheus.GaugeVec
	UpErrs   *prometheus.CounterVec
	GPU      map[string]*prometheus.GaugeVec // by metric name
	// The admission queue and fallbacks (pkg/serve/admission.go).
	Queue        *prometheus.GaugeVec     // model, priority
	QueueWait    *prometheus.HistogramVec // model, priority
	QueueRefused *prometheus.CounterVec   // model, reason
	Fallbacks    *prometheus.CounterVec   // from, to
}

// NewGateway registers every metric top reads.
func NewGateway() *Gateway {
	g := &Gateway{Registry: prometheus.NewRegistry(), GPU: map[string]*prometheus.GaugeVec{}}
	lat := []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	g.Requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: metrics.RequestsTotal, Help: "finished requests"}, []string{"route", "model", "code", "backend"})
	g.Duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: metrics.RequestDuration, Help: "request duration", Buckets: lat}, []string{"route", "model"})
	g.TTFT = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: metrics.TimeToFirstToken, Help: "time to first token", Buckets: lat}, []string{"model"})
	g.Tokens = prometheus.NewCounterVec(prometheus.CounterOpts{Name: metrics.TokensTotal, Help: "tokens"}, []string{"model", "direction"})
	g.InFlight = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: metrics.RequestsInFlight, Help: "in flight"}, []string{"route"})
	g.Up = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: metrics.BackendUp, Help: "backend up"}, []string{"backend"})
	g.BInF = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: metrics.BackendInFlight, Help: "backend in flight"}, []string{"backend"})
	g.UpErrs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: metrics.UpstreamErrorsTotal, Help: "upstream errors"}, []string{"backend", "reason"})
	g.Queue = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: metrics.QueueDepth, Help: "queued"}, []string{"model", "priority"})
	g.QueueWait = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: metrics.QueueWait, Help: "queue wait", Buckets: lat}, []string{"model", "priority"})
	g.QueueRefused = prometheus.NewCounterVec(prometheus.CounterOpts{Name: metrics.QueueRefusedTotal, Help: "queue refusals"}, []string{"model", "reason"})
	g.Fallbacks = prometheus.NewCounterVec(prometheus.CounterOpts{Name: metrics.FallbacksTotal, Help: "fallbacks"}, []string{"from", "to"})
	g.Registry.MustRegister(g.Requests, g.Duration, g.TTFT, g.Tokens, g.InFlight, g.Up, g.BInF, g.UpErrs,
		g.Queue, g.QueueWait, g.QueueRefused, g.Fallbacks)
	for _, n := range []string{metrics.GPUUtilization, metrics.GPUMemoryUsed, metrics.GPUMemoryTotal, metrics.GPUTemperature, metrics.GPUPower} {
		g.GPU[n] = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: n, Help: n}, []string{"gpu"})
		g.Registry.MustRegister(g.GPU[n])
	}
	return g
}

// Handler serves the registry in the text format.
func (g *Gateway) Handler() http.Handler {
	return promhttp.HandlerFor(g.Registry, promhttp.HandlerOpts{})
}

// Server starts an httptest server for the handler at /metrics.
func (g *Gateway) Server() *httptest.Server {
	mux := http.NewServeMux()
	mux.Handle("/metrics", g.Handler())
	return httptest.NewServer(mux)
}

// Serve records n chat requests of model answered with code by backend,
// each taking latency seconds, ttft to the first token, and in/out tokens.
func (g *Gateway) Serve(model, code, backend string, n int, latency, ttft float64, in, out int) {
	g.Requests.WithLabelValues("chat", model, code, backend).Add(float64(n))
	for i := 0; i < n; i++ {
		g.Duration.WithLabelValues("chat", model).Observe(latency)
		if ttft > 0 {
			g.TTFT.WithLabelValues(model).Observe(ttft)
		}
	}
	g.Tokens.WithLabelValues(model, "in").Add(float64(n * in))
	g.Tokens.WithLabelValues(model, "out").Add(float64(n * out))
}

// SetGPU sets one GPU's gauges.
func (g *Gateway) SetGPU(id string, util, memUsed, memTotal, tempC, powerW float64) {
	g.GPU[metrics.GPUUtilization].WithLabelValues(id).Set(util)
	g.GPU[metrics.GPUMemoryUsed].WithLabelValues(id).Set(memUsed)
	g.GPU[metrics.GPUMemoryTotal].WithLabelValues(id).Set(memTotal)
	g.GPU[metrics.GPUTemperature].WithLabelValues(id).Set(tempC)
	g.GPU[metrics.GPUPower].WithLabelValues(id).Set(powerW)
}

// Clock advances by Step on every reading; safe for concurrent use.
type Clock struct {
	mu   sync.Mutex
	T    time.Time
	Step time.Duration
}

// Now advances and returns the time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.T = c.T.Add(c.Step)
	return c.T
}
