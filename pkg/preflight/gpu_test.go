package preflight

import (
	"context"
	"strings"
	"testing"
)

func runGPU(t *testing.T, snap GPUSnapshot, only ...string) map[string]Result {
	t.Helper()
	checks, err := Select(All(), only, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]Result{}
	for _, r := range Run(context.Background(), &Env{Root: t.TempDir(), GPU: StaticProbe(snap)}, checks, RunOptions{}).Results {
		out[r.ID] = r
	}
	return out
}

func TestGPUHealthFindings(t *testing.T) {
	dev := GPUDevice{Index: 0, Name: "NVIDIA A100-SXM4-80GB", UUID: "GPU-a",
		Memory: Val(GPUMemory{Total: 80 * gib, Free: 79 * gib}), Compute: Val("8.0"), MIG: Val(false), ECC: Val(true),
		ECCUncorrected: Val[uint64](3), Remapped: Val(RemappedRows{Uncorrected: 2, Pending: true}), TemperatureC: Val[uint32](91)}
	r := runGPU(t, GPUSnapshot{Init: InitOK, DriverVersion: "550.54.15", CUDADriverVersion: 12040, Devices: []GPUDevice{dev}}, "gpu.health")["gpu.health"]
	if r.Verdict != Warn {
		t.Errorf("verdict %s: %s", r.Verdict, r.Message)
	}
	for _, want := range []string{"row remap pending", "3 uncorrected ECC errors", "91 °C"} {
		if !strings.Contains(r.Message, want) {
			t.Errorf("message lacks %q: %s", want, r.Message)
		}
	}
	dev.Remapped = Val(RemappedRows{Uncorrected: 512, Failed: true})
	r = runGPU(t, GPUSnapshot{Init: InitOK, DriverVersion: "550.54.15", CUDADriverVersion: 12040, Devices: []GPUDevice{dev}}, "gpu.health")["gpu.health"]
	if r.Verdict != Fail || !strings.Contains(r.Remedy, "RMA") {
		t.Errorf("failed remap: %s %s / %s", r.Verdict, r.Message, r.Remedy)
	}
}

func TestGPUDriverAndDevices(t *testing.T) {
	old := GPUDevice{Index: 0, Name: "Tesla P4", Memory: Val(GPUMemory{Total: 8 * gib}), Compute: Val("6.1"), MIG: NA[bool]("not supported")}
	mig := GPUDevice{Index: 1, Name: "NVIDIA H100 80GB HBM3", Memory: Val(GPUMemory{Total: 80 * gib}), Compute: Val("9.0"), MIG: Val(true)}
	res := runGPU(t, GPUSnapshot{Init: InitOK, DriverVersion: "470.256.02", CUDADriverVersion: 11040, Devices: []GPUDevice{old, mig}}, "gpu")
	if r := res["gpu.driver"]; r.Verdict != Fail || !strings.Contains(r.Message, "older than "+DefaultMinDriver) {
		t.Errorf("driver: %s %s", r.Verdict, r.Message)
	}
	r := res["gpu.devices"]
	if r.Verdict != Warn || !strings.Contains(strings.Join(r.Evidence, "\n"), "MIG n/a (not supported)") {
		t.Errorf("devices: %s %s %v", r.Verdict, r.Message, r.Evidence)
	}
	if !strings.Contains(r.Remedy, "MIG") {
		t.Errorf("devices remedy: %s", r.Remedy)
	}
}

func TestGPUInitVerdicts(t *testing.T) {
	for status, want := range map[InitStatus]string{
		InitDriverNotLoaded: "modprobe", InitRMMismatch: "reboot", InitNoPermission: "permissions", InitError: "nvidia-smi",
	} {
		r := runGPU(t, GPUSnapshot{Init: status}, "gpu.nvml")["gpu.nvml"]
		if r.Verdict != Fail || !strings.Contains(r.Remedy, want) {
			t.Errorf("%s: %s %q", status, r.Verdict, r.Remedy)
		}
	}
	// No device nodes, no driver: a CPU-only host is a warning, not a failure.
	r := runGPU(t, GPUSnapshot{Init: InitLibraryNotFound}, "gpu.nvml")["gpu.nvml"]
	if r.Verdict != Warn || !strings.Contains(r.Message, "CPU engine") {
		t.Errorf("no GPU: %s %s", r.Verdict, r.Message)
	}
	r = runGPU(t, GPUSnapshot{Init: InitNotBuilt}, "gpu.nvml")["gpu.nvml"]
	if r.Verdict != Skip {
		t.Errorf("not built, no GPU: %s %s", r.Verdict, r.Message)
	}
}
