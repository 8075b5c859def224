package margin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/llmctl/llmctl/pkg/billing/reconcile"
	"github.com/llmctl/llmctl/pkg/top/metrics"
)

// EnergySample is one read of a gateway's energy counter, summed over GPUs.
type EnergySample struct {
	Target string    `json:"target"`
	Time   time.Time `json:"time"`
	Joules float64   `json:"joules"`
}

// ErrNoEnergy: the target exports no energy counter (a build without NVML,
// or no GPU).
var ErrNoEnergy = errors.New("no " + metrics.GPUEnergy + " at the target (llmctl built without NVML, or no GPU)")

// ParseEnergy sums the energy counter of every GPU in Prometheus text.
func ParseEnergy(r io.Reader) (float64, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return 0, fmt.Errorf("reading Prometheus metrics: %w", err)
	}
	f, ok := fams[metrics.GPUEnergy]
	if !ok || len(f.Metric) == 0 {
		return 0, ErrNoEnergy
	}
	var j float64
	for _, m := range f.Metric {
		if v := m.Counter.GetValue(); m.Counter == nil || v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, fmt.Errorf("%s is not a counter", metrics.GPUEnergy)
		}
		j += m.Counter.GetValue()
	}
	return j, nil
}

// ScrapeEnergy reads url (a gateway's admin /metrics) at now.
func ScrapeEnergy(ctx context.Context, c *http.Client, url string, now time.Time) (EnergySample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return EnergySample{}, fmt.Errorf("energy target %s: %w", url, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return EnergySample{}, fmt.Errorf("energy target %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return EnergySample{}, fmt.Errorf("energy target %s: HTTP %d", url, resp.StatusCode)
	}
	j, err := ParseEnergy(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return EnergySample{}, fmt.Errorf("energy target %s: %w", url, err)
	}
	return EnergySample{Target: url, Time: now, Joules: j}, nil
}

// EnergyOver is the energy between the newest sample of cur's target taken
// at or before since and cur. ok is false without such a sample; the
// window then starts at the baseline's time (from).
func EnergyOver(history []EnergySample, cur EnergySample, since time.Time) (e Energy, from time.Time, ok bool) {
	var base *EnergySample
	for i := range history {
		h := &history[i]
		if h.Target == cur.Target && !h.Time.After(since) && (base == nil || h.Time.After(base.Time)) {
			base = h
		}
	}
	if base == nil {
		return Energy{Note: "no earlier energy sample at or before the window's start (recorded one now: rerun later)"}, since, false
	}
	e = Energy{Measured: true, Joules: cur.Joules - base.Joules}
	if cur.Joules < base.Joules {
		// The counter restarted (driver reload, or the gateway's power
		// integration restarted with it): what it counted since is a floor.
		e = Energy{Measured: true, Joules: cur.Joules, LowerBound: true, Note: "energy counter restarted in the window: energy is a lower bound"}
	}
	return e, base.Time, true
}

// LoadEnergyState reads earlier samples; a missing file is none.
func LoadEnergyState(path string) ([]EnergySample, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("energy state: %w", err)
	}
	var s []EnergySample
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("energy state %s: not a state file written by llmctl (%v); move it away to start over", path, err)
	}
	return s, nil
}

// SaveEnergyState keeps the newest 500 samples.
func SaveEnergyState(path string, history []EnergySample, cur EnergySample) error {
	all := append(slices.Clone(history), cur)
	slices.SortFunc(all, func(a, b EnergySample) int { return b.Time.Compare(a.Time) })
	all = all[:min(len(all), 500)]
	b, err := json.Marshal(all)
	if err != nil {
		return err
	}
	return reconcile.WriteAtomic(path, b)
}

// Measure is the energy the GPUs behind target (a gateway's admin /metrics)
// used between since and until, from the newest sample in the state file at
// or before since; from is where that window starts (since when there is
// no such sample, and the energy is then unmeasured and says why). The read
// is recorded in the state file when the target's newest recorded sample is
// older than minGap (0: always), so a caller that reads often (top) keeps
// the file's 500 samples spread over days instead of minutes. A target
// without an energy counter is an unmeasured Energy, not an error.
func Measure(ctx context.Context, c *http.Client, target, state string, since, until time.Time, minGap time.Duration) (e Energy, from time.Time, err error) {
	cur, err := ScrapeEnergy(ctx, c, target, until)
	if errors.Is(err, ErrNoEnergy) {
		return Energy{Note: err.Error()}, since, nil
	}
	if err != nil {
		return Energy{}, since, err
	}
	history, err := LoadEnergyState(state)
	if err != nil {
		return Energy{}, since, err
	}
	e, from, _ = EnergyOver(history, cur, since)
	var newest time.Time
	for _, h := range history {
		if h.Target == cur.Target && h.Time.After(newest) {
			newest = h.Time
		}
	}
	if newest.IsZero() || cur.Time.Sub(newest) >= minGap {
		if err := SaveEnergyState(state, history, cur); err != nil {
			return Energy{}, since, err
		}
	}
	return e, from, nil
}
