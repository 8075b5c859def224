package nvmlprobe_test

import (
	"context"
	"testing"

	"github.com/llmctl/llmctl/pkg/gpu"
	"github.com/llmctl/llmctl/pkg/gpu/nvmlprobe"
)

// TestOpen: whatever the build, probing never crashes and the verdict says
// which build this is. On a machine without a driver the real probe reports
// the library missing; with one it initialises.
func TestOpen(t *testing.T) {
	s := nvmlprobe.Open().Probe(context.Background())
	if !nvmlprobe.Available {
		if s.Init != gpu.InitNotBuilt {
			t.Fatalf("stub build: %+v", s)
		}
		return
	}
	if s.Init == gpu.InitNotBuilt || s.Init == "" {
		t.Fatalf("NVML build: %+v", s)
	}
	t.Logf("this machine: init %s %s, %d devices", s.Init, s.InitDetail, len(s.Devices))
}
