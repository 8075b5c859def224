package gpumetrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/llmctl/llmctl/pkg/preflight"
	"github.com/llmctl/llmctl/pkg/top/metrics"
)

// EnergyMetric is the GPUs' energy counter, joules: NVML's total energy
// since the driver loaded where the board reports it, else the integral of
// the power readings this collector has taken (trapezoid rule between
// probes), which starts at zero with the process. `llmctl ledger margin`
// prices its increase.
const EnergyMetric = metrics.GPUEnergy

// energyState integrates power for a board without an energy counter.
type energyState struct {
	joules float64
	watts  float64
	at     time.Time
	// spans is how many intervals were integrated: the counter shows
	// from the first, since one reading alone measures no energy.
	spans int
}

// integrate adds the energy of the interval since the last probe of each
// device that reads power but no energy. Called with c.mu held.
func (c *Collector) integrate(s preflight.GPUSnapshot, now time.Time) {
	if c.energy == nil {
		c.energy = map[int]*energyState{}
	}
	for _, d := range s.Devices {
		if d.EnergyMJ.OK || !d.PowerW.OK {
			continue
		}
		e, ok := c.energy[d.Index]
		if !ok {
			c.energy[d.Index] = &energyState{watts: d.PowerW.Value, at: now}
			continue
		}
		if dt := now.Sub(e.at).Seconds(); dt > 0 {
			e.joules += (e.watts + d.PowerW.Value) / 2 * dt
			e.spans++
		}
		e.watts, e.at = d.PowerW.Value, now
	}
}

// collectEnergy sends the energy counter of one device, if it has one.
// Called with c.mu held.
func (c *Collector) collectEnergy(ch chan<- prometheus.Metric, d preflight.GPUDevice, gpu string) {
	switch {
	case d.EnergyMJ.OK:
		ch <- prometheus.MustNewConstMetric(c.joules, prometheus.CounterValue, float64(d.EnergyMJ.Value)/1000, gpu, "nvml")
	case c.energy[d.Index] != nil && c.energy[d.Index].spans > 0:
		ch <- prometheus.MustNewConstMetric(c.joules, prometheus.CounterValue, c.energy[d.Index].joules, gpu, "power")
	}
}
