//go:build cgo && nvml

package nvmlprobe

import (
	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/llmctl/llmctl/pkg/gpu"
	"github.com/llmctl/llmctl/pkg/gpu/gonvml"
)

// Available reports whether this build can load NVML.
const Available = true

// Open returns a probe over the system's libnvidia-ml.so.1, loaded when
// probed (dlopen), so a host without the driver gets a verdict, not a crash.
func Open() gpu.Probe { return gonvml.New(nvml.New()) }
