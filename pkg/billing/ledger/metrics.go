package ledger

import "github.com/prometheus/client_golang/prometheus"

// metrics are the ledger's series from docs/metrics.md.
type metrics struct {
	reg               prometheus.Registerer
	cs                []prometheus.Collector
	batchSize         prometheus.Histogram
	groupSize         prometheus.Histogram
	writeErrors       prometheus.Counter
	reserveUnrecorded prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, l *Ledger) *metrics {
	m := &metrics{
		reg: reg,
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "llmctl_ledger_write_batch_size",
			Help:    "Ledger entries per database write.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 7),
		}),
		groupSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "llmctl_ledger_journal_group_size",
			Help:    "Ledger settlements made durable by one fsync of the local spool (group commit).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		writeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "llmctl_ledger_write_errors_total",
			Help: "Failed ledger database writes.",
		}),
		reserveUnrecorded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "llmctl_ledger_unrecorded_holds_total",
			Help: "Requests admitted without a recorded hold because the database was unreachable.",
		}),
	}
	m.cs = []prometheus.Collector{
		m.batchSize, m.groupSize, m.writeErrors, m.reserveUnrecorded,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "llmctl_ledger_spool_depth",
			Help: "Ledger entries journaled in the local spool and not yet in the database.",
		}, func() float64 { return float64(l.Depth()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "llmctl_ledger_oldest_unsettled_seconds",
			Help: "Age of the oldest ledger entry not yet in the database.",
		}, func() float64 { return l.oldest().Seconds() }),
	}
	if reg != nil {
		for _, c := range m.cs {
			reg.MustRegister(c)
		}
	}
	return m
}

func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.cs {
		m.reg.Unregister(c)
	}
}
