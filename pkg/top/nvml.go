package top

import (
	"context"
	"fmt"

	"github.com/llmctl/llmctl/pkg/gpu"
	"github.com/llmctl/llmctl/pkg/top/metrics"
)

// NVMLSource adapts the NVML probe (pkg/gpu/nvmlprobe) to
// GPUSource. A reading NVML does not support on this board (WSL2, consumer
// cards) is left at zero rather than failing the device.
type NVMLSource struct {
	Probe gpu.Probe
}

var _ GPUSource = NVMLSource{}

// GPUs probes once and converts every device.
func (n NVMLSource) GPUs(ctx context.Context) ([]metrics.GPU, error) {
	s := n.Probe.Probe(ctx)
	if s.Init != gpu.InitOK {
		return nil, fmt.Errorf("nvml: %s: %s", s.Init, s.InitDetail)
	}
	if len(s.Devices) == 0 && s.DevicesErr != "" {
		return nil, fmt.Errorf("nvml: %s", s.DevicesErr)
	}
	gs := make([]metrics.GPU, 0, len(s.Devices))
	for _, d := range s.Devices {
		g := metrics.GPU{Name: fmt.Sprintf("%d %s", d.Index, d.Name)}
		if d.UtilizationPct.OK {
			g.Utilization = float64(d.UtilizationPct.Value) / 100
		}
		if d.Memory.OK {
			g.MemUsed, g.MemTotal = float64(d.Memory.Value.Used), float64(d.Memory.Value.Total)
		}
		if d.TemperatureC.OK {
			g.TempC = float64(d.TemperatureC.Value)
		}
		if d.PowerW.OK {
			g.PowerW = d.PowerW.Value
		}
		gs = append(gs, g)
	}
	return gs, nil
}
