package gpumetrics

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/llmctl/llmctl/pkg/preflight"
)

type probe struct {
	s     preflight.GPUSnapshot
	calls int
}

func (p *probe) Probe(context.Context) preflight.GPUSnapshot { p.calls++; return p.s }

func TestCollector(t *testing.T) {
	p := &probe{s: preflight.GPUSnapshot{Init: preflight.InitOK, Devices: []preflight.GPUDevice{
		{Index: 0, Name: "NVIDIA GeForce RTX 4090",
			Memory:         preflight.Val(preflight.GPUMemory{Total: 24 << 30, Used: 6 << 30}),
			UtilizationPct: preflight.Val[uint32](87), TemperatureC: preflight.Val[uint32](64), PowerW: preflight.Val(312.5)},
		// WSL2: power and temperature not supported: left out, not zero.
		{Index: 1, Name: "NVIDIA RTX A2000", Memory: preflight.Val(preflight.GPUMemory{Total: 12 << 30, Used: 0}),
			UtilizationPct: preflight.Val[uint32](0), TemperatureC: preflight.NA[uint32]("Not Supported"), PowerW: preflight.NA[float64]("Not Supported")},
	}}}
	c := New(p)
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	want := `
# HELP llmctl_gpu_memory_total_bytes GPU framebuffer memory, bytes.
# TYPE llmctl_gpu_memory_total_bytes gauge
llmctl_gpu_memory_total_bytes{gpu="0 NVIDIA GeForce RTX 4090"} 2.5769803776e+10
llmctl_gpu_memory_total_bytes{gpu="1 NVIDIA RTX A2000"} 1.2884901888e+10
# HELP llmctl_gpu_memory_used_bytes GPU framebuffer memory in use, bytes.
# TYPE llmctl_gpu_memory_used_bytes gauge
llmctl_gpu_memory_used_bytes{gpu="0 NVIDIA GeForce RTX 4090"} 6.442450944e+09
llmctl_gpu_memory_used_bytes{gpu="1 NVIDIA RTX A2000"} 0
# HELP llmctl_gpu_power_watts GPU power draw, watts.
# TYPE llmctl_gpu_power_watts gauge
llmctl_gpu_power_watts{gpu="0 NVIDIA GeForce RTX 4090"} 312.5
# HELP llmctl_gpu_temperature_celsius GPU temperature, degrees Celsius.
# TYPE llmctl_gpu_temperature_celsius gauge
llmctl_gpu_temperature_celsius{gpu="0 NVIDIA GeForce RTX 4090"} 64
# HELP llmctl_gpu_utilization_ratio GPU utilization, 0..1.
# TYPE llmctl_gpu_utilization_ratio gauge
llmctl_gpu_utilization_ratio{gpu="0 NVIDIA GeForce RTX 4090"} 0.87
llmctl_gpu_utilization_ratio{gpu="1 NVIDIA RTX A2000"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	// A second scrape within the second reuses the probe.
	_ = testutil.CollectAndCount(c)
	if p.calls != 1 {
		t.Fatalf("probed %d times for two scrapes in one second", p.calls)
	}
	now = now.Add(time.Second)
	_ = testutil.CollectAndCount(c)
	if p.calls != 2 {
		t.Fatalf("probed %d times; a second later the probe runs again", p.calls)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if probs, err := promlint.NewWithMetricFamilies(mfs).Lint(); err != nil || len(probs) > 0 {
		t.Fatalf("promlint: %v %v", probs, err)
	}
}

// TestNoNVMLExportsNothing: without a working NVML there are no GPU series
// (not zeros that look like an idle GPU).
func TestNoNVMLExportsNothing(t *testing.T) {
	c := New(&probe{s: preflight.GPUSnapshot{Init: preflight.InitLibraryNotFound}})
	if n := testutil.CollectAndCount(c); n != 0 {
		t.Fatalf("%d series without NVML", n)
	}
}

// TestEnergy: a board with NVML's energy counter exports it in joules; one
// without integrates its power readings between probes (trapezoid), from
// the second probe on.
func TestEnergy(t *testing.T) {
	p := &probe{s: preflight.GPUSnapshot{Init: preflight.InitOK, Devices: []preflight.GPUDevice{
		{Index: 0, Name: "H100", PowerW: preflight.Val(700.0), EnergyMJ: preflight.Val[uint64](5_000_000)},
		{Index: 1, Name: "RTX", PowerW: preflight.Val(100.0), EnergyMJ: preflight.NA[uint64]("not supported")},
	}}}
	c := New(p)
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	want := func(text string) {
		t.Helper()
		if err := testutil.CollectAndCompare(c, strings.NewReader(text), EnergyMetric); err != nil {
			t.Fatal(err)
		}
	}
	head := "# HELP " + EnergyMetric + " GPU energy used, joules (source nvml: the board's counter since driver load; power: integrated from power readings since this process started).\n# TYPE " + EnergyMetric + " counter\n"
	want(head + EnergyMetric + `{gpu="0 H100",source="nvml"} 5000` + "\n")
	now = now.Add(10 * time.Second)
	p.s.Devices[1].PowerW = preflight.Val(300.0)
	want(head + EnergyMetric + `{gpu="0 H100",source="nvml"} 5000` + "\n" + EnergyMetric + `{gpu="1 RTX",source="power"} 2000` + "\n")
}
