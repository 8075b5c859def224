package limits

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics holds llmctl_ratelimit_decisions_total (docs/metrics.md). Labels
// are bounded: scope is "key" or "tenant", never an id.
type metrics struct {
	decisions *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llmctl_ratelimit_decisions_total",
		Help: "Rate limiter decisions by scope (key, tenant) and result (allowed, limited, error).",
	}, []string{"scope", "result"})}
	if reg == nil {
		return m, nil
	}
	if err := reg.Register(m.decisions); err != nil {
		are := prometheus.AlreadyRegisteredError{}
		if errors.As(err, &are) { // a second limiter on one registry shares the counter
			if cv, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				m.decisions = cv
				return m, nil
			}
		}
		return nil, fmt.Errorf("limits: register metrics: %w", err)
	}
	return m, nil
}

// record counts one decision once per scope it involved. For "limited", only
// the scope of the bucket that refused (denied) is counted as limited.
func (m *metrics) record(bs []bucket, result string, denied int) {
	if denied >= 0 {
		m.decisions.WithLabelValues(bs[denied].scope, result).Inc()
		return
	}
	var key, tenant bool
	for _, b := range bs {
		switch b.scope {
		case "key":
			key = true
		case "tenant":
			tenant = true
		}
	}
	if key {
		m.decisions.WithLabelValues("key", result).Inc()
	}
	if tenant {
		m.decisions.WithLabelValues("tenant", result).Inc()
	}
}
