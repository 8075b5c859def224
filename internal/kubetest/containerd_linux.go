package kubetest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/llmctl/llmctl/internal/testenv"
)

// containerdParams are what differs between the real node's containerd and
// a bare one (StartContainerd).
type containerdParams struct {
	dir, socket, cniBin, cniConf string
	// runtimes are registered beside runc, in order.
	runtimes []ContainerdRuntime
}

// containerdConf renders a containerd 1.6/1.7 (version 2) config for p: its
// state under p.dir, the CRI plugin with restrict_oom_score_adj (see
// RealNode), the pause image the harness builds, runc as the default runtime.
func containerdConf(p containerdParams) string {
	var b strings.Builder
	fmt.Fprintf(&b, `version = 2
root = %[1]q
state = %[2]q
[grpc]
  address = %[3]q
[ttrpc]
  address = %[4]q
[plugins."io.containerd.internal.v1.opt"]
  path = %[5]q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[6]q
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[7]q
    conf_dir = %[8]q
`, filepath.Join(p.dir, "containerd"), filepath.Join(p.dir, "containerd-state"), p.socket,
		p.socket+".ttrpc", filepath.Join(p.dir, "opt"), PauseImage, p.cniBin, p.cniConf)
	for _, r := range p.runtimes {
		fmt.Fprintf(&b, `  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.%[1]q]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.%[1]q.options]
      BinaryName = %[2]q
`, r.Name, r.BinaryName)
	}
	return b.String()
}

// ContainerdRuntime is a runtime handler to register in a bare containerd's
// CRI plugin, run by the runc shim with BinaryName as its OCI runtime.
type ContainerdRuntime struct {
	Name, BinaryName string
}

// Containerd is a containerd started alone, without a kubelet: enough for
// a CRI client's Status call (doctor's live runtime checks).
type Containerd struct {
	// Socket is its CRI (and containerd API) socket.
	Socket string
	// Config is its config file.
	Config string
}

// StartContainerd starts this machine's containerd with its own state
// directory, runc plus runtimes registered in its CRI plugin, and no CNI
// config (so NetworkReady is false). It stops when t ends. Not root or no
// containerd skips t, or fails it under LLMCTL_TEST_REQUIRE_SERVICES=1.
func StartContainerd(t testing.TB, runtimes ...ContainerdRuntime) *Containerd {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "kubetest containerd: needs root")
		return nil
	}
	bin, err := lookPath("containerd")
	if err != nil {
		testenv.Unavailable(t, "kubetest containerd: containerd not installed (Debian: containerd runc)")
		return nil
	}
	// Short: a unix socket path has a 108-byte limit, and t.TempDir's
	// names carry the test's.
	dir, err := os.MkdirTemp("", "llkt-ctd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	cni := filepath.Join(dir, "cni")
	if err := os.MkdirAll(cni, 0o755); err != nil {
		t.Fatal(err)
	}
	c := &Containerd{Socket: filepath.Join(dir, "containerd.sock"), Config: filepath.Join(dir, "containerd.toml")}
	conf := containerdConf(containerdParams{dir: dir, socket: c.Socket, cniBin: cni, cniConf: cni, runtimes: runtimes})
	if err := os.WriteFile(c.Config, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "containerd.log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := nodeCmd(bin, "--config", c.Config)
	cmd.Stdout, cmd.Stderr = log, log
	sp := newSpawner()
	err = sp.start(cmd)
	if err != nil {
		sp.close()
		log.Close()
		t.Fatalf("kubetest: start containerd: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		sp.close()
		log.Close()
		// containerd may leave its state's mounts behind; unmount before
		// the directory goes.
		_ = syscall.Unmount(filepath.Join(dir, "containerd-state"), syscall.MNT_DETACH)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		conn, err := net.Dial("unix", c.Socket)
		if err == nil {
			conn.Close()
			return c
		}
		select {
		case err := <-done:
			done <- err // for the cleanup
			t.Fatalf("kubetest: containerd exited: %v: %s", err, logTail(logPath, 1500))
		case <-ctx.Done():
			t.Fatalf("kubetest: containerd socket: %v: %s", errors.Join(ctx.Err(), err), logTail(logPath, 1500))
		case <-time.After(100 * time.Millisecond):
		}
	}
}
