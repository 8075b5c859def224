// Package kubetest starts a real Kubernetes control plane for tests: etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler and KWOK, built from
// the Go module proxy by hack/kube-tools.sh. There is no kubelet: KWOK plays
// one fake node that advertises nvidia.com/gpu and moves scheduled pods to
// Running, so Deployments roll out and the scheduler really checks extended
// resources.
//
// One control plane per test binary (so per test package), on random loopback
// ports, with token auth and RBAC. Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }
//
// and call kubetest.Start(t) in each test. Under plain `go test` missing
// binaries skip the test; under `make test` (LLMCTL_TEST_REQUIRE_SERVICES=1)
// they fail it.
package kubetest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/llmctl/llmctl/internal/testenv"
)

// Version is the Kubernetes version hack/kube-tools.sh builds.
const Version = "v1.37.2"

// ToolsEnv overrides the directory holding the built binaries.
const ToolsEnv = "LLMCTL_KUBE_TOOLS"

// Fake node defaults: what the KWOK node advertises.
const (
	NodeName = "kwok-gpu-0"
	NodeGPUs = 1
	// DisregardAnnotation on a pod makes KWOK leave its status alone, so a
	// test can write any status (CrashLoopBackOff, OOMKilled...) itself.
	DisregardAnnotation = "kwok.x-k8s.io/status"
	DisregardValue      = "custom"
)

// Cluster is a running control plane.
type Cluster struct {
	// Config authenticates as the admin user (system:masters) by token.
	Config *rest.Config
	// Kubeconfig is a file with the same credentials, for CLIs under test.
	Kubeconfig string
	// Context is the current context's name inside Kubeconfig.
	Context string
	// Dir holds the cluster's state and logs (logs/<component>.log).
	Dir string
	// Node is the name of the KWOK fake GPU node.
	Node string
	// Startup is how long the control plane took to start, node Ready included.
	Startup time.Duration

	procs []*proc
	spawn *spawner
	// after runs once the processes have stopped (the real node's cleanup).
	after []func()

	nodeMu  sync.Mutex
	node    *RealNode
	nodeErr error
}

// Client returns a typed clientset for the admin user.
func (c *Cluster) Client(t testing.TB) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		t.Fatalf("kubetest: clientset: %v", err)
	}
	return cs
}

// registry holds this test binary's cluster: one per package by design, so
// it is process state, started lazily and stopped by Main.
type registry struct {
	mu      sync.Mutex
	cluster *Cluster
	err     error
	root    string
}

var reg registry

// Main runs the package's tests (through testenv.Main, so packages that also
// use PostgreSQL or Redis need only this) and then stops the control plane.
func Main(m *testing.M) int {
	code := testenv.Main(m)
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if reg.cluster != nil {
		reg.cluster.stop()
	}
	if reg.root != "" && code == 0 {
		os.RemoveAll(reg.root)
	} else if reg.root != "" {
		fmt.Fprintf(os.Stderr, "kubetest: cluster state and logs kept in %s\n", reg.root)
	}
	return code
}

// Start returns this package's control plane, starting it on first use. A
// missing binary skips t (or fails it under LLMCTL_TEST_REQUIRE_SERVICES=1);
// a control plane that fails to start fails t.
func Start(t testing.TB) *Cluster {
	t.Helper()
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if reg.cluster == nil && reg.err == nil {
		reg.cluster, reg.root, reg.err = launch(t)
	}
	if reg.err != nil {
		t.Fatalf("kubetest: start control plane: %v", reg.err)
	}
	return reg.cluster
}

// New starts a control plane of t's own, stopped when t ends. It suits a
// package that cannot own TestMain (cmd/llmctl's is shared); prefer Start,
// which shares one control plane across the package's tests.
func New(t testing.TB) *Cluster {
	t.Helper()
	c, root, err := launch(t)
	if err != nil {
		t.Fatalf("kubetest: start control plane: %v", err)
	}
	t.Cleanup(func() {
		c.stop()
		if t.Failed() {
			t.Logf("kubetest: cluster state and logs kept in %s", root)
			return
		}
		os.RemoveAll(root)
	})
	return c
}

// launch finds the binaries (skipping t when they are missing) and starts a
// control plane in a fresh temp dir.
func launch(t testing.TB) (*Cluster, string, error) {
	dir, err := ToolsDir()
	if err != nil {
		testenv.Unavailable(t, "kubetest: %v (build them with `make kube-tools`)", err)
		return nil, "", err
	}
	root, err := os.MkdirTemp("", "llmctl-kubetest-")
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	began := time.Now()
	c, err := start(ctx, dir, root)
	if c != nil {
		c.Startup = time.Since(began)
	}
	return c, root, err
}

// Binaries are the executables hack/kube-tools.sh builds.
var binaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}

// ToolsDir finds the built binaries: $LLMCTL_KUBE_TOOLS, or the cache
// directory hack/kube-tools.sh writes to.
func ToolsDir() (string, error) {
	dir := os.Getenv(ToolsEnv)
	if dir == "" {
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("no cache directory: %w", err)
			}
			cache = filepath.Join(home, ".cache")
		}
		dir = filepath.Join(cache, "llmctl", "kube-"+Version)
	}
	for _, b := range binaries {
		st, err := os.Stat(filepath.Join(dir, b))
		if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return "", fmt.Errorf("control-plane binary %s not found in %s", b, dir)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "kwok-stages")); err != nil {
		return "", fmt.Errorf("KWOK stages not found in %s", dir)
	}
	return dir, nil
}
