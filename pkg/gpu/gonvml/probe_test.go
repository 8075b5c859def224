//go:build cgo

package gonvml_test

import (
	"context"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"

	"github.com/llmctl/llmctl/pkg/gpu"
	"github.com/llmctl/llmctl/pkg/gpu/gonvml"
)

// TestDGXH100 reads go-nvml's DGX H100 mock: eight H100s. The server leaves
// ECC, remapped rows, temperature, utilisation and power unset, so the mock
// would panic on them: the probe must report n/a instead of crashing.
func TestDGXH100(t *testing.T) {
	s := gonvml.New(dgxh100.New()).Probe(context.Background())
	if s.Init != gpu.InitOK || s.DriverVersion != "550.54.15" || s.CUDADriverVersion != 12040 {
		t.Fatalf("snapshot header %+v", s)
	}
	if len(s.Devices) != 8 {
		t.Fatalf("%d devices, want 8", len(s.Devices))
	}
	d := s.Devices[3]
	if d.Index != 3 || !strings.Contains(d.Name, "H100") || !strings.HasPrefix(d.UUID, "GPU-") {
		t.Errorf("device 3 = %+v", d)
	}
	if !d.Memory.OK || d.Memory.Value.Total != gpus.H100_SXM5_80GB.MemoryMB*1024*1024 {
		t.Errorf("memory %v", d.Memory)
	}
	if d.Compute.Value != "9.0" || !d.MIG.OK || d.MIG.Value {
		t.Errorf("compute %v MIG %v", d.Compute, d.MIG)
	}
	for name, r := range map[string]interface{ String() string }{"ecc": d.ECC, "temp": d.TemperatureC, "power": d.PowerW, "remap": d.Remapped} {
		if !strings.Contains(r.String(), "not implemented by this NVML") {
			t.Errorf("%s = %s, want n/a for an unset mock func", name, r)
		}
	}
}

// TestMIGEnabled turns MIG on through the mock's own SetMigMode.
func TestMIGEnabled(t *testing.T) {
	srv := dgxa100.New()
	if _, r := srv.Devices[0].SetMigMode(nvml.DEVICE_MIG_ENABLE); r != nvml.SUCCESS {
		t.Fatal(r)
	}
	s := gonvml.New(srv).Probe(context.Background())
	if !s.Devices[0].MIG.Value || s.Devices[1].MIG.Value || !strings.Contains(s.Devices[0].Name, "A100") {
		t.Errorf("MIG: %v %v", s.Devices[0].MIG, s.Devices[1].MIG)
	}
}

func TestInitFailures(t *testing.T) {
	for r, want := range map[nvml.Return]gpu.InitStatus{
		nvml.ERROR_LIBRARY_NOT_FOUND:       gpu.InitLibraryNotFound,
		nvml.ERROR_DRIVER_NOT_LOADED:       gpu.InitDriverNotLoaded,
		nvml.ERROR_LIB_RM_VERSION_MISMATCH: gpu.InitRMMismatch,
		nvml.ERROR_NO_PERMISSION:           gpu.InitNoPermission,
		nvml.ERROR_UNKNOWN:                 gpu.InitError,
	} {
		// Only Init is set: touching anything else after a failed init panics.
		s := gonvml.New(&mock.Interface{InitFunc: func() nvml.Return { return r }}).Probe(context.Background())
		if s.Init != want || s.InitDetail == "" || len(s.Devices) != 0 {
			t.Errorf("%d: %+v, want %s", r, s, want)
		}
	}
	// A mock without even Init set: the panic becomes an error verdict.
	if s := gonvml.New(&mock.Interface{}).Probe(context.Background()); s.Init != gpu.InitError || !strings.Contains(s.InitDetail, "not implemented") {
		t.Errorf("empty mock: %+v", s)
	}
}

// TestShutdownAfterProbe: every successful Init is paired with a Shutdown.
func TestShutdownAfterProbe(t *testing.T) {
	srv := dgxh100.New()
	inits, shutdowns := 0, 0
	srv.InitFunc = func() nvml.Return { inits++; return nvml.SUCCESS }
	srv.ShutdownFunc = func() nvml.Return { shutdowns++; return nvml.SUCCESS }
	p := gonvml.New(srv)
	p.Probe(context.Background())
	p.Probe(context.Background())
	if inits != 2 || shutdowns != 2 {
		t.Errorf("inits %d shutdowns %d", inits, shutdowns)
	}
}
