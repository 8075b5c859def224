//go:build cgo

// Package gonvml adapts github.com/NVIDIA/go-nvml to gpu.Probe: the
// real library (nvml.New()) or go-nvml's mocks and DGX-style mock servers in
// tests. It needs cgo, and a binary that links it must bind lazily (see
// package nvmlprobe, the only production importer).
package gonvml

import (
	"context"
	"fmt"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/llmctl/llmctl/pkg/gpu"
)

// Probe reads a snapshot through an nvml.Interface.
type Probe struct{ lib nvml.Interface }

// New returns a probe over lib: nvml.New() or a go-nvml mock.
func New(lib nvml.Interface) *Probe { return &Probe{lib: lib} }

// Probe initialises NVML, reads every device and shuts NVML down again.
func (p *Probe) Probe(_ context.Context) gpu.Snapshot {
	var s gpu.Snapshot
	ret, err := guard(p.lib.Init)
	if err != nil {
		return gpu.Snapshot{Init: gpu.InitError, InitDetail: err.Error()}
	}
	s.Init = initStatus(ret)
	if ret != nvml.SUCCESS {
		s.InitDetail = retString(ret)
		return s
	}
	defer func() { _, _ = guard(p.lib.Shutdown) }()

	if v, r, err := guard2(p.lib.SystemGetDriverVersion); err == nil && r == nvml.SUCCESS {
		s.DriverVersion = v
	}
	if v, r, err := guard2(p.lib.SystemGetCudaDriverVersion); err == nil && r == nvml.SUCCESS {
		s.CUDADriverVersion = v
	}
	n, r, err := guard2(p.lib.DeviceGetCount)
	switch {
	case err != nil:
		s.DevicesErr = err.Error()
		return s
	case r != nvml.SUCCESS:
		s.DevicesErr = retString(r)
		return s
	}
	for i := range n {
		d, r, err := guard2(func() (nvml.Device, nvml.Return) { return p.lib.DeviceGetHandleByIndex(i) })
		if err != nil || r != nvml.SUCCESS {
			s.DevicesErr = fmt.Sprintf("device %d: %s", i, orErr(r, err))
			continue
		}
		s.Devices = append(s.Devices, readDevice(i, d))
	}
	return s
}

func initStatus(r nvml.Return) gpu.InitStatus {
	switch r {
	case nvml.SUCCESS:
		return gpu.InitOK
	case nvml.ERROR_LIBRARY_NOT_FOUND:
		return gpu.InitLibraryNotFound
	case nvml.ERROR_DRIVER_NOT_LOADED:
		return gpu.InitDriverNotLoaded
	case nvml.ERROR_LIB_RM_VERSION_MISMATCH:
		return gpu.InitRMMismatch
	case nvml.ERROR_NO_PERMISSION:
		return gpu.InitNoPermission
	}
	return gpu.InitError
}

// readDevice reads one device. Each query stands alone: "Not Supported"
// (WSL2, consumer boards) becomes n/a and the others are still read.
func readDevice(i int, d nvml.Device) gpu.Device {
	dev := gpu.Device{Index: i}
	if v, r, err := guard2(d.GetName); err == nil && r == nvml.SUCCESS {
		dev.Name = v
	}
	if v, r, err := guard2(d.GetUUID); err == nil && r == nvml.SUCCESS {
		dev.UUID = v
	}
	dev.Memory = reading(func() (gpu.Memory, nvml.Return) {
		m, r := d.GetMemoryInfo()
		return gpu.Memory{Total: m.Total, Free: m.Free, Used: m.Used}, r
	})
	dev.Compute = reading(func() (string, nvml.Return) {
		maj, mnr, r := d.GetCudaComputeCapability()
		return fmt.Sprintf("%d.%d", maj, mnr), r
	})
	dev.MIG = reading(func() (bool, nvml.Return) {
		cur, _, r := d.GetMigMode()
		return cur == nvml.DEVICE_MIG_ENABLE, r
	})
	dev.ECC = reading(func() (bool, nvml.Return) {
		cur, _, r := d.GetEccMode()
		return cur == nvml.FEATURE_ENABLED, r
	})
	dev.ECCUncorrected = reading(func() (uint64, nvml.Return) {
		return d.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.VOLATILE_ECC)
	})
	dev.Remapped = reading(func() (gpu.RemappedRows, nvml.Return) {
		c, u, pending, failed, r := d.GetRemappedRows()
		return gpu.RemappedRows{Corrected: c, Uncorrected: u, Pending: pending, Failed: failed}, r
	})
	dev.TemperatureC = reading(func() (uint32, nvml.Return) { return d.GetTemperature(nvml.TEMPERATURE_GPU) })
	dev.UtilizationPct = reading(func() (uint32, nvml.Return) {
		u, r := d.GetUtilizationRates()
		return u.Gpu, r
	})
	dev.PowerW = reading(func() (float64, nvml.Return) {
		mw, r := d.GetPowerUsage()
		return float64(mw) / 1000, r
	})
	return dev
}

// reading runs one query and turns its Return (or a panic) into a Reading.
func reading[T any](f func() (T, nvml.Return)) gpu.Reading[T] {
	v, r, err := guard2(f)
	switch {
	case err != nil:
		return gpu.NA[T](err.Error())
	case r == nvml.ERROR_NOT_SUPPORTED:
		return gpu.NA[T]("not supported")
	case r != nvml.SUCCESS:
		return gpu.NA[T](retString(r))
	}
	return gpu.Val(v)
}

// guard and guard2 call into NVML and turn a panic into an error: go-nvml's
// mocks panic on any query they were not given, and a probe must report,
// not crash.
func guard(f func() nvml.Return) (r nvml.Return, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("not implemented by this NVML: %v", p)
		}
	}()
	return f(), nil
}

func guard2[T any](f func() (T, nvml.Return)) (v T, r nvml.Return, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("not implemented by this NVML: %v", p)
		}
	}()
	v, r = f()
	return v, r, nil
}

func orErr(r nvml.Return, err error) string {
	if err != nil {
		return err.Error()
	}
	return retString(r)
}

// retString names a Return without calling into the library, which may be
// the thing that is broken.
func retString(r nvml.Return) string {
	switch r {
	case nvml.ERROR_LIBRARY_NOT_FOUND:
		return "libnvidia-ml.so.1 not found (ERROR_LIBRARY_NOT_FOUND)"
	case nvml.ERROR_DRIVER_NOT_LOADED:
		return "NVIDIA driver is not loaded (ERROR_DRIVER_NOT_LOADED)"
	case nvml.ERROR_LIB_RM_VERSION_MISMATCH:
		return "RM detects a driver/library version mismatch (ERROR_LIB_RM_VERSION_MISMATCH)"
	case nvml.ERROR_NO_PERMISSION:
		return "insufficient permissions (ERROR_NO_PERMISSION)"
	case nvml.ERROR_NOT_SUPPORTED:
		return "not supported"
	}
	return fmt.Sprintf("NVML error %d", int32(r))
}
