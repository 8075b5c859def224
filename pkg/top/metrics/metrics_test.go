package metrics

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// gateway is a test double of the gateway's /metrics: a real client_golang
// registry with the contract's metric names.
type gateway struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	ttft     *prometheus.HistogramVec
	tokens   *prometheus.CounterVec
	inflight *prometheus.GaugeVec
	up       *prometheus.GaugeVec
	upErrs   *prometheus.CounterVec
	gpuUtil  *prometheus.GaugeVec
	gpuMem   *prometheus.GaugeVec
}

func newGateway() *gateway {
	g := &gateway{reg: prometheus.NewRegistry()}
	g.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: RequestsTotal}, []string{"route", "model", "code", "backend"})
	g.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: RequestDuration, Buckets: []float64{0.1, 0.25, 0.5, 1, 2.5}}, []string{"route", "model"})
	g.ttft = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: TimeToFirstToken, Buckets: []float64{0.05, 0.1, 0.2}}, []string{"model"})
	g.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{Name: TokensTotal}, []string{"model", "direction"})
	g.inflight = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: RequestsInFlight}, []string{"route"})
	g.up = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: BackendUp}, []string{"backend"})
	g.upErrs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: UpstreamErrorsTotal}, []string{"backend", "reason"})
	g.gpuUtil = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: GPUUtilization}, []string{"gpu"})
	g.gpuMem = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: GPUMemoryTotal}, []string{"gpu"})
	g.reg.MustRegister(g.requests, g.duration, g.ttft, g.tokens, g.inflight, g.up, g.upErrs, g.gpuUtil, g.gpuMem)
	return g
}

// clock advances by step on every reading.
type clock struct {
	t    time.Time
	step time.Duration
}

func (c *clock) now() time.Time { c.t = c.t.Add(c.step); return c.t }

