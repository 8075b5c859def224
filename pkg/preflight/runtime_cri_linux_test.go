package preflight_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llmctl/llmctl/internal/kubetest"
	"github.com/llmctl/llmctl/pkg/preflight"
)

// runCRI runs the live runtime checks against env and returns them by ID.
func runCRI(t *testing.T, env *preflight.Env) map[string]preflight.Result {
	t.Helper()
	return runOnly(t, env, "runtime.cri-status", "runtime.cri-runtimes")
}

// hostHasGPU mirrors what doctor counts as "a GPU is expected here".
func hostHasGPU() bool {
	for _, p := range []string{"/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia/version"} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// doctor against this machine's real containerd, read over its CRI socket:
// one that registers an nvidia runtime whose binary is not installed, and a
// healthy one with runc alone. Neither has a CNI config, so NetworkReady is
// really false.
func TestCRIChecksOnRealContainerd(t *testing.T) {
	missing := "/usr/local/llmctl-absent/nvidia-container-runtime"
	broken := kubetest.StartContainerd(t, kubetest.ContainerdRuntime{Name: "nvidia", BinaryName: missing})
	healthy := kubetest.StartContainerd(t)

	got := runCRI(t, &preflight.Env{Root: "/", CRISocket: broken.Socket})
	rt := got["runtime.cri-runtimes"]
	if rt.Verdict != preflight.Fail || !strings.Contains(rt.Message, "registered the nvidia runtime") ||
		!strings.Contains(rt.Message, missing) || !strings.Contains(rt.Remedy, "nvidia-container-toolkit") ||
		!strings.Contains(rt.Remedy, "BinaryName") {
		t.Errorf("registered-but-missing nvidia: %s %q remedy %q %v", rt.Verdict, rt.Message, rt.Remedy, rt.Evidence)
	}
	st := got["runtime.cri-status"]
	if st.Verdict != preflight.Warn || !strings.Contains(st.Message, "NetworkReady") ||
		!strings.Contains(strings.Join(st.Evidence, "\n"), "RuntimeReady=true") {
		t.Errorf("status without CNI: %s %q %v", st.Verdict, st.Message, st.Evidence)
	}

	got = runCRI(t, &preflight.Env{Root: "/", CRISocket: healthy.Socket})
	rt = got["runtime.cri-runtimes"]
	switch {
	case hostHasGPU():
		if rt.Verdict != preflight.Fail || !strings.Contains(rt.Message, "no nvidia runtime") {
			t.Errorf("GPU host, no nvidia runtime: %s %q", rt.Verdict, rt.Message)
		}
	case rt.Verdict != preflight.Pass || !strings.Contains(strings.Join(rt.Evidence, "\n"), `runc: runtime_type "io.containerd.runc.v2"`):
		t.Errorf("healthy containerd: %s %q %v", rt.Verdict, rt.Message, rt.Evidence)
	}
}

// Without a live runtime the checks say so plainly: an unreachable socket
// is a warning naming it, a --root tree is not this machine's containerd.
func TestCRIChecksWithoutRuntime(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	got := runCRI(t, &preflight.Env{Root: "/", CRISocket: sock})
	if r := got["runtime.cri-status"]; r.Verdict != preflight.Warn || !strings.Contains(r.Message, sock) || r.Remedy == "" {
		t.Errorf("unreachable socket: %s %q %q", r.Verdict, r.Message, r.Remedy)
	}
	if r := got["runtime.cri-runtimes"]; r.Verdict != preflight.Skip {
		t.Errorf("runtimes without status: %s %q", r.Verdict, r.Message)
	}
	got = runCRI(t, &preflight.Env{Root: t.TempDir()})
	for id, r := range got {
		if r.Verdict != preflight.Skip || !strings.Contains(r.Message, "--cri-socket") {
			t.Errorf("%s on a --root tree: %s %q", id, r.Verdict, r.Message)
		}
	}
}
