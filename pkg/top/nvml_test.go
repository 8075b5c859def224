//go:build cgo

package top

import (
	"context"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"

	"github.com/llmctl/llmctl/pkg/gpu/gonvml"
)

// TestNVMLSource reads go-nvml's DGX H100 mock (no GPU exists here) through
// the gonvml probe: eight devices, memory read; readings the mock leaves
// unset stay zero instead of failing the pane.
func TestNVMLSource(t *testing.T) {
	gs, err := NVMLSource{Probe: gonvml.New(dgxh100.New())}.GPUs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) != 8 || !strings.HasPrefix(gs[3].Name, "3 ") || !strings.Contains(gs[3].Name, "H100") {
		t.Fatalf("gpus = %+v", gs)
	}
	if gs[0].MemTotal != float64(gpus.H100_SXM5_80GB.MemoryMB*1024*1024) || gs[0].TempC != 0 || gs[0].PowerW != 0 {
		t.Errorf("gpu 0 = %+v", gs[0])
	}
	// No driver: an error, so the Monitor falls back to the gateway's gauges.
	noDriver := gonvml.New(&mock.Interface{InitFunc: func() nvml.Return { return nvml.ERROR_DRIVER_NOT_LOADED }})
	if _, err := (NVMLSource{Probe: noDriver}).GPUs(context.Background()); err == nil || !strings.Contains(err.Error(), "driver-not-loaded") {
		t.Errorf("no driver: err = %v", err)
	}
}
