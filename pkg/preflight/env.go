package preflight

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
)

// Env is the view of the host every check reads through: a filesystem root,
// an NVML probe and a Kubernetes client. Tests point Root at a fixture tree,
// give GPU a go-nvml mock and Kube a client of a throwaway API server.
type Env struct {
	// Root is the filesystem root every path is read under ("/" normally).
	Root string
	// GPU probes NVML; nil when this build has none (CGO_ENABLED=0).
	GPU GPUProbe
	// Kube is the cluster client, or why there is none.
	Kube KubeTarget
	// Namespace holds the gateway's pods (workload check).
	Namespace string
	// Model is the GGUF file, or the Hugging Face safetensors model
	// directory, to fit: a path on this machine even with another Root
	// (empty: model checks skip). Context is its context length in tokens
	// (0: the model's own; for safetensors, vLLM's --max-model-len). CPU
	// forces the GGUF fit against RAM for the embedded CPU engine.
	// GPUMemoryUtilization is vLLM's --gpu-memory-utilization for a
	// safetensors model (0: vLLM's default, 0.9).
	Model                string
	Context              int
	CPU                  bool
	GPUMemoryUtilization float64
	// MinDriver and MinCUDA are the oldest acceptable driver ("535.54.03")
	// and CUDA driver API version (12020 = 12.2).
	MinDriver string
	MinCUDA   int
	// CRISocket is the node's container runtime's CRI socket, a path on
	// this machine (empty: facts.ContainerdSockets(), tried only when Root
	// is "/"). The runtime checks read its live status and config there.
	CRISocket string
	// CallTimeout bounds each external call (NVML, one API request).
	CallTimeout time.Duration
	// Statfs reports free and total bytes of the filesystem holding path.
	Statfs func(path string) (free, total uint64, err error)

	facts *runFacts
}

// KubeTarget is a Kubernetes client and where its config came from, or the
// reason there is no client (then Client is nil and Err says why).
type KubeTarget struct {
	Client kubernetes.Interface
	Source string
	Err    error
}

// Defaults for an Env field left zero.
const (
	DefaultMinDriver   = "535.54.03" // first driver of the CUDA 12.2 line
	DefaultMinCUDA     = 12020
	DefaultCallTimeout = 2 * time.Second
	DefaultNamespace   = "llmctl"
)

// runFacts are read once per run and shared by the checks that need them, so
// that ten checks do not probe NVML or the API server ten times.
type runFacts struct {
	gpuOnce sync.Once
	gpu     GPUSnapshot

	apiOnce sync.Once
	api     apiFacts

	criOnce sync.Once
	cri     criFacts

	nodesOnce sync.Once
	nodes     []corev1.Node
	nodesErr  error
}

func (e *Env) init() {
	if e.Root == "" {
		e.Root = "/"
	}
	if e.MinDriver == "" {
		e.MinDriver = DefaultMinDriver
	}
	if e.MinCUDA == 0 {
		e.MinCUDA = DefaultMinCUDA
	}
	if e.CallTimeout <= 0 {
		e.CallTimeout = DefaultCallTimeout
	}
	if e.Namespace == "" {
		e.Namespace = DefaultNamespace
	}
	if e.Statfs == nil {
		e.Statfs = statfs
	}
	if e.facts == nil {
		e.facts = &runFacts{}
	}
}

// path maps an absolute host path into the root.
func (e *Env) path(p string) string { return filepath.Join(e.Root, p) }

// maxRead bounds every file a check reads: these are small config and proc
// files, and a huge or endless one must not stall the run.
const maxRead = 1 << 20

// read returns a file's content under the root, at most maxRead bytes.
func (e *Env) read(p string) (string, error) {
	f, err := os.Open(e.path(p))
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxRead))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", p, err)
	}
	return string(b), nil
}

// exists reports whether p exists under the root (links not followed).
func (e *Env) exists(p string) bool {
	_, err := os.Lstat(e.path(p))
	return err == nil
}

// executable reports whether p is a regular file with an execute bit.
func (e *Env) executable(p string) bool {
	fi, err := os.Stat(e.path(p))
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// glob lists paths under the root matching pattern, as host paths.
func (e *Env) glob(pattern string) []string {
	m, _ := filepath.Glob(e.path(pattern))
	out := make([]string, 0, len(m))
	for _, p := range m {
		rel, err := filepath.Rel(e.Root, p)
		if err != nil {
			continue
		}
		out = append(out, "/"+filepath.ToSlash(rel))
	}
	return out
}

// readErr says why a file could not be read, in the words a user needs.
func readErr(p string, err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return p + ": not present"
	case errors.Is(err, fs.ErrPermission):
		return p + ": permission denied (run doctor with sudo to read it)"
	default:
		return p + ": " + err.Error()
	}
}

// firstLine trims s to its first line.
func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// statfs walks up from path to the nearest existing directory and reports
// the free (to unprivileged users) and total bytes of its filesystem.
func statfs(path string) (uint64, uint64, error) {
	for p := path; ; p = filepath.Dir(p) {
		var st unix.Statfs_t
		err := unix.Statfs(p, &st)
		if err == nil {
			bs := uint64(st.Bsize)
			return st.Bavail * bs, st.Blocks * bs, nil
		}
		if !errors.Is(err, unix.ENOENT) || p == filepath.Dir(p) {
			return 0, 0, fmt.Errorf("statfs %s: %w", p, err)
		}
	}
}

// withTimeout runs f in a goroutine and gives up after d. It exists for
// calls that take no context (NVML via cgo): the call is abandoned, not
// cancelled, which is the best a blocking C call allows.
func withTimeout[T any](ctx context.Context, d time.Duration, f func() T) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	ch := make(chan T, 1)
	go func() { ch <- f() }()
	select {
	case v := <-ch:
		return v, nil
	case <-ctx.Done():
		var zero T
		return zero, fmt.Errorf("gave up after %s: %w", d, ctx.Err())
	}
}
