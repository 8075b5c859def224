package preflight

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/llmctl/llmctl/pkg/gpu"
	"github.com/llmctl/llmctl/pkg/preflight/facts"
)

// The GPU snapshot types live in pkg/gpu (so top and serve read a GPU
// without importing doctor); these names keep doctor's API and its callers
// unchanged.
type (
	GPUProbe     = gpu.Probe
	InitStatus   = gpu.InitStatus
	GPUSnapshot  = gpu.Snapshot
	GPUMemory    = gpu.Memory
	RemappedRows = gpu.RemappedRows
	GPUDevice    = gpu.Device
)

// Reading is gpu.Reading.
type Reading[T any] = gpu.Reading[T]

// Init outcomes (see pkg/gpu).
const (
	InitOK              = gpu.InitOK
	InitLibraryNotFound = gpu.InitLibraryNotFound
	InitDriverNotLoaded = gpu.InitDriverNotLoaded
	InitRMMismatch      = gpu.InitRMMismatch
	InitNoPermission    = gpu.InitNoPermission
	InitNotBuilt        = gpu.InitNotBuilt
	InitNotQueried      = gpu.InitNotQueried
	InitError           = gpu.InitError
)

// Val is gpu.Val.
func Val[T any](v T) Reading[T] { return gpu.Val(v) }

// NA is gpu.NA.
func NA[T any](why string) Reading[T] { return gpu.NA[T](why) }

// StaticProbe is gpu.Static.
func StaticProbe(s GPUSnapshot) GPUProbe { return gpu.Static(s) }

// gpu returns the run's NVML snapshot, probing once under the call timeout.
func (e *Env) gpu(ctx context.Context) GPUSnapshot {
	e.facts.gpuOnce.Do(func() {
		if e.GPU == nil {
			e.facts.gpu = GPUSnapshot{Init: InitNotBuilt, InitDetail: "this llmctl binary has no NVML probe"}
			return
		}
		// Detached from the caller's deadline: the snapshot is shared, so the
		// first check's cancellation must not poison it for the others.
		dctx := context.WithoutCancel(ctx)
		snap, err := withTimeout(dctx, e.CallTimeout, func() GPUSnapshot { return e.GPU.Probe(dctx) })
		if err != nil {
			snap = GPUSnapshot{Init: InitError, InitDetail: "NVML did not answer: " + err.Error()}
		}
		e.facts.gpu = snap
	})
	return e.facts.gpu
}

// gpuNodes lists NVIDIA device nodes (bare metal) and /dev/dxg (WSL2).
func (e *Env) gpuNodes() []string {
	nodes := e.glob("/dev/nvidia[0-9]*")
	if e.exists("/dev/nvidiactl") {
		nodes = append(nodes, "/dev/nvidiactl")
	}
	if e.exists("/dev/dxg") {
		nodes = append(nodes, "/dev/dxg")
	}
	return nodes
}

// gpuExpected reports whether this host looks like it has an NVIDIA GPU,
// with or without a working NVML: device nodes, the kernel module, or NVML.
func (e *Env) gpuExpected(ctx context.Context) bool {
	if len(e.gpuNodes()) > 0 || e.exists("/proc/driver/nvidia/version") {
		return true
	}
	switch s := e.gpu(ctx); s.Init {
	case InitOK:
		return len(s.Devices) > 0
	case InitDriverNotLoaded, InitRMMismatch, InitNoPermission:
		return true // a driver is installed, just broken
	}
	return false
}

func gpuChecks() []Check {
	return []Check{
		{ID: "gpu.nvml", Category: CatGPU, Title: "NVML loads and initialises", Run: checkNVML},
		{ID: "gpu.driver", Category: CatGPU, Title: "Driver and CUDA driver version", Run: checkDriver},
		{ID: "gpu.devices", Category: CatGPU, Title: "GPUs, VRAM, compute capability, MIG", Run: checkDevices},
		{ID: "gpu.health", Category: CatGPU, Title: "ECC, remapped rows, temperature", Run: checkGPUHealth},
	}
}