func TestScrapeDeltaSummarize(t *testing.T) {
	g := newGateway()
	srv := httptest.NewServer(promhttp.HandlerFor(g.reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	clk := &clock{t: time.Unix(1_700_000_000, 0), step: 2 * time.Second}
	sc := &Scraper{Client: srv.Client(), Now: clk.now}
	ctx := context.Background()

	// History before the first scrape must not count.
	g.requests.WithLabelValues("chat", "llama", "200", "a").Add(1000)
	g.duration.WithLabelValues("chat", "llama").Observe(2)
	prev, err := sc.Scrape(ctx, srv.URL)
	if err != nil {
		t.Fatal(err)
	}

	// In the 2 s window: llama 16×200, 2×502, 2×429 over two routes; qwen
	// (a new series) 4×200. Latencies: 10 in (0.1,0.25], 10 in (0.5,1].
	g.requests.WithLabelValues("chat", "llama", "200", "a").Add(12)
	g.requests.WithLabelValues("completions", "llama", "200", "b").Add(4)
	g.requests.WithLabelValues("chat", "llama", "502", "a").Add(2)
	g.requests.WithLabelValues("chat", "llama", "429", "").Add(2)
	g.requests.WithLabelValues("chat", "qwen", "200", "b").Add(4)
	for i := 0; i < 10; i++ {
		g.duration.WithLabelValues("chat", "llama").Observe(0.2)
		g.duration.WithLabelValues("completions", "llama").Observe(0.7)
	}
	g.ttft.WithLabelValues("llama").Observe(0.07)
	g.tokens.WithLabelValues("llama", "in").Add(300)
	g.tokens.WithLabelValues("llama", "out").Add(100)
	g.inflight.WithLabelValues("chat").Set(3)
	g.up.WithLabelValues("a").Set(1)
	g.up.WithLabelValues("b").Set(0)
	g.upErrs.WithLabelValues("a", "status_5xx").Add(2)

	cur, err := sc.Scrape(ctx, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	w := Delta(prev, cur)
	if w.Seconds != 2 {
		t.Fatalf("window %v s, want 2", w.Seconds)
	}
	tr := Summarize([]Window{w})

	approx(t, "overall rps", tr.Overall.RPS, 12)       // 24 requests / 2 s
	approx(t, "overall 5xx/s", tr.Overall.ErrorsPS, 1) // 2 / 2 s
	approx(t, "overall 429/s", tr.Overall.LimitedPS, 1)
	approx(t, "in-flight", tr.InFlight, 3)
	if len(tr.Models) != 2 || tr.Models[0].Model != "llama" || tr.Models[1].Model != "qwen" {
		t.Fatalf("models = %+v", tr.Models)
	}
	ll := tr.Models[0]
	approx(t, "llama rps", ll.RPS, 10)
	approx(t, "llama error ratio", ll.ErrorRatio, 0.1)
	approx(t, "llama tokens in/s", ll.TokensInPS, 150)
	approx(t, "llama tokens out/s", ll.TokensOutPS, 50)
	approx(t, "llama samples", ll.Samples, 20) // the pre-window 2 s observation is excluded
	// p50: rank 10 of 20 is the top of bucket (0.1,0.25]; p99: rank 19.8
	// is 9.8/10 into (0.5,1].
	approx(t, "llama p50", ll.P50, 0.25)
	approx(t, "llama p99", ll.P99, 0.5+0.5*0.98)
	approx(t, "llama ttft p50", ll.TTFTP50, 0.05+0.05*0.5)
	approx(t, "qwen rps", tr.Models[1].RPS, 2)
	if tr.Models[1].Samples != 0 {
		t.Errorf("qwen has no latency samples, got %v", tr.Models[1].Samples)
	}

	if len(tr.Backends) != 2 {
		t.Fatalf("backends = %+v", tr.Backends)
	}
	a, b := tr.Backends[0], tr.Backends[1]
	if !a.Up || b.Up || !a.Reported || !b.Reported {
		t.Errorf("backend up: a=%+v b=%+v, want a up, b down, both reported", a, b)
	}
	// A backend only seen in request labels has unknown health.
	g.requests.WithLabelValues("chat", "llama", "200", "c").Add(1)
	cur2, err := sc.Scrape(ctx, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, be := range Summarize([]Window{Delta(cur, cur2)}).Backends {
		if be.Name == "c" && (be.Reported || be.Up) {
			t.Errorf("backend c = %+v, want unreported", be)
		}
	}
	approx(t, "backend a rps", a.RPS, 7)
	approx(t, "backend a errors/s", a.ErrorsPS, 1)
}

func TestCounterResetCountsCurrentValue(t *testing.T) {
	before := newGateway()
	before.requests.WithLabelValues("chat", "m", "200", "a").Add(500)
	after := newGateway() // the gateway restarted
	after.requests.WithLabelValues("chat", "m", "200", "a").Add(6)
	after.duration.WithLabelValues("chat", "m").Observe(0.3)
	clk := &clock{t: time.Unix(0, 0), step: 3 * time.Second}
	prev := gather(t, before, clk.now())
	cur := gather(t, after, clk.now())
	tr := Summarize([]Window{Delta(prev, cur)})
	approx(t, "rps after reset", tr.Overall.RPS, 2)
	approx(t, "samples after reset", tr.Overall.Samples, 1)
}

func TestSummarizeSumsTargets(t *testing.T) {
	g1, g2 := newGateway(), newGateway()
	clk := &clock{t: time.Unix(0, 0), step: time.Second}
	p1, p2 := gather(t, g1, clk.now()), gather(t, g2, clk.now())
	g1.requests.WithLabelValues("chat", "m", "200", "a").Add(10)
	g2.requests.WithLabelValues("chat", "m", "200", "a").Add(10)
	for i := 0; i < 99; i++ {
		g1.duration.WithLabelValues("chat", "m").Observe(0.05)
	}
	g2.duration.WithLabelValues("chat", "m").Observe(2)
	c1 := gather(t, g1, clk.now()) // window 2 s
	c2 := gather(t, g2, clk.now()) // window 2 s
	tr := Summarize([]Window{Delta(p1, c1), Delta(p2, c2)})
	approx(t, "rps", tr.Overall.RPS, 10)
	approx(t, "samples", tr.Overall.Samples, 100)
	if tr.Overall.P50 > 0.1 || tr.Overall.P99 > 0.1 {
		t.Errorf("p50 %v p99 %v: 99 of 100 samples are under 0.1 s", tr.Overall.P50, tr.Overall.P99)
	}
	// Windows without time carry no rate.
	if z := Summarize([]Window{Delta(c1, c1)}); z.Overall.RPS != 0 {
		t.Errorf("zero window rps = %v", z.Overall.RPS)
	}
}

func TestQuantile(t *testing.T) {
	inf := math.Inf(+1)
	h := &Histogram{Count: 10, Buckets: []Bucket{{1, 0}, {2, 10}, {inf, 10}}}
	approx(t, "p50 inside (1,2]", must(h.Quantile(0.5)), 1.5)
	approx(t, "p0 inside (1,2]", must(h.Quantile(0)), 1)
	over := &Histogram{Count: 4, Buckets: []Bucket{{1, 1}, {inf, 4}}}
	approx(t, "p99 in +Inf bucket is the last finite bound", must(over.Quantile(0.99)), 1)
	if _, ok := (&Histogram{}).Quantile(0.5); ok {
		t.Error("empty histogram has no quantile")
	}
	// Merging differently bucketed histograms keeps cumulative counts.
	m := &Histogram{}
	m.Add(&Histogram{Count: 2, Buckets: []Bucket{{1, 1}, {inf, 2}}})
	m.Add(&Histogram{Count: 2, Buckets: []Bucket{{0.5, 2}, {inf, 2}}})
	want := []Bucket{{0.5, 2}, {1, 3}, {inf, 4}}
	if len(m.Buckets) != len(want) {
		t.Fatalf("merged %v, want %v", m.Buckets, want)
	}
	for i := range want {
		if m.Buckets[i] != want[i] {
			t.Fatalf("merged %v, want %v", m.Buckets, want)
		}
	}
}

func TestScrapeErrors(t *testing.T) {
	ctx := context.Background()
	mux := http.NewServeMux()
	mux.HandleFunc("/500", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", 500) })
	mux.HandleFunc("/html", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<html>"))
	})
	mux.HandleFunc("/garbage", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("llmctl_requests_total{model=\"x\" 1\n"))
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte(strings.Repeat("# a comment line\n", 100)))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	sc := &Scraper{Client: srv.Client(), MaxBytes: 512}
	for path, want := range map[string]string{
		"/500":     "HTTP 500",
		"/html":    "text/html",
		"/garbage": "parse metrics",
		"/big":     "larger than 512 bytes",
	} {
		_, err := sc.Scrape(ctx, srv.URL+path)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), srv.URL) {
			t.Errorf("%s: err = %v, want one naming the target and %q", path, err, want)
		}
	}
	srv.Close()
	if _, err := sc.Scrape(ctx, srv.URL+"/metrics"); err == nil {
		t.Error("closed server: want an error")
	}
}

func TestGPUs(t *testing.T) {
	g := newGateway()
	g.gpuUtil.WithLabelValues("1").Set(0.25)
	g.gpuUtil.WithLabelValues("0").Set(0.5)
	g.gpuMem.WithLabelValues("0").Set(8 << 30)
	gs := GPUs(gather(t, g, time.Unix(0, 0)), "box/")
	if len(gs) != 2 || gs[0].Name != "box/0" || gs[0].Utilization != 0.5 || gs[0].MemTotal != 8<<30 || gs[1].Utilization != 0.25 {
		t.Fatalf("gpus = %+v", gs)
	}
	if gs := GPUs(gather(t, newGateway(), time.Unix(0, 0)), ""); len(gs) != 0 {
		t.Fatalf("no gauges, got %+v", gs)
	}
}

// FuzzParseDelta: whatever a target serves, parsing fails cleanly or the
// maths yields finite, ordered numbers.
func FuzzParseDelta(f *testing.F) {
	f.Add("llmctl_requests_total{model=\"m\",code=\"200\"} 5\n", "llmctl_requests_total{model=\"m\",code=\"200\"} 9\n")
	f.Add("# TYPE llmctl_request_duration_seconds histogram\nllmctl_request_duration_seconds_bucket{model=\"m\",le=\"0.1\"} 1\nllmctl_request_duration_seconds_bucket{model=\"m\",le=\"+Inf\"} 2\nllmctl_request_duration_seconds_sum{model=\"m\"} 1\nllmctl_request_duration_seconds_count{model=\"m\"} 2\n",
		"# TYPE llmctl_request_duration_seconds histogram\nllmctl_request_duration_seconds_bucket{model=\"m\",le=\"0.1\"} 3\nllmctl_request_duration_seconds_bucket{model=\"m\",le=\"+Inf\"} 9\nllmctl_request_duration_seconds_sum{model=\"m\"} 4\nllmctl_request_duration_seconds_count{model=\"m\"} 9\n")
	f.Add("# TYPE x counter\nx 1\n", "garbage{")
	f.Add(queueSampleBefore, queueSampleAfter)
	f.Fuzz(func(t *testing.T, a, b string) {
		prev, err := Parse(strings.NewReader(a), time.Unix(0, 0))
		if err != nil {
			return
		}
		cur, err := Parse(strings.NewReader(b), time.Unix(1, 0))
		if err != nil {
			return
		}
		tr := Summarize([]Window{Delta(prev, cur)})
		for _, s := range append([]ModelStats{{Stats: tr.Overall}}, tr.Models...) {
			if s.Samples > 0 && !(s.P50 <= s.P99) && !math.IsNaN(s.P50) {
				t.Fatalf("p50 %v > p99 %v", s.P50, s.P99)
			}
		}
		GPUs(cur, "")
	})
}

func gather(t *testing.T, g *gateway, at time.Time) Scrape {
	t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(g.reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	s, err := Parse(rec.Body, at)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func must(v float64, ok bool) float64 {
	if !ok {
		return math.NaN()
	}
	return v
}

func approx(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-9*math.Max(1, math.Abs(want)) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// TestSummarizeLabelsBackendsByTarget: two gateways' backends of the same
// name are each gateway's own view (one up, one down), shown apart.
func TestSummarizeLabelsBackendsByTarget(t *testing.T) {
	g1, g2 := newGateway(), newGateway()
	clk := &clock{t: time.Unix(0, 0), step: time.Second}
	p1, p2 := gather(t, g1, clk.now()), gather(t, g2, clk.now())
	g1.up.WithLabelValues("vllm").Set(1)
	g2.up.WithLabelValues("vllm").Set(0)
	w1, w2 := Delta(p1, gather(t, g1, clk.now())), Delta(p2, gather(t, g2, clk.now()))
	w1.Target, w2.Target = "10.0.0.1/", "10.0.0.2/"
	tr := Summarize([]Window{w1, w2})
	if len(tr.Backends) != 2 || tr.Backends[0].Name != "10.0.0.1/vllm" || !tr.Backends[0].Up ||
		tr.Backends[1].Name != "10.0.0.2/vllm" || tr.Backends[1].Up {
		t.Fatalf("backends %+v: want each gateway's vllm apart, up and down", tr.Backends)
	}
}

// queueSampleBefore and queueSampleAfter are the admission queue's part of
// a gateway's /metrics as client_golang writes it (pkg/serve/admission.go
// queueMetrics), at two scrapes 5 s apart.
const queueSampleBefore = `# HELP llmctl_queue_depth Requests waiting for a backend slot, by model and priority.
# TYPE llmctl_queue_depth gauge
llmctl_queue_depth{model="llama",priority="high"} 0
llmctl_queue_depth{model="llama",priority="normal"} 9
# HELP llmctl_queue_wait_seconds Time requests waited in the admission queue, granted or not.
# TYPE llmctl_queue_wait_seconds histogram
llmctl_queue_wait_seconds_bucket{model="llama",priority="normal",le="0.01"} 10
llmctl_queue_wait_seconds_bucket{model="llama",priority="normal",le="0.1"} 10
llmctl_queue_wait_seconds_bucket{model="llama",priority="normal",le="1"} 10
llmctl_queue_wait_seconds_bucket{model="llama",priority="normal",le="+Inf"} 10
llmctl_queue_wait_seconds_sum{model="llama",priority="normal"} 0.02
llmctl_queue_wait_seconds_count{model="llama",priority="normal"} 10
# HELP llmctl_queue_refused_total Requests refused 429 capacity_exceeded, by model and reason (full, wait).
# TYPE llmctl_queue_refused_total counter
llmctl_queue_refused_total{model="llama",reason="full"} 3
# HELP llmctl_fallbacks_total Requests answered by a fallback model, by the model asked for and the one that answered.
# TYPE llmctl_fallbacks_total counter
llmctl_fallbacks_total{from="llama",to="llama-cpu"} 7
llmctl_fallbacks_total{from="qwen",to="tiny"} 2
`

const queueSampleAfter = `# HELP llmctl_queue_depth Requests waiting for a backend slot, by model and priority.
# TYPE llmctl_queue_depth gauge
llmctl_queue_depth{model="llama",priority="high"} 1
llmctl_queue_depth{model="llama",priority="low"} 2
llmctl_queue_depth{model="llama",priority="normal"} 4
llmctl_queue_depth{model="qwen",priority="normal"} 0
llmctl_queue_depth{model="mistral",priority="low"} 3
# HELP llmctl_queue_wait_seconds Time requests waited in the admission queue, granted or not.
# TYPE llmctl_queue_wait_seconds histogram
llmctl_queue_wait_seconds_bucket{model="llama",priority="normal",le="0.01"} 10
llmctl_queue_wait_seconds_bucket{model="llama",priority="normal",le="0.1"} 10
llmctl_queue_wait_seconds_bucket{model="llama",priority="normal",le="1"} 20
llmctl_queue_wait_seconds_bucket{model="llama",priority="normal",le="+Inf"} 20
llmctl_queue_wait_seconds_sum{model="llama",priority="normal"} 5.02
llmctl_queue_wait_seconds_count{model="llama",priority="normal"} 20
# HELP llmctl_queue_refused_total Requests refused 429 capacity_exceeded, by model and reason (full, wait).
# TYPE llmctl_queue_refused_total counter
llmctl_queue_refused_total{model="llama",reason="full"} 8
llmctl_queue_refused_total{model="llama",reason="wait"} 5
# HELP llmctl_fallbacks_total Requests answered by a fallback model, by the model asked for and the one that answered.
# TYPE llmctl_fallbacks_total counter
llmctl_fallbacks_total{from="llama",to="llama-cpu"} 17
llmctl_fallbacks_total{from="qwen",to="tiny"} 2
`

// queueWindow is the 5 s window between the two queue samples.
func queueWindow(t *testing.T) Window {
	t.Helper()
	prev, err := Parse(strings.NewReader(queueSampleBefore), time.Unix(100, 0))
	if err != nil {
		t.Fatal(err)
	}
	cur, err := Parse(strings.NewReader(queueSampleAfter), time.Unix(105, 0))
	if err != nil {
		t.Fatal(err)
	}
	return Delta(prev, cur)
}

func TestQueueAndFallbacksFromTextSample(t *testing.T) {
	tr := Summarize([]Window{queueWindow(t)})

	// Depth is a gauge: the later scrape's values, summed over priorities.
	approx(t, "overall queued", tr.Overall.Queued, 10)
	byModel := map[string]Stats{}
	for _, m := range tr.Models {
		byModel[m.Model] = m.Stats
	}
	if len(byModel) != 3 {
		t.Fatalf("models = %+v, want llama, mistral, qwen (queue metrics alone name a model)", tr.Models)
	}
	approx(t, "llama queued", byModel["llama"].Queued, 7)
	approx(t, "mistral queued", byModel["mistral"].Queued, 3)
	approx(t, "qwen queued", byModel["qwen"].Queued, 0)
	// Refusals: (8-3) full + 5 wait (a new series) over 5 s.
	approx(t, "llama refused/s", byModel["llama"].QueueRefusedPS, 2)
	approx(t, "overall refused/s", tr.Overall.QueueRefusedPS, 2)
	// Wait: the 10 requests of the window all waited in (0.1, 1].
	approx(t, "llama wait samples", byModel["llama"].QueueWaitSamples, 10)
	approx(t, "llama wait p99", byModel["llama"].QueueWaitP99, 0.1+0.9*0.99)
	if byModel["mistral"].QueueWaitSamples != 0 || byModel["mistral"].QueueWaitP99 != 0 {
		t.Errorf("mistral has no wait samples, got %+v", byModel["mistral"])
	}
	// Fallbacks: qwen→tiny did not move in the window and is left out.
	if len(tr.Fallbacks) != 1 || tr.Fallbacks[0].From != "llama" || tr.Fallbacks[0].To != "llama-cpu" {
		t.Fatalf("fallbacks = %+v, want llama→llama-cpu only", tr.Fallbacks)
	}
	approx(t, "fallbacks/s", tr.Fallbacks[0].PS, 2)
}

func TestQueueSumsTargets(t *testing.T) {
	// Two gateways, each its own queue (per process): depths add up.
	w1, w2 := queueWindow(t), queueWindow(t)
	w2.Target = "h2/"
	tr := Summarize([]Window{w1, w2})
	approx(t, "overall queued", tr.Overall.Queued, 20)
	approx(t, "fallbacks/s", tr.Fallbacks[0].PS, 4)
}
