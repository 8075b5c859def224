package metrics

import (
	"sort"
	"strconv"
)

// Metric names from docs/metrics.md: the contract with the gateway.
const (
	RequestsTotal       = "llmctl_requests_total"
	RequestDuration     = "llmctl_request_duration_seconds"
	TimeToFirstToken    = "llmctl_time_to_first_token_seconds"
	TokensTotal         = "llmctl_tokens_total"
	RequestsInFlight    = "llmctl_requests_in_flight"
	BackendUp           = "llmctl_backend_up"
	BackendInFlight     = "llmctl_backend_in_flight"
	UpstreamErrorsTotal = "llmctl_upstream_errors_total"
	GPUUtilization      = "llmctl_gpu_utilization_ratio"
	GPUMemoryUsed       = "llmctl_gpu_memory_used_bytes"
	GPUMemoryTotal      = "llmctl_gpu_memory_total_bytes"
	GPUTemperature      = "llmctl_gpu_temperature_celsius"
	GPUPower            = "llmctl_gpu_power_watts"
	GPUEnergy           = "llmctl_gpu_energy_joules_total" // counter (pkg/serve/gpumetrics/energy.go)
	// The admission queue and fallbacks (docs/routing.md).
	QueueDepth        = "llmctl_queue_depth"        // gauge {model, priority}
	QueueWait         = "llmctl_queue_wait_seconds" // histogram {model, priority}
	QueueRefusedTotal = "llmctl_queue_refused_total"
	FallbacksTotal    = "llmctl_fallbacks_total"
	// BatchProgress is each unfinished batch's lines (batch.go).
	BatchProgress = "llmctl_batch_progress" // gauge {batch, tenant, status, state}
)

// Stats are the rates and latencies of one model, or of all of them.
// Latencies are seconds; a quantile is 0 when its Samples count is 0.
type Stats struct {
	RPS          float64 `json:"rps"`
	ErrorsPS     float64 `json:"errorsPerSecond"`  // 5xx
	LimitedPS    float64 `json:"limitedPerSecond"` // 429
	TokensInPS   float64 `json:"tokensInPerSecond"`
	TokensOutPS  float64 `json:"tokensOutPerSecond"`
	Samples      float64 `json:"latencySamples"`
	P50          float64 `json:"p50Seconds"`
	P99          float64 `json:"p99Seconds"`
	TTFTSamples  float64 `json:"ttftSamples"`
	TTFTP50      float64 `json:"ttftP50Seconds"`
	TTFTP99      float64 `json:"ttftP99Seconds"`
	ErrorRatio   float64 `json:"errorRatio"`   // 5xx / requests
	LimitedRatio float64 `json:"limitedRatio"` // 429 / requests
	// Queued is the requests waiting in the admission queue now, all
	// priorities; QueueRefusedPS the queue's 429 capacity_exceeded (also
	// counted in LimitedPS); QueueWaitP99 over QueueWaitSamples requests
	// that left the queue in the window, granted or refused.
	Queued           float64 `json:"queued"`
	QueueRefusedPS   float64 `json:"queueRefusedPerSecond"`
	QueueWaitSamples float64 `json:"queueWaitSamples"`
	QueueWaitP99     float64 `json:"queueWaitP99Seconds"`
}

// Fallback is the rate of requests for From answered by To.
type Fallback struct {
	From string  `json:"from"`
	To   string  `json:"to"`
	PS   float64 `json:"perSecond"`
}

// ModelStats is one model's Stats.
type ModelStats struct {
	Model string `json:"model"`
	Stats
}

// Backend is one upstream's health as the gateway sees it.
type Backend struct {
	Name string `json:"name"`
	// Up is llmctl_backend_up; Reported says whether the gauge was there
	// at all (a backend seen only in request labels has unknown health).
	Up       bool    `json:"up"`
	Reported bool    `json:"reported"`
	InFlight float64 `json:"inFlight"`
	RPS      float64 `json:"rps"`
	ErrorsPS float64 `json:"errorsPerSecond"`
}

// Traffic is the summary of one or more targets' windows.
type Traffic struct {
	Overall  Stats        `json:"overall"`
	InFlight float64      `json:"inFlight"`
	Models   []ModelStats `json:"models"`
	Backends []Backend    `json:"backends"`
	// Fallbacks in the window, by from and to model; empty when none.
	Fallbacks []Fallback `json:"fallbacks"`
	// Batches are the unfinished batches and their progress, oldest id
	// first; empty when none (or the gateway serves no Batches API).
	Batches []Batch `json:"batches"`
}

// acc accumulates one model's counts across routes and targets.
type acc struct {
	rps, errs, limited, tokIn, tokOut float64
	queued, refused                   float64
	dur, ttft, wait                   Histogram
}

func (a *acc) stats() Stats {
	s := Stats{RPS: a.rps, ErrorsPS: a.errs, LimitedPS: a.limited, TokensInPS: a.tokIn, TokensOutPS: a.tokOut}
	s.Samples = a.dur.Count
	s.P50, _ = a.dur.Quantile(0.5)
	s.P99, _ = a.dur.Quantile(0.99)
	s.TTFTSamples = a.ttft.Count
	s.TTFTP50, _ = a.ttft.Quantile(0.5)
	s.TTFTP99, _ = a.ttft.Quantile(0.99)
	s.Queued, s.QueueRefusedPS = a.queued, a.refused
	s.QueueWaitSamples = a.wait.Count
	s.QueueWaitP99, _ = a.wait.Quantile(0.99)
	if a.rps > 0 {
		s.ErrorRatio = a.errs / a.rps
		s.LimitedRatio = a.limited / a.rps
	}
	return s
}

