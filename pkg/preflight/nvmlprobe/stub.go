//go:build !cgo || !nvml

package nvmlprobe

import (
	"context"

	"github.com/llmctl/llmctl/pkg/preflight"
)

// Available reports whether this build can load NVML.
const Available = false

// Open returns a probe that reports NVML as not built in.
func Open() preflight.GPUProbe { return stub{} }

type stub struct{}

func (stub) Probe(context.Context) preflight.GPUSnapshot {
	return preflight.GPUSnapshot{Init: preflight.InitNotBuilt,
		InitDetail: "this llmctl binary was built without NVML (it needs cgo and -tags nvml; the linux/amd64 release binary has it)"}
}
