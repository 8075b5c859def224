package preflight

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/llmctl/llmctl/pkg/preflight/cri"
	"github.com/llmctl/llmctl/pkg/preflight/facts"
)

// The live checks: what the running containerd says over its CRI socket,
// which is what the kubelet gets, whatever the config files on disk say.
func criChecks() []Check {
	return []Check{
		{ID: "runtime.cri-status", Category: CatRuntime, Title: "Node's container runtime is ready (CRI status)", Run: checkCRIStatus},
		{ID: "runtime.cri-runtimes", Category: CatRuntime, Title: "Runtimes containerd registered have their binaries", Run: checkCRIRuntimes},
	}
}

// criFacts is one verbose Status call per run, shared by the live checks.
type criFacts struct {
	socket string
	status cri.Status
	// skip says why there was no live reading to try; err why it failed.
	skip string
	err  error
}

// searchPath is where a runtime named without a directory is looked up:
// containerd's usual PATH and the NVIDIA toolkit's directories.
func searchPath() []string {
	return []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/nvidia/toolkit"}
}

func (e *Env) criStatus(ctx context.Context) *criFacts {
	e.facts.criOnce.Do(func() {
		f := &e.facts.cri
		switch {
		case e.CRISocket != "":
			f.socket = e.CRISocket
		case filepath.Clean(e.Root) != "/":
			f.skip = "--root is a filesystem tree, not this machine's containerd: the live CRI reading needs --cri-socket"
			return
		default:
			for _, s := range facts.ContainerdSockets() {
				if fi, err := os.Stat(s); err == nil && fi.Mode()&fs.ModeSocket != 0 {
					f.socket = s
					break
				}
			}
			if f.socket == "" {
				f.skip = "no containerd socket at " + strings.Join(facts.ContainerdSockets(), " or ") +
					": only the config files were read (runtime.k3s-containerd); --cri-socket names another"
				return
			}
		}
		cctx, cancel := context.WithTimeout(ctx, e.CallTimeout)
		defer cancel()
		f.status, f.err = cri.ReadStatus(cctx, f.socket)
	})
	return &e.facts.cri
}

// criUnreachable explains a failed Status call in the user's terms.
func criUnreachable(f *criFacts) Outcome {
	ev := []string{f.err.Error()}
	msg := "cannot read the container runtime's status at " + f.socket
	switch {
	case errors.Is(f.err, cri.ErrNoConfig):
		return warn("the runtime at "+f.socket+" answered, but its status carries no readable CRI config",
			"check that it is containerd 1.6 or newer (`containerd --version`)", ev...)
	case strings.Contains(f.err.Error(), "no such file or directory"):
		return warn("no socket at "+f.socket, "start containerd (K3s: `sudo systemctl start k3s`), or name its socket with --cri-socket", ev...)
	case strings.Contains(f.err.Error(), "permission denied"):
		return warn(msg+": permission denied", "run doctor as root (`sudo llmctl doctor`): the socket is root's", ev...)
	case status.Code(f.err) == codes.Unimplemented:
		return warn(msg+": it does not serve the CRI v1 API",
			"enable containerd's CRI plugin (remove \"cri\" from disabled_plugins in its config.toml) and restart containerd; the kubelet needs it too", ev...)
	}
	return warn(msg, "check that containerd (K3s: `sudo systemctl status k3s`) is running, or name its socket with --cri-socket", ev...)
}

func checkCRIStatus(ctx context.Context, e *Env) Outcome {
	f := e.criStatus(ctx)
	if f.skip != "" {
		return skip(f.skip)
	}
	if f.err != nil {
		return criUnreachable(f)
	}
	ev := []string{"socket: " + f.socket}
	for _, c := range f.status.Conditions {
		line := evf("%s=%t", c.Type, c.Ready)
		if c.Reason != "" || c.Message != "" {
			line += evf(" (%s: %s)", c.Reason, c.Message)
		}
		ev = append(ev, line)
	}
	if f.status.HasConfig {
		ev = append(ev, evf("runtimes: %s (default %s)", listOr(f.status.Config.RuntimeNames(), "none"), f.status.Config.DefaultRuntime))
	}
	if c, ok := f.status.Condition("RuntimeReady"); !ok || !c.Ready {
		return fail("the container runtime is not ready (RuntimeReady is not true): no pod starts on this node",
			"read containerd's log (`journalctl -u containerd`; K3s: `journalctl -u k3s`) for the reason, fix it and restart it", ev...)
	}
	if c, ok := f.status.Condition("NetworkReady"); !ok || !c.Ready {
		return warn("the runtime's pod network is not ready (NetworkReady is not true): new pods stay ContainerCreating",
			"the CNI plugin has no config yet: on K3s flannel writes it when the agent starts (`journalctl -u k3s`); elsewhere install a CNI network (its config goes in the CRI plugin's conf_dir, usually /etc/cni/net.d)", ev...)
	}
	return pass("RuntimeReady and NetworkReady via "+f.socket, ev...)
}

