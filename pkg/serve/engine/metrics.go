package engine

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// tokenCounts are the engine's own token counters, kept apart from the
// usage it reports, so that `llmctl ledger reconcile` can compare what the
// ledger charged with what the engine actually processed.
type tokenCounts struct {
	prompt, generated atomic.Int64
}

// admitted counts a job's prompt tokens (every input of an embeddings job)
// as the scheduler takes it on.
func (c *tokenCounts) admitted(j *job) {
	n := len(j.prompt)
	if j.embed != nil {
		n = 0
		for _, in := range j.embed {
			n += len(in)
		}
	}
	c.prompt.Add(int64(n))
}

// tokenCollector exports the counters, labelled with the model's name.
type tokenCollector struct {
	c           *tokenCounts
	prompt, gen *prometheus.Desc
}

// Collector returns the engine's token counters for a Prometheus registry:
// llmctl_engine_prompt_tokens_total and llmctl_engine_generation_tokens_total
// (label model). Each backend's collector is distinct, so several engines
// register side by side.
func (b *Backend) Collector() prometheus.Collector {
	l := prometheus.Labels{"model": b.name}
	return tokenCollector{c: &b.sched.counts,
		prompt: prometheus.NewDesc("llmctl_engine_prompt_tokens_total", "Prompt tokens the embedded engine processed (embeddings inputs included).", nil, l),
		gen:    prometheus.NewDesc("llmctl_engine_generation_tokens_total", "Tokens the embedded engine generated.", nil, l)}
}

func (t tokenCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- t.prompt
	ch <- t.gen
}

func (t tokenCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(t.prompt, prometheus.CounterValue, float64(t.c.prompt.Load()))
	ch <- prometheus.MustNewConstMetric(t.gen, prometheus.CounterValue, float64(t.c.generated.Load()))
}
