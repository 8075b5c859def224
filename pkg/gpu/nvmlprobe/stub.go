//go:build !cgo || !nvml

package nvmlprobe

import (
	"context"

	"github.com/llmctl/llmctl/pkg/gpu"
)

// Available reports whether this build can load NVML.
const Available = false

// Open returns a probe that reports NVML as not built in.
func Open() gpu.Probe { return stub{} }

type stub struct{}

func (stub) Probe(context.Context) gpu.Snapshot {
	return gpu.Snapshot{Init: gpu.InitNotBuilt,
		InitDetail: "this llmctl binary was built without NVML (it needs cgo and -tags nvml; the linux/amd64 release binary has it)"}
}
