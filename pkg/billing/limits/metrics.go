package limits

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics holds llmctl_ratelimit_decisions_total (docs/metrics.md). Labels
// are bounded: scope is "key" or "tenant", never an id.
type metrics struct {
	decisions *prometheus.CounterVec
	// children: the counter of each scope and result, looked up on first
	// use (so a series appears when it is first counted, as before).
	children [2][3]atomic.Pointer[prometheus.Counter]
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

// counter is the child of scope and result: WithLabelValues would hash
// and look up the labels on every call.
func (m *metrics) counter(scope, result string) prometheus.Counter {
	si := slices.Index([]string{"key", "tenant"}, scope)
	ri := slices.Index([]string{"allowed", "limited", "error"}, result)
	if si < 0 || ri < 0 {
		return m.decisions.WithLabelValues(scope, result)
	}
	if c := m.children[si][ri].Load(); c != nil {
		return *c
	}
	c := m.decisions.WithLabelValues(scope, result)
	m.children[si][ri].Store(&c)
	return c
}

// record counts one decision once per scope it involved. For "limited", only
// the scope of the bucket that refused (denied) is counted as limited.
func (m *metrics) record(bs []bucket, result string, denied int) {
	if denied >= 0 {
		m.counter(bs[denied].scope, result).Inc()
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
		m.counter("key", result).Inc()
	}
	if tenant {
		m.counter("tenant", result).Inc()
	}
}
