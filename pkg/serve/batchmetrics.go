package serve

// llmctl_batch_slots (docs/metrics.md, "Batches"): how many of a model's
// backend slots batch lines hold, how many they may hold (the batch
// share, batchqueue.go) and how many a starting line must leave free (the
// headroom, batchheadroom.go), read from the queue at scrape time.

import (
	"math"
	"sort"

	"github.com/prometheus/client_golang/prometheus"
)

var batchSlotsDesc = prometheus.NewDesc("llmctl_batch_slots",
	"Backend slots of a model held by batch lines (state=held) and the most they may hold, the batch share (state=limit; absent when a backend of the model has no maxConcurrency), and the slots a starting batch line must leave free (state=headroom).",
	[]string{"model", "state"}, nil)

// batchSlots collects llmctl_batch_slots from the router's queue.
type batchSlots struct{ r *router }

func (c batchSlots) Describe(ch chan<- *prometheus.Desc) { ch <- batchSlotsDesc }

func (c batchSlots) Collect(ch chan<- prometheus.Metric) {
	q := c.r.q
	if q == nil {
		return
	}
	c.r.mu.RLock()
	models := make([]string, 0, len(c.r.byModel))
	for m := range c.r.byModel {
		models = append(models, m)
	}
	c.r.mu.RUnlock()
	sort.Strings(models)
	q.mu.Lock()
	held := make(map[string]int, len(q.batch.held))
	for m, n := range q.batch.held {
		held[m] = n
	}
	headroom := make(map[string]int, len(models))
	for _, m := range models {
		headroom[m] = q.headroom(m)
	}
	q.mu.Unlock()
	for _, m := range models {
		ch <- prometheus.MustNewConstMetric(batchSlotsDesc, prometheus.GaugeValue, float64(headroom[m]), m, "headroom")
		ch <- prometheus.MustNewConstMetric(batchSlotsDesc, prometheus.GaugeValue, float64(held[m]), m, "held")
		if limit := c.r.batchCap(m); limit != math.MaxInt {
			ch <- prometheus.MustNewConstMetric(batchSlotsDesc, prometheus.GaugeValue, float64(limit), m, "limit")
		}
	}
}