// Summarize turns the windows of several targets into one Traffic: rates
// are each target's increase over its own window, summed; quantiles come
// from the summed histogram increases. Windows shorter than a millisecond
// carry no rate and are skipped.
func Summarize(ws []Window) Traffic {
	var (
		t        Traffic
		overall  acc
		models   = map[string]*acc{}
		backends = map[string]*Backend{}
		fallback = map[[2]string]float64{}
		batches  = map[string]*Batch{}
	)
	model := func(name string) *acc {
		a := models[name]
		if a == nil {
			a = &acc{}
			models[name] = a
		}
		return a
	}
	var target string // the window being summed
	backend := func(name string) *Backend {
		name = target + name
		b := backends[name]
		if b == nil {
			b = &Backend{Name: name}
			backends[name] = b
		}
		return b
	}
	for _, w := range ws {
		if w.Seconds < 1e-3 {
			continue
		}
		target = w.Target
		for _, s := range w.Series {
			rate := s.Value / w.Seconds
			switch s.Name {
			case RequestsTotal:
				code, _ := strconv.Atoi(s.Labels["code"])
				for _, a := range []*acc{&overall, model(s.Labels["model"])} {
					a.rps += rate
					switch {
					case code == 429:
						a.limited += rate
					case code >= 500:
						a.errs += rate
					}
				}
				if b := s.Labels["backend"]; b != "" {
					backend(b).RPS += rate
				}
			case TokensTotal:
				for _, a := range []*acc{&overall, model(s.Labels["model"])} {
					if s.Labels["direction"] == "in" {
						a.tokIn += rate
					} else if s.Labels["direction"] == "out" {
						a.tokOut += rate
					}
				}
			case RequestDuration:
				overall.dur.Add(s.Hist)
				model(s.Labels["model"]).dur.Add(s.Hist)
			case TimeToFirstToken:
				overall.ttft.Add(s.Hist)
				model(s.Labels["model"]).ttft.Add(s.Hist)
			case RequestsInFlight:
				t.InFlight += s.Value
			case BackendUp:
				b := backend(s.Labels["backend"])
				b.Up, b.Reported = b.Up || s.Value > 0, true
			case BackendInFlight:
				backend(s.Labels["backend"]).InFlight += s.Value
			case UpstreamErrorsTotal:
				backend(s.Labels["backend"]).ErrorsPS += rate
			case QueueDepth:
				for _, a := range []*acc{&overall, model(s.Labels["model"])} {
					a.queued += s.Value
				}
			case QueueWait:
				overall.wait.Add(s.Hist)
				model(s.Labels["model"]).wait.Add(s.Hist)
			case QueueRefusedTotal:
				for _, a := range []*acc{&overall, model(s.Labels["model"])} {
					a.refused += rate
				}
			case FallbacksTotal:
				fallback[[2]string{s.Labels["from"], s.Labels["to"]}] += rate
			case BatchProgress:
				batchLines(batches, s)
			}
		}
	}
	t.Overall = overall.stats()
	for name, a := range models {
		if name == "" {
			continue // requests that never named a model (e.g. /v1/models)
		}
		t.Models = append(t.Models, ModelStats{Model: name, Stats: a.stats()})
	}
	sort.Slice(t.Models, func(i, j int) bool { return t.Models[i].Model < t.Models[j].Model })
	for _, b := range backends {
		t.Backends = append(t.Backends, *b)
	}
	sort.Slice(t.Backends, func(i, j int) bool { return t.Backends[i].Name < t.Backends[j].Name })
	for k, ps := range fallback {
		if ps > 0 { // a series that did not move in the window says nothing
			t.Fallbacks = append(t.Fallbacks, Fallback{From: k[0], To: k[1], PS: ps})
		}
	}
	t.Batches = sortedBatches(batches)
	sort.Slice(t.Fallbacks, func(i, j int) bool {
		a, b := t.Fallbacks[i], t.Fallbacks[j]
		if a.From != b.From {
			return a.From < b.From
		}
		return a.To < b.To
	})
	return t
}

// GPU is one device's current readings.
type GPU struct {
	Name        string  `json:"name"`
	Utilization float64 `json:"utilization"` // 0..1
	MemUsed     float64 `json:"memoryUsedBytes"`
	MemTotal    float64 `json:"memoryTotalBytes"`
	TempC       float64 `json:"temperatureCelsius"`
	PowerW      float64 `json:"powerWatts"`
}

// GPUs reads the gateway's llmctl_gpu_* gauges from one scrape, one GPU per
// `gpu` label value, prefixed with prefix (to tell targets apart).
func GPUs(s Scrape, prefix string) []GPU {
	byName := map[string]*GPU{}
	var order []string
	for _, name := range []string{GPUUtilization, GPUMemoryUsed, GPUMemoryTotal, GPUTemperature, GPUPower} {
		f := s.Families[name]
		for _, m := range f.GetMetric() {
			id := prefix + labels(m)["gpu"]
			g := byName[id]
			if g == nil {
				g = &GPU{Name: id}
				byName[id] = g
				order = append(order, id)
			}
			v := m.GetGauge().GetValue()
			switch name {
			case GPUUtilization:
				g.Utilization = v
			case GPUMemoryUsed:
				g.MemUsed = v
			case GPUMemoryTotal:
				g.MemTotal = v
			case GPUTemperature:
				g.TempC = v
			case GPUPower:
				g.PowerW = v
			}
		}
	}
	sort.Strings(order)
	out := make([]GPU, 0, len(order))
	for _, id := range order {
		out = append(out, *byName[id])
	}
	return out
}
