// Package nvmlprobe is the only place llmctl links NVML. With cgo it reads
// GPUs through github.com/NVIDIA/go-nvml (the real libnvidia-ml.so.1 loaded
// at run time, or go-nvml's mocks in tests); without cgo it is a stub that
// says so, so everything else builds with CGO_ENABLED=0.
package nvmlprobe
