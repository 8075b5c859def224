package top

import (
	"context"
	"errors"
	"net/url"
	"time"

	"github.com/llmctl/llmctl/pkg/top/metrics"
)

var (
	errNoLocalGPU = errors.New("no local GPU reader")
	errNoLedger   = errors.New("no ledger database")
)

// HistoryLen is how many points of history the sparklines keep.
const HistoryLen = 240

// TargetStatus is one target's health as of the last scrape round.
type TargetStatus struct {
	URL    string    `json:"url"`
	Up     bool      `json:"up"`
	Error  string    `json:"error,omitempty"`
	LastOK time.Time `json:"lastOK,omitempty"`
}

type target struct {
	TargetStatus
	last *metrics.Scrape // baseline for the next window; nil after a failure
	win  *metrics.Window // the latest window; nil until two good scrapes
}

// Monitor is top's state between readings. It is a plain value updated
// from the TUI's Update (no IO, no goroutines).
type Monitor struct {
	targets []*target
	// Dynamic: the targets are whatever the last round scraped (discovered
	// pods), not a fixed list.
	Dynamic bool

	Traffic   metrics.Traffic
	Warm      bool               // at least one target has a window
	History   History            // overall series
	PerModel  map[string]*Series // requests per second per model
	GPUs      []metrics.GPU
	GPUFrom   string // "nvml", "gateway" or "" (none)
	Tenants   []TenantRow
	LedgerOK  bool
	LedgerErr string
	HasLedger bool
}

// History is the overall series behind the traffic sparklines.
type History struct {
	RPS, P99, TokensOut, Errors Series
}

// NewMonitor starts a Monitor for the given targets.
func NewMonitor(targets []string, hasLedger bool) *Monitor {
	m := &Monitor{PerModel: map[string]*Series{}, HasLedger: hasLedger}
	for _, u := range targets {
		m.targets = append(m.targets, &target{TargetStatus: TargetStatus{URL: u}})
	}
	return m
}

// Targets is each target's status in --target order.
func (m *Monitor) Targets() []TargetStatus {
	out := make([]TargetStatus, len(m.targets))
	for i, t := range m.targets {
		out[i] = t.TargetStatus
	}
	return out
}

// ApplyScrapes folds a scrape round in. A failed target is marked down and
// loses its baseline, so rates after it recovers cover only time it was
// seen, never the gap.
func (m *Monitor) ApplyScrapes(rs []ScrapeResult) {
	byURL := map[string]ScrapeResult{}
	for _, r := range rs {
		byURL[r.URL] = r
	}
	if m.Dynamic {
		m.syncTargets(rs)
	}
	var wins []metrics.Window
	var gateGPUs []metrics.GPU
	for _, t := range m.targets {
		r, ok := byURL[t.URL]
		if !ok {
			continue
		}
		if r.Err != nil {
			t.Up, t.Error, t.last, t.win = false, r.Err.Error(), nil, nil
			continue
		}
		t.Up, t.Error, t.LastOK = true, "", r.Scrape.At
		prefix := ""
		if len(m.targets) > 1 {
			prefix = hostOf(t.URL) + "/"
		}
		if t.last != nil {
			w := metrics.Delta(*t.last, r.Scrape)
			w.Target = prefix
			t.win = &w
		}
		sc := r.Scrape
		t.last = &sc
		if t.win != nil {
			wins = append(wins, *t.win)
		}
		gateGPUs = append(gateGPUs, metrics.GPUs(sc, prefix)...)
	}
	m.Traffic = metrics.Summarize(wins)
	m.Warm = len(wins) > 0
	if m.Warm {
		o := m.Traffic.Overall
		m.History.RPS.Push(o.RPS)
		m.History.P99.Push(o.P99)
		m.History.TokensOut.Push(o.TokensOutPS)
		m.History.Errors.Push(o.ErrorsPS + o.LimitedPS)
		seen := map[string]bool{}
		for _, ms := range m.Traffic.Models {
			s := m.PerModel[ms.Model]
			if s == nil {
				s = &Series{}
				m.PerModel[ms.Model] = s
			}
			s.Push(ms.RPS)
			seen[ms.Model] = true
		}
		for name, s := range m.PerModel {
			if !seen[name] {
				s.Push(0)
			}
		}
	}
	if m.GPUFrom != "nvml" {
		m.GPUs, m.GPUFrom = gateGPUs, ""
		if len(gateGPUs) > 0 {
			m.GPUFrom = "gateway"
		}
	}
}