func checkNVML(ctx context.Context, e *Env) Outcome {
	s := e.gpu(ctx)
	nodes := e.gpuNodes()
	ev := []string{evf("device nodes: %s", listOr(nodes, "none"))}
	if v, err := e.read("/proc/driver/nvidia/version"); err == nil {
		ev = append(ev, "/proc/driver/nvidia/version: "+firstLine(v))
	}
	if libs := e.nvmlLibs(); len(libs) > 0 {
		ev = append(ev, "NVML libraries: "+strings.Join(libs, ", "))
	}
	if s.InitDetail != "" {
		ev = append(ev, "nvmlInit: "+s.InitDetail)
	}
	wsl := e.wsl()
	switch s.Init {
	case InitOK:
		return pass(fmt.Sprintf("NVML initialised, driver %s, %d device(s)", s.DriverVersion, len(s.Devices)), ev...)
	case InitNotQueried:
		return skip("NVML not queried: "+s.InitDetail, ev...)
	case InitNotBuilt:
		if len(nodes) > 0 {
			return warn("GPU present but this build cannot query it (no cgo, no NVML)",
				"use the linux/amd64 release binary, or build with `CGO_ENABLED=1 go build -tags nvml -ldflags=-extldflags=-Wl,-z,lazy ./cmd/llmctl`", ev...)
		}
		return skip("no NVML in this build and no NVIDIA device nodes", ev...)
	case InitLibraryNotFound:
		if len(nodes) == 0 && !e.exists("/proc/driver/nvidia/version") {
			return Outcome{Verdict: Warn, Message: "no NVIDIA GPU or driver on this host: only the CPU engine can serve",
				Remedy:   "for GPU serving install the NVIDIA driver (on WSL2: the Windows driver; never install a Linux driver inside WSL2)",
				Evidence: ev}
		}
		rem := "install the NVIDIA driver's user-space libraries (libnvidia-ml.so.1), e.g. `apt install nvidia-driver` or the matching `libnvidia-compute-<ver>`"
		if wsl == facts.WSL2 {
			rem = "on WSL2 libnvidia-ml.so.1 comes from the Windows driver in /usr/lib/wsl/lib: update the Windows NVIDIA driver, run `wsl --update`, and make sure /usr/lib/wsl/lib is in ld.so.conf (`ldconfig -p | grep nvidia-ml`)"
		}
		return fail("NVIDIA device present but libnvidia-ml.so.1 cannot be loaded", rem, ev...)
	case InitDriverNotLoaded:
		return fail("NVIDIA kernel driver is not loaded",
			"load it: `sudo modprobe nvidia` (check `dmesg | grep -i nvidia`; with Secure Boot the module must be signed, or use DKMS with MOK enrollment)", ev...)
	case InitRMMismatch:
		return fail("driver/library version mismatch: the kernel module and libnvidia-ml differ (driver upgraded without reboot)",
			"reboot so the new kernel module loads (or unload and reload it: `sudo rmmod nvidia_uvm nvidia_drm nvidia_modeset nvidia && sudo modprobe nvidia`)", ev...)
	case InitNoPermission:
		return fail("no permission to open the NVIDIA device nodes",
			"run doctor as root, or check the permissions of /dev/nvidia* (udev rules, the `video` group)", ev...)
	default:
		return fail("NVML failed to initialise", "check `nvidia-smi`; it reports the same error with more detail", ev...)
	}
}

// nvmlLibs lists libnvidia-ml files: their suffix is the user-space version,
// the other half of an RM mismatch.
func (e *Env) nvmlLibs() []string {
	var out []string
	for _, dir := range []string{"/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/lib/wsl/lib"} {
		out = append(out, e.glob(dir+"/libnvidia-ml.so*")...)
	}
	return out
}

// gpuUsable returns the snapshot, or a skip outcome when NVML is unusable
// (gpu.nvml already says why).
func (e *Env) gpuUsable(ctx context.Context) (GPUSnapshot, *Outcome) {
	s := e.gpu(ctx)
	if s.Init != InitOK {
		o := skip("NVML unavailable (see gpu.nvml)")
		return s, &o
	}
	return s, nil
}

func checkDriver(ctx context.Context, e *Env) Outcome {
	s, out := e.gpuUsable(ctx)
	if out != nil {
		return *out
	}
	ev := []string{
		evf("driver %s (minimum %s)", s.DriverVersion, e.MinDriver),
		evf("CUDA driver API %s (minimum %s)", cudaString(s.CUDADriverVersion), cudaString(e.MinCUDA)),
	}
	if compareVersions(s.DriverVersion, e.MinDriver) < 0 {
		return fail(fmt.Sprintf("driver %s is older than %s", s.DriverVersion, e.MinDriver),
			"upgrade the NVIDIA driver (then reboot); on WSL2 upgrade the Windows driver", ev...)
	}
	if s.CUDADriverVersion < e.MinCUDA {
		return fail(fmt.Sprintf("driver supports CUDA %s, images need %s", cudaString(s.CUDADriverVersion), cudaString(e.MinCUDA)),
			"upgrade the NVIDIA driver, or use an inference image built for an older CUDA", ev...)
	}
	return pass(fmt.Sprintf("driver %s, CUDA %s", s.DriverVersion, cudaString(s.CUDADriverVersion)), ev...)
}

func checkDevices(ctx context.Context, e *Env) Outcome {
	s, out := e.gpuUsable(ctx)
	if out != nil {
		return *out
	}
	if s.DevicesErr != "" {
		return fail("NVML initialised but cannot list devices", "check `nvidia-smi -L`", "devices: "+s.DevicesErr)
	}
	if len(s.Devices) == 0 {
		return fail("NVML sees no GPU", "check `nvidia-smi -L`; on WSL2 the GPU must be enabled for WSL in the Windows driver")
	}
	o := Outcome{Verdict: Pass}
	var names []string
	for _, d := range s.Devices {
		names = append(names, d.Name)
		o.Evidence = append(o.Evidence, evf("GPU %d: %s %s, VRAM %s, compute %s, MIG %s",
			d.Index, d.Name, d.UUID, memString(d.Memory), d.Compute, boolReading(d.MIG, "on", "off")))
		if d.Compute.OK && compareVersions(d.Compute.Value, "7.0") < 0 {
			o.Verdict = worse(o.Verdict, Warn)
			o.Remedy = "compute capability below 7.0: current vLLM and most quantized CUDA kernels need Volta (7.0) or newer; use llama.cpp or the CPU engine"
		}
		if d.MIG.OK && d.MIG.Value {
			o.Verdict = worse(o.Verdict, Warn)
			o.Remedy = "MIG is enabled: the device plugin must run with a MIG strategy (`migStrategy: single|mixed`) or the GPU is not advertised; disable with `nvidia-smi -i N -mig 0` if unintended"
		}
	}
	o.Message = fmt.Sprintf("%d GPU(s): %s", len(s.Devices), strings.Join(names, ", "))
	if e.wsl() == facts.WSL2 {
		o.Evidence = append(o.Evidence, "WSL2: queries answered \"Not Supported\" are shown as n/a; that is normal under GPU paravirtualisation")
	}
	return o
}

