// Package gpu is what llmctl reads from a GPU (through NVML) and nothing
// else: the snapshot types and the probe interface that doctor, top and
// serve's GPU metrics all consume. It lives outside pkg/preflight so that
// reading a GPU does not pull in doctor.
package gpu

import (
	"context"
	"fmt"
)

// GPUProbe reads the GPUs through NVML. pkg/gpu/nvmlprobe implements it
// over go-nvml (the real library, or go-nvml's mocks in tests); this package
// never links NVML itself so that it builds with CGO_ENABLED=0.
type Probe interface {
	Probe(ctx context.Context) Snapshot
}

// InitStatus classifies nvmlInit's outcome; each has its own remedy.
type InitStatus string

// Init outcomes the GPU checks distinguish.
const (
	InitOK              InitStatus = "ok"
	InitLibraryNotFound InitStatus = "library-not-found" // libnvidia-ml.so.1 not loadable
	InitDriverNotLoaded InitStatus = "driver-not-loaded" // kernel module absent
	InitRMMismatch      InitStatus = "rm-version-mismatch"
	InitNoPermission    InitStatus = "no-permission"
	InitNotBuilt        InitStatus = "not-built"   // binary built without cgo
	InitNotQueried      InitStatus = "not-queried" // --root: the GPUs are not this tree's
	InitError           InitStatus = "error"
)

// Snapshot is everything NVML said, read once per run.
type Snapshot struct {
	Init       InitStatus `json:"init"`
	InitDetail string     `json:"initDetail,omitempty"`
	// DriverVersion is the kernel driver ("550.54.15"); CUDADriverVersion the
	// CUDA driver API version it supports (12040 = 12.4).
	DriverVersion     string   `json:"driverVersion,omitempty"`
	CUDADriverVersion int      `json:"cudaDriverVersion,omitempty"`
	Devices           []Device `json:"devices,omitempty"`
	// DevicesErr is set when devices could not be counted or opened.
	DevicesErr string `json:"devicesErr,omitempty"`
}

// Reading is one NVML query's answer: a value, or why there is none. WSL2 and
// consumer boards answer many queries with "Not Supported": that is n/a, not
// a failure.
type Reading[T any] struct {
	Value T      `json:"value"`
	OK    bool   `json:"ok"`
	NA    string `json:"na,omitempty"` // why there is no value
}

// Val is a Reading that holds v.
func Val[T any](v T) Reading[T] { return Reading[T]{Value: v, OK: true} }

// NA is a Reading without a value, and why.
func NA[T any](why string) Reading[T] { return Reading[T]{NA: why} }

func (r Reading[T]) String() string {
	if !r.OK {
		return "n/a (" + r.NA + ")"
	}
	return fmt.Sprint(r.Value)
}

// Memory is a device's framebuffer in bytes.
type Memory struct {
	Total uint64 `json:"total"`
	Free  uint64 `json:"free"`
	Used  uint64 `json:"used"`
}

// RemappedRows is the row-remapping state of HBM/GDDR6X boards (Ampere+).
type RemappedRows struct {
	Corrected   int  `json:"corrected"`
	Uncorrected int  `json:"uncorrected"`
	Pending     bool `json:"pending"`
	Failed      bool `json:"failed"`
}

// Device is one GPU as NVML sees it.
type Device struct {
	Index int    `json:"index"`
	Name  string `json:"name"`
	UUID  string `json:"uuid"`

	Memory  Reading[Memory] `json:"memory"`
	Compute Reading[string] `json:"computeCapability"` // "8.9"
	MIG     Reading[bool]   `json:"migEnabled"`
	ECC     Reading[bool]   `json:"eccEnabled"`
	// ECCUncorrected counts volatile (since boot) uncorrected ECC errors.
	ECCUncorrected Reading[uint64]       `json:"eccUncorrected"`
	Remapped       Reading[RemappedRows] `json:"remappedRows"`
	TemperatureC   Reading[uint32]       `json:"temperatureC"`
	UtilizationPct Reading[uint32]       `json:"utilizationPct"`
	PowerW         Reading[float64]      `json:"powerW"`
}

// Static returns a probe that always answers s: for doctor --root (the GPUs
// are not the mounted tree's) and for tests.
func Static(s Snapshot) Probe { return staticProbe(s) }

type staticProbe Snapshot

func (p staticProbe) Probe(context.Context) Snapshot { return Snapshot(p) }
