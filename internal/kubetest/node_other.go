//go:build !linux

package kubetest

import (
	"testing"

	"github.com/llmctl/llmctl/internal/testenv"
)

// RealNode needs Linux (containerd, cgroups, network namespaces).
type RealNode struct{}

// RealNode skips t (or fails it when services are required): Linux only.
func (c *Cluster) RealNode(t testing.TB) *RealNode {
	t.Helper()
	testenv.Unavailable(t, "kubetest real node: needs Linux")
	return nil
}
