package metrics

import (
	"math"
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"
)

// Window is what happened on one target between two scrapes: counter and
// histogram increases per series, and the gauges as of the later scrape.
type Window struct {
	Seconds float64
	Series  []Series
	// Target prefixes the backend names of this window ("host/") when
	// several gateways are watched: each has its own view of a backend
	// (health, in flight), and two gateways' "vllm" may be different servers.
	Target string
}

// Series is one time series' increase (counters, histograms) or current
// value (gauges) over a Window.
type Series struct {
	Name   string
	Labels map[string]string
	Kind   dto.MetricType
	Value  float64    // counter increase or gauge value
	Hist   *Histogram // histogram increase
}

// Histogram is a histogram's increase: cumulative bucket counts by upper
// bound, the last bound being +Inf.
type Histogram struct {
	Count   float64
	Sum     float64
	Buckets []Bucket
}

// Bucket is one cumulative histogram bucket.
type Bucket struct {
	Upper float64
	Count float64
}

// Delta computes the window from prev to cur of one target. A series absent
// from prev started at zero (client_golang creates series on first use); a
// series that went down was reset by a restart, and its current value is
// the increase, as Prometheus' rate() treats resets.
func Delta(prev, cur Scrape) Window {
	w := Window{Seconds: cur.At.Sub(prev.At).Seconds()}
	old := map[string]*dto.Metric{}
	for name, f := range prev.Families {
		for _, m := range f.GetMetric() {
			old[seriesKey(name, m)] = m
		}
	}
	names := make([]string, 0, len(cur.Families))
	for name := range cur.Families {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		f := cur.Families[name]
		for _, m := range f.GetMetric() {
			s := Series{Name: name, Labels: labels(m), Kind: f.GetType()}
			p := old[seriesKey(name, m)]
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				c := m.GetCounter().GetValue()
				pc := p.GetCounter().GetValue() // nil-safe: 0 when absent
				s.Value = c - pc
				if c < pc {
					s.Value = c
				}
			case dto.MetricType_GAUGE:
				s.Value = m.GetGauge().GetValue()
			case dto.MetricType_UNTYPED:
				s.Value = m.GetUntyped().GetValue()
			case dto.MetricType_HISTOGRAM:
				s.Hist = histDelta(p.GetHistogram(), m.GetHistogram())
			default:
				continue
			}
			w.Series = append(w.Series, s)
		}
	}
	return w
}

func histDelta(prev, cur *dto.Histogram) *Histogram {
	h := toHist(cur)
	if prev == nil {
		return h
	}
	p := toHist(prev)
	if h.Count < p.Count {
		return h // reset
	}
	before := map[float64]float64{}
	for _, b := range p.Buckets {
		before[b.Upper] = b.Count
	}
	h.Count -= p.Count
	h.Sum -= p.Sum
	for i := range h.Buckets {
		c := h.Buckets[i].Count - before[h.Buckets[i].Upper]
		h.Buckets[i].Count = math.Max(c, 0)
	}
	return h
}

// toHist copies a histogram's classic buckets, adding the +Inf bucket when
// the exposition left it implicit.
func toHist(d *dto.Histogram) *Histogram {
	h := &Histogram{Count: count(d.GetSampleCount(), d.GetSampleCountFloat()), Sum: d.GetSampleSum()}
	for _, b := range d.GetBucket() {
		h.Buckets = append(h.Buckets, Bucket{Upper: b.GetUpperBound(), Count: count(b.GetCumulativeCount(), b.GetCumulativeCountFloat())})
	}
	sort.Slice(h.Buckets, func(i, j int) bool { return h.Buckets[i].Upper < h.Buckets[j].Upper })
	if n := len(h.Buckets); n == 0 || !math.IsInf(h.Buckets[n-1].Upper, +1) {
		h.Buckets = append(h.Buckets, Bucket{Upper: math.Inf(+1), Count: h.Count})
	}
	return h
}

func count(i uint64, f float64) float64 {
	if f != 0 {
		return f
	}
	return float64(i)
}

// Add merges o into h bucket by bucket (same upper bounds add up; other
// bounds are kept), for summing series of one model across routes and
// targets.
func (h *Histogram) Add(o *Histogram) {
	if o == nil {
		return
	}
	h.Count += o.Count
	h.Sum += o.Sum
	if len(h.Buckets) == 0 {
		h.Buckets = append([]Bucket(nil), o.Buckets...)
		return
	}
	// Cumulative counts of differently bucketed histograms can only be merged
	// at the union of bounds by reading each one's count at every bound.
	bounds := map[float64]bool{}
	for _, b := range h.Buckets {
		bounds[b.Upper] = true
	}
	for _, b := range o.Buckets {
		bounds[b.Upper] = true
	}
	ups := make([]float64, 0, len(bounds))
	for u := range bounds {
		ups = append(ups, u)
	}
	sort.Float64s(ups)
	merged := make([]Bucket, len(ups))
	for i, u := range ups {
		merged[i] = Bucket{Upper: u, Count: cumAt(h.Buckets, u) + cumAt(o.Buckets, u)}
	}
	h.Buckets = merged
}

// cumAt is the cumulative count at bound u: that of the largest bound <= u.
func cumAt(bs []Bucket, u float64) float64 {
	c := 0.0
	for _, b := range bs {
		if b.Upper > u {
			break
		}
		c = b.Count
	}
	return c
}

// Quantile estimates the q-quantile (0..1) the way Prometheus'
// histogram_quantile does: find the bucket holding the rank and interpolate
// linearly inside it. ok is false when the histogram saw nothing.
func (h *Histogram) Quantile(q float64) (v float64, ok bool) {
	if h == nil || h.Count <= 0 || len(h.Buckets) == 0 || math.IsNaN(q) {
		return 0, false
	}
	q = math.Min(math.Max(q, 0), 1)
	total := h.Buckets[len(h.Buckets)-1].Count
	if total <= 0 {
		return 0, false
	}
	rank := q * total
	lower, below := 0.0, 0.0
	for i, b := range h.Buckets {
		if b.Count >= rank && b.Count > below {
			if math.IsInf(b.Upper, +1) {
				// Beyond the last finite bound: its bound is the best answer.
				if i == 0 {
					return 0, false
				}
				return h.Buckets[i-1].Upper, true
			}
			if i == 0 && b.Upper <= 0 {
				return b.Upper, true
			}
			return lower + (b.Upper-lower)*(rank-below)/(b.Count-below), true
		}
		lower, below = b.Upper, b.Count
	}
	return lower, true
}

func labels(m *dto.Metric) map[string]string {
	l := make(map[string]string, len(m.GetLabel()))
	for _, p := range m.GetLabel() {
		l[p.GetName()] = p.GetValue()
	}
	return l
}

// seriesKey identifies a series by name and sorted label pairs.
func seriesKey(name string, m *dto.Metric) string {
	ps := m.GetLabel()
	kv := make([]string, 0, len(ps))
	for _, p := range ps {
		kv = append(kv, p.GetName()+"\xff"+p.GetValue())
	}
	sort.Strings(kv)
	return name + "\xfe" + strings.Join(kv, "\xfe")
}
