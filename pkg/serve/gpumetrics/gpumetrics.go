// Package gpumetrics exports the GPUs NVML sees as the llmctl_gpu_* gauges
// of docs/metrics.md, so `llmctl top` and Prometheus read GPU load from the
// gateway's /metrics. `serve` registers it only in a build with NVML.
package gpumetrics

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/llmctl/llmctl/pkg/preflight"
	"github.com/llmctl/llmctl/pkg/top/metrics"
)

// Collector probes NVML on scrape. Readings a board does not support (WSL2,
// consumer cards) are left out rather than exported as zero.
type Collector struct {
	probe   preflight.GPUProbe
	timeout time.Duration
	maxAge  time.Duration
	now     func() time.Time

	util, used, total, temp, power *prometheus.Desc
	joules                         *prometheus.Desc // energy.go

	mu     sync.Mutex
	last   preflight.GPUSnapshot
	at     time.Time
	energy map[int]*energyState // by device index: energy.go
}

// New returns a collector over probe. Scrapes closer together than a second
// share one probe: NVML initialisation is not free, and GPU readings do not
// change faster than that.
func New(probe preflight.GPUProbe) *Collector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, []string{"gpu"}, nil)
	}
	return &Collector{probe: probe, timeout: 2 * time.Second, maxAge: time.Second, now: time.Now,
		util:  d(metrics.GPUUtilization, "GPU utilization, 0..1."),
		used:  d(metrics.GPUMemoryUsed, "GPU framebuffer memory in use, bytes."),
		total: d(metrics.GPUMemoryTotal, "GPU framebuffer memory, bytes."),
		temp:  d(metrics.GPUTemperature, "GPU temperature, degrees Celsius."),
		power: d(metrics.GPUPower, "GPU power draw, watts."),
		joules: prometheus.NewDesc(EnergyMetric, "GPU energy used, joules (source nvml: the board's counter since driver load; power: integrated from power readings since this process started).",
			[]string{"gpu", "source"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.util, c.used, c.total, c.temp, c.power, c.joules} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.snapshot()
	if s.Init != preflight.InitOK {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range s.Devices {
		gpu := fmt.Sprintf("%d %s", d.Index, d.Name)
		gauge := func(desc *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, gpu)
		}
		if d.UtilizationPct.OK {
			gauge(c.util, float64(d.UtilizationPct.Value)/100)
		}
		if d.Memory.OK {
			gauge(c.used, float64(d.Memory.Value.Used))
			gauge(c.total, float64(d.Memory.Value.Total))
		}
		if d.TemperatureC.OK {
			gauge(c.temp, float64(d.TemperatureC.Value))
		}
		if d.PowerW.OK {
			gauge(c.power, d.PowerW.Value)
		}
		c.collectEnergy(ch, d, gpu)
	}
}

func (c *Collector) snapshot() preflight.GPUSnapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := c.now(); c.at.IsZero() || now.Sub(c.at) >= c.maxAge {
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		c.last, c.at = c.probe.Probe(ctx), now
		cancel()
		c.integrate(c.last, now)
	}
	return c.last
}