// Temperatures at which a board is close to throttling.
const hotC = 85

func checkGPUHealth(ctx context.Context, e *Env) Outcome {
	s, out := e.gpuUsable(ctx)
	if out != nil {
		return *out
	}
	if len(s.Devices) == 0 {
		return skip("no devices (see gpu.devices)")
	}
	o := Outcome{Verdict: Pass, Message: "no ECC errors, no row-remap failures, temperatures normal"}
	var problems, fixes []string
	readable := false
	for _, d := range s.Devices {
		readable = readable || d.ECCUncorrected.OK || d.Remapped.OK || d.TemperatureC.OK
		o.Evidence = append(o.Evidence, evf("GPU %d: ECC %s, uncorrected ECC errors %s, remapped rows %s, temperature %s",
			d.Index, boolReading(d.ECC, "on", "off"), d.ECCUncorrected, remapString(d.Remapped), tempString(d.TemperatureC)))
		if d.Remapped.OK && d.Remapped.Value.Failed {
			o.Verdict = worse(o.Verdict, Fail)
			problems = append(problems, evf("GPU %d row remapping failed", d.Index))
			fixes = append(fixes, "a failed row remap means the board has run out of spare rows: replace or RMA it")
		} else if d.Remapped.OK && d.Remapped.Value.Pending {
			o.Verdict = worse(o.Verdict, Warn)
			problems = append(problems, evf("GPU %d has a row remap pending", d.Index))
			fixes = append(fixes, "reset the GPU (`nvidia-smi -r`) or reboot to apply pending row remaps")
		}
		if d.ECCUncorrected.OK && d.ECCUncorrected.Value > 0 {
			o.Verdict = worse(o.Verdict, Warn)
			problems = append(problems, evf("GPU %d has %d uncorrected ECC errors since boot", d.Index, d.ECCUncorrected.Value))
			fixes = append(fixes, "uncorrected ECC errors corrupt results: reset the GPU and watch whether they recur")
		}
		if d.TemperatureC.OK && d.TemperatureC.Value >= hotC {
			o.Verdict = worse(o.Verdict, Warn)
			problems = append(problems, evf("GPU %d at %d °C", d.Index, d.TemperatureC.Value))
			fixes = append(fixes, "improve cooling or cap power (`nvidia-smi -pl`): the board will throttle")
		}
	}
	if !readable {
		o.Message = "ECC, row remapping and temperature are n/a on this driver/board (normal on WSL2 and GeForce)"
	}
	if len(problems) > 0 {
		o.Message = strings.Join(problems, "; ")
		o.Remedy = strings.Join(dedupe(fixes), "\n")
	}
	return o
}

func listOr(xs []string, none string) string {
	if len(xs) == 0 {
		return none
	}
	return strings.Join(xs, ", ")
}

func dedupe(xs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

func cudaString(v int) string { return fmt.Sprintf("%d.%d", v/1000, (v%1000)/10) }

func memString(r Reading[GPUMemory]) string {
	if !r.OK {
		return r.String()
	}
	return fmt.Sprintf("%s total, %s free", bytesString(r.Value.Total), bytesString(r.Value.Free))
}

func boolReading(r Reading[bool], yes, no string) string {
	if !r.OK {
		return r.String()
	}
	if r.Value {
		return yes
	}
	return no
}

func remapString(r Reading[RemappedRows]) string {
	if !r.OK {
		return r.String()
	}
	v := r.Value
	return fmt.Sprintf("%d corrected/%d uncorrected (pending %t, failed %t)", v.Corrected, v.Uncorrected, v.Pending, v.Failed)
}

func tempString(r Reading[uint32]) string {
	if !r.OK {
		return r.String()
	}
	return fmt.Sprintf("%d °C", r.Value)
}

// bytesString prints bytes in binary units with one decimal.
func bytesString(b uint64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := uint64(unit), 0
	for n := b / unit; n >= unit && exp < 4; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTP"[exp])
}

// compareVersions compares dotted numeric versions ("550.54.15" vs "535");
// a missing or non-numeric part counts as 0.
func compareVersions(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(pa), len(pb)) {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(strings.TrimSpace(pa[i]))
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(strings.TrimSpace(pb[i]))
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}