// runtimeBinary resolves a runtime's OCI binary on the host: BinaryName,
// or runc for the runc shim without one. found is false when it is missing.
func (e *Env) runtimeBinary(r cri.Runtime) (bin string, found bool) {
	bin = r.BinaryName
	if bin == "" {
		if r.Type != "" && r.Type != "io.containerd.runc.v2" {
			return "", true // another shim (kata, gVisor): its binaries are its own business
		}
		bin = "runc"
	}
	if path.IsAbs(bin) {
		return bin, e.executable(bin)
	}
	for _, d := range searchPath() {
		if e.executable(path.Join(d, bin)) {
			return path.Join(d, bin), true
		}
	}
	return bin, false
}

func checkCRIRuntimes(ctx context.Context, e *Env) Outcome {
	f := e.criStatus(ctx)
	switch {
	case f.skip != "":
		return skip(f.skip)
	case f.err != nil:
		return skip("no live CRI reading (see runtime.cri-status)")
	case !f.status.HasConfig:
		return skip("the runtime at " + f.socket + " reports no CRI config (not containerd?)")
	}
	c := f.status.Config
	ev := []string{"socket: " + f.socket}
	var missing []string
	nvidiaMissing := ""
	for _, name := range c.RuntimeNames() {
		r := c.Runtimes[name]
		bin, ok := e.runtimeBinary(r)
		line := evf("%s: runtime_type %q, BinaryName %q", name, r.Type, r.BinaryName)
		if !ok {
			line += " — missing"
			missing = append(missing, evf("%s (%s)", name, bin))
			if name == facts.RuntimeHandler {
				nvidiaMissing = bin
			}
		}
		ev = append(ev, line)
	}
	if nvidiaMissing != "" {
		return fail("containerd registered the "+facts.RuntimeHandler+" runtime, but its binary "+nvidiaMissing+" does not exist: pods with `runtimeClassName: "+facts.RuntimeClass+"` fail to start",
			"install the NVIDIA Container Toolkit (`apt install nvidia-container-toolkit` from NVIDIA's repository) so that "+nvidiaMissing+" exists, or point the "+facts.RuntimeHandler+" runtime's options.BinaryName at an existing nvidia-container-runtime (K3s: in a "+k3sContainerdDir+" template); then restart containerd (K3s: `sudo systemctl restart k3s`)", ev...)
	}
	if len(missing) > 0 {
		return fail("containerd registered runtimes whose binaries do not exist: "+strings.Join(missing, ", "),
			"install the missing runtime, or fix or remove its options.BinaryName in containerd's config and restart containerd; pods whose RuntimeClass names that handler fail to start", ev...)
	}
	if _, ok := c.Runtimes[facts.RuntimeHandler]; !ok {
		if e.gpuExpected(ctx) {
			return fail("the running containerd has no "+facts.RuntimeHandler+" runtime: GPU pods cannot start",
				"install nvidia-container-toolkit and restart K3s (`sudo systemctl restart k3s`): K3s registers the runtime when it finds the binary at start; for another containerd, `sudo nvidia-ctk runtime configure --runtime=containerd` and restart it", ev...)
		}
		return pass(fmt.Sprintf("every registered runtime's binary exists (%s; no %s runtime, no GPU here)", strings.Join(c.RuntimeNames(), ", "), facts.RuntimeHandler), ev...)
	}
	bin, _ := e.runtimeBinary(c.Runtimes[facts.RuntimeHandler])
	return pass(facts.RuntimeHandler+" runtime → "+bin, ev...)
}
