package serve

import (
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// metricChildren keeps the metric children every request counts into, by
// their label values: WithLabelValues hashes and compares the labels under
// the vector's lock on every call (and the status code needed a string),
// four to five times a request. A child is created the first time its
// labels are used, so series appear exactly when they did before.
type metricChildren struct {
	finished childCache[finishLabels, finishChildren]
	inFlight childCache[string, prometheus.Gauge]
	tokens   childCache[string, [2]prometheus.Counter]
}

type finishLabels struct {
	route, model, backend string
	status                int
}

type finishChildren struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

func newMetricChildren(m *metrics) *metricChildren {
	return &metricChildren{
		finished: childCache[finishLabels, finishChildren]{create: func(k finishLabels) finishChildren {
			return finishChildren{
				requests: m.requests.WithLabelValues(k.route, k.model, strconv.Itoa(k.status), k.backend),
				duration: m.duration.WithLabelValues(k.route, k.model),
			}
		}},
		inFlight: childCache[string, prometheus.Gauge]{create: func(route string) prometheus.Gauge {
			return m.inFlight.WithLabelValues(route)
		}},
		tokens: childCache[string, [2]prometheus.Counter]{create: func(model string) [2]prometheus.Counter {
			return [2]prometheus.Counter{m.tokens.WithLabelValues(model, "in"), m.tokens.WithLabelValues(model, "out")}
		}},
	}
}

// maxCachedChildren bounds each cache; labels past it are looked up on
// every use, as without a cache. The labels are bounded already (see
// metrics), so this is only a guard.
const maxCachedChildren = 4096

// childCache is a copy-on-write map: reads take no lock; a miss copies the
// map, which happens once per label set.
type childCache[K comparable, V any] struct {
	m      atomic.Pointer[map[K]V]
	mu     sync.Mutex
	create func(K) V
}

func (c *childCache[K, V]) get(k K) V {
	if m := c.m.Load(); m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old != nil {
		if v, ok := (*old)[k]; ok {
			return v
		}
	}
	v := c.create(k)
	n := 0
	if old != nil {
		n = len(*old)
	}
	if n >= maxCachedChildren {
		return v
	}
	m := make(map[K]V, n+1)
	if old != nil {
		for ok, ov := range *old {
			m[ok] = ov
		}
	}
	m[k] = v
	c.m.Store(&m)
	return v
}