// syncTargets makes the target list the round's, keeping the state (the
// baseline) of targets seen before.
func (m *Monitor) syncTargets(rs []ScrapeResult) {
	old := map[string]*target{}
	for _, t := range m.targets {
		old[t.URL] = t
	}
	m.targets = m.targets[:0]
	for _, r := range rs {
		t := old[r.URL]
		if t == nil {
			t = &target{TargetStatus: TargetStatus{URL: r.URL}}
		}
		m.targets = append(m.targets, t)
	}
}

// ApplyGPUs folds in a local GPU reading; on error the gateway's gauges
// (folded in by ApplyScrapes) take over.
func (m *Monitor) ApplyGPUs(gs []metrics.GPU, err error) {
	if err != nil || len(gs) == 0 {
		if m.GPUFrom == "nvml" {
			m.GPUs, m.GPUFrom = nil, ""
		}
		return
	}
	m.GPUs, m.GPUFrom = gs, "nvml"
}

// ApplyTenants folds in a ledger reading. On error the last rows stay, with
// the error beside them.
func (m *Monitor) ApplyTenants(rows []TenantRow, err error) {
	if err != nil {
		m.LedgerOK, m.LedgerErr = false, err.Error()
		return
	}
	m.Tenants, m.LedgerOK, m.LedgerErr = rows, true, ""
}

// GPUNote says why the GPU pane is empty.
func (m *Monitor) GPUNote() string {
	if len(m.GPUs) > 0 {
		return ""
	}
	return "no GPU data: NVML is not available here and no target exports llmctl_gpu_* gauges"
}

// Snapshot is what `top --once` prints.
type Snapshot struct {
	Time      time.Time        `json:"time"`
	Targets   []TargetStatus   `json:"targets"`
	Traffic   *metrics.Traffic `json:"traffic,omitempty"`
	GPUSource string           `json:"gpuSource,omitempty"`
	GPUs      []metrics.GPU    `json:"gpus"`
	GPUNote   string           `json:"gpuNote,omitempty"`
	Tenants   []TenantRow      `json:"tenants,omitempty"`
	LedgerErr string           `json:"ledgerError,omitempty"`
}

// Snapshot returns the current state; Traffic is nil until some target has
// been scraped twice.
func (m *Monitor) Snapshot(now time.Time) Snapshot {
	s := Snapshot{Time: now, Targets: m.Targets(), GPUSource: m.GPUFrom, GPUs: m.GPUs, GPUNote: m.GPUNote(), LedgerErr: m.LedgerErr}
	if s.GPUs == nil {
		s.GPUs = []metrics.GPU{}
	}
	if m.Warm {
		tr := m.Traffic
		s.Traffic = &tr
	}
	if m.HasLedger {
		s.Tenants = m.Tenants
		if s.Tenants == nil {
			s.Tenants = []TenantRow{}
		}
	}
	return s
}

// Once takes one snapshot: two scrape rounds `window` apart (rates need
// two), the GPUs and the ledger.
func Once(ctx context.Context, src *Sources, window time.Duration) (Snapshot, error) {
	m := NewMonitor(src.Targets, src.Ledger != nil)
	m.Dynamic = src.Discover != nil
	if len(src.Targets) > 0 || m.Dynamic {
		m.ApplyScrapes(src.ScrapeAll(ctx))
		select {
		case <-time.After(window):
		case <-ctx.Done():
			return Snapshot{}, ctx.Err()
		}
		m.ApplyScrapes(src.ScrapeAll(ctx))
	}
	m.ApplyGPUs(src.ReadGPUs(ctx))
	if src.Ledger != nil {
		m.ApplyTenants(src.ReadTenants(ctx, time.Now()))
	}
	return m.Snapshot(time.Now()), nil
}

func hostOf(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		return u.Host
	}
	return raw
}
