package upstreamdouble

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metric flavours for Options.Metrics: the counter names the real servers
// export, so reconciliation is tested against what it will read in the field.
const (
	// MetricsVLLM: vllm:prompt_tokens_total and
	// vllm:generation_tokens_total, labelled model_name.
	MetricsVLLM = "vllm"
	// MetricsLlamaCpp: llamacpp:prompt_tokens_total and
	// llamacpp:tokens_predicted_total, unlabelled (one model per server).
	MetricsLlamaCpp = "llamacpp"
)

// counterBase is where the counters restart from: Restart takes the
// current sums as the new zero, as a real backend's restart would.
type counterBase struct {
	mu    sync.Mutex
	start time.Time
	base  map[string][2]int64 // model -> prompt, generated at the restart
}

// sums totals the prompt tokens of answered inference requests (embeddings
// included, as vLLM counts them) and the completion tokens delivered, per model.
func (d *Double) sums() map[string][2]int64 {
	out := map[string][2]int64{}
	for _, r := range d.Records() {
		if r.Status != http.StatusOK {
			continue
		}
		c := out[r.Model]
		c[0] += r.PromptTokens
		c[1] += r.CompletionTokens
		out[r.Model] = c
	}
	return out
}

// Restart zeroes the counters and moves the start time to now: what a
// backend process restart looks like from /metrics.
func (d *Double) Restart() {
	s := d.sums()
	d.counters.mu.Lock()
	d.counters.base, d.counters.start = s, time.Now()
	d.counters.mu.Unlock()
}

// Counted is what /metrics reports now for a model: prompt and generated.
func (d *Double) Counted(model string) (prompt, generated int64) {
	s := d.sums()
	d.counters.mu.Lock()
	defer d.counters.mu.Unlock()
	b := d.counters.base[model]
	return s[model][0] - b[0], s[model][1] - b[1]
}

type doubleCollector struct {
	d                    *Double
	prompt, gen, started *prometheus.Desc
}

func (c doubleCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.prompt
	ch <- c.gen
	ch <- c.started
}

func (c doubleCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.d.sums()
	c.d.counters.mu.Lock()
	base, start := c.d.counters.base, c.d.counters.start
	c.d.counters.mu.Unlock()
	for m, v := range s {
		var labels []string
		if c.d.opts.Metrics == MetricsVLLM {
			labels = []string{m}
		}
		b := base[m]
		ch <- prometheus.MustNewConstMetric(c.prompt, prometheus.CounterValue, float64(v[0]-b[0]), labels...)
		ch <- prometheus.MustNewConstMetric(c.gen, prometheus.CounterValue, float64(v[1]-b[1]), labels...)
	}
	// vLLM's Python client exports its process start; llama.cpp does not.
	if c.d.opts.Metrics == MetricsVLLM {
		ch <- prometheus.MustNewConstMetric(c.started, prometheus.GaugeValue, float64(start.UnixNano())/1e9)
	}
}

func (d *Double) metrics(w http.ResponseWriter, r *http.Request) {
	c := doubleCollector{d: d, started: prometheus.NewDesc("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", nil, nil)}
	switch d.opts.Metrics {
	case MetricsVLLM:
		c.prompt = prometheus.NewDesc("vllm:prompt_tokens_total", "Number of prefill tokens processed.", []string{"model_name"}, nil)
		c.gen = prometheus.NewDesc("vllm:generation_tokens_total", "Number of generation tokens processed.", []string{"model_name"}, nil)
	default:
		c.prompt = prometheus.NewDesc("llamacpp:prompt_tokens_total", "Number of prompt tokens processed.", nil, nil)
		c.gen = prometheus.NewDesc("llamacpp:tokens_predicted_total", "Number of generation tokens processed.", nil, nil)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(w, r)
}
