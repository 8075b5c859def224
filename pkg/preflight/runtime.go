package preflight

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/llmctl/llmctl/pkg/preflight/facts"
)

// Where K3s keeps its own containerd config. K3s runs its own containerd and
// never reads /etc/containerd/config.toml: the classic trap.
const (
	k3sContainerdDir = facts.K3sContainerdDir
	k3sConfig        = facts.K3sContainerdConfig
	systemConfig     = facts.SystemContainerdConfig
	baseTemplateCall = `{{ template "base" . }}`
)

func runtimeChecks() []Check {
	return append([]Check{
		{ID: "runtime.nvidia-binary", Category: CatRuntime, Title: "nvidia-container-runtime installed", Run: checkRuntimeBinary},
		{ID: "runtime.k3s-containerd", Category: CatRuntime, Title: "K3s containerd has the nvidia runtime", Run: checkK3sContainerd},
		{ID: "runtime.systemd-cgroup", Category: CatRuntime, Title: "nvidia runtime SystemdCgroup matches runc", Run: checkSystemdCgroup},
		{ID: "runtime.template", Category: CatRuntime, Title: "K3s containerd template extends the base", Run: checkTemplate},
		{ID: "runtime.cdi", Category: CatRuntime, Title: "CDI specs present when CDI is used", Run: checkCDI},
		{ID: "runtime.dev-char", Category: CatRuntime, Title: "/dev/char symlinks for NVIDIA devices", Run: checkDevChar},
	}, criChecks()...) // runtime_cri.go
}

// runtimeDirs are where the NVIDIA Container Toolkit installs its runtimes:
// the distro packages and the GPU operator's toolkit container.
var runtimeDirs = []string{"/usr/bin", "/usr/local/bin", "/usr/local/nvidia/toolkit"}

var runtimeNames = []string{"nvidia-container-runtime", "nvidia-container-runtime.cdi", "nvidia-container-runtime-experimental", "nvidia-container-runtime.legacy"}

// runtimeBinaries lists the nvidia runtimes found, as host paths.
func (e *Env) runtimeBinaries() []string {
	var out []string
	for _, d := range runtimeDirs {
		for _, n := range runtimeNames {
			if p := path.Join(d, n); e.executable(p) {
				out = append(out, p)
			}
		}
	}
	return out
}

// k3sInstalled reports whether K3s has ever run here.
func (e *Env) k3sInstalled() bool {
	return e.exists(facts.K3sDataDir) || e.exists(facts.K3sConfigDir)
}

// noGPU is the skip for runtime checks on a host without an NVIDIA GPU.
func (e *Env) noGPU(ctx context.Context) *Outcome {
	if e.gpuExpected(ctx) {
		return nil
	}
	o := skip("no NVIDIA GPU on this host (see gpu.nvml)")
	return &o
}

func checkRuntimeBinary(ctx context.Context, e *Env) Outcome {
	if o := e.noGPU(ctx); o != nil {
		return *o
	}
	found := e.runtimeBinaries()
	if len(found) == 0 {
		return fail("no nvidia-container-runtime in "+strings.Join(runtimeDirs, ", "),
			"install the NVIDIA Container Toolkit (`apt install nvidia-container-toolkit` from NVIDIA's repository), then restart K3s so it detects the runtime: `sudo systemctl restart k3s`")
	}
	return pass("found "+path.Base(found[0]), "found: "+strings.Join(found, ", "))
}

// k3sContainerd loads and parses K3s's rendered containerd config, or returns
// the outcome that explains why it cannot be used.
func (e *Env) k3sContainerd(ctx context.Context) (containerdConfig, *Outcome) {
	if !e.k3sInstalled() {
		o := skip("K3s is not installed (no " + facts.K3sDataDir + ")")
		return containerdConfig{}, &o
	}
	if o := e.noGPU(ctx); o != nil {
		return containerdConfig{}, o
	}
	data, err := e.read(k3sConfig)
	if err != nil {
		o := warn("K3s has not rendered its containerd config",
			"start K3s (`sudo systemctl start k3s`); it writes the config when the agent starts", readErr(k3sConfig, err))
		return containerdConfig{}, &o
	}
	c, err := parseContainerdConfig([]byte(data))
	if err != nil {
		o := fail("K3s's containerd config does not parse: containerd will not start",
			"fix or remove the template under "+k3sContainerdDir+" that produced it, then restart K3s", k3sConfig+": "+err.Error())
		return c, &o
	}
	return c, nil
}

func checkK3sContainerd(ctx context.Context, e *Env) Outcome {
	c, o := e.k3sContainerd(ctx)
	if o != nil {
		return *o
	}
	ev := []string{evf("%s: version %d, runtimes table plugins.%q", k3sConfig, c.Version, c.CRIKey),
		"runtimes: " + listOr(sortedKeys(c.Runtimes), "none")}
	rt, ok := c.Runtimes[facts.RuntimeHandler]
	if !ok {
		fix := e.templateFix(c)
		if sys, err := e.read(systemConfig); err == nil {
			if sc, err := parseContainerdConfig([]byte(sys)); err == nil {
				if _, has := sc.Runtimes[facts.RuntimeHandler]; has {
					ev = append(ev, systemConfig+": has an nvidia runtime")
					out := fail("the nvidia runtime is configured for the system containerd, not K3s's",
						"K3s runs its own containerd and ignores "+systemConfig+" (`nvidia-ctk runtime configure` wrote there). Restart K3s so it detects nvidia-container-runtime (`sudo systemctl restart k3s`), or add it through a K3s template (--fix)", ev...)
					out.Fix = fix
					return out
				}
			}
		}
		out := fail("K3s's containerd has no nvidia runtime",
			"install nvidia-container-toolkit and restart K3s (`sudo systemctl restart k3s`): K3s adds the runtime when it finds the binary at start; or add it through a K3s template (--fix)", ev...)
		out.Fix = fix
		return out
	}
	ev = append(ev, evf("nvidia: runtime_type %q, BinaryName %q", rt.Type, rt.BinaryName))
	if rt.BinaryName == "" {
		return fail("the nvidia runtime has no BinaryName: containers start with plain runc and see no GPU",
			"set options.BinaryName to the nvidia-container-runtime path in the K3s template", ev...)
	}
	if !e.executable(rt.BinaryName) {
		return fail("the nvidia runtime's BinaryName "+rt.BinaryName+" does not exist",
			"reinstall nvidia-container-toolkit, or point BinaryName at an existing runtime", ev...)
	}
	return pass("nvidia runtime → "+rt.BinaryName, ev...)
}

func checkSystemdCgroup(ctx context.Context, e *Env) Outcome {
	c, o := e.k3sContainerd(ctx)
	if o != nil {
		if o.Verdict == Skip {
			return *o
		}
		return skip("no usable K3s containerd config (see runtime.k3s-containerd)")
	}
	nv, ok := c.Runtimes[facts.RuntimeHandler]
	if !ok {
		return skip("no nvidia runtime (see runtime.k3s-containerd)")
	}
	runc, ok := c.Runtimes["runc"]
	ev := []string{evf("nvidia SystemdCgroup: %s", boolPtr(nv.SystemdCgroup))}
	if !ok {
		return warn("no runc runtime to compare with", "", ev...)
	}
	ev = append(ev, evf("runc SystemdCgroup: %s", boolPtr(runc.SystemdCgroup)))
	if nv.systemd() != runc.systemd() {
		return fail(fmt.Sprintf("nvidia runtime SystemdCgroup=%t but runc (what the kubelet expects) has %t", nv.systemd(), runc.systemd()),
			fmt.Sprintf("GPU pods will fail sandbox creation on a cgroup driver mismatch. Set SystemdCgroup = %t under the nvidia runtime's options in a K3s template (%s/config%s.toml.tmpl that starts with %s) and restart K3s", runc.systemd(), k3sContainerdDir, v3Suffix(c.Version), baseTemplateCall), ev...)
	}
	return pass(fmt.Sprintf("SystemdCgroup=%t for both nvidia and runc", nv.systemd()), ev...)
}

func v3Suffix(version int) string {
	if version >= 3 {
		return "-v3"
	}
	return ""
}

func boolPtr(b *bool) string {
	if b == nil {
		return "unset (false)"
	}
	return fmt.Sprint(*b)
}

func checkTemplate(_ context.Context, e *Env) Outcome {
	if !e.k3sInstalled() {
		return skip("K3s is not installed")
	}
	var found []string
	var bad []string
	for _, name := range []string{"config.toml.tmpl", "config-v3.toml.tmpl"} {
		p := k3sContainerdDir + "/" + name
		s, err := e.read(p)
		if err != nil {
			continue
		}
		found = append(found, p)
		if !strings.Contains(s, `template "base"`) {
			bad = append(bad, p)
		}
	}
	if len(found) == 0 {
		return pass("no template: K3s renders its default config")
	}
	if len(bad) > 0 {
		return warn("template replaces K3s's whole containerd config instead of extending it",
			"start the template with "+baseTemplateCall+" and keep only your additions below it; a full copy silently drops K3s's own settings (and their fixes) on every upgrade",
			"without the base template: "+strings.Join(bad, ", "))
	}
	return pass("template extends the base", "templates: "+strings.Join(found, ", "))
}

// cdiInUse reports whether GPU containers get devices through CDI, and why.
func (e *Env) cdiInUse(c *containerdConfig) (bool, string) {
	if s, err := e.read("/etc/nvidia-container-runtime/config.toml"); err == nil {
		for _, l := range strings.Split(s, "\n") {
			k, v, ok := strings.Cut(strings.TrimSpace(l), "=")
			if ok && strings.TrimSpace(k) == "mode" && strings.Trim(strings.TrimSpace(v), `"'`) == "cdi" {
				return true, "/etc/nvidia-container-runtime/config.toml: mode = \"cdi\""
			}
		}
	}
	// K3s also registers an "nvidia-cdi" runtime whenever the .cdi binary
	// exists; that alone uses nothing. What GPU pods run is the nvidia runtime.
	if c != nil {
		if rt, ok := c.Runtimes[facts.RuntimeHandler]; ok && strings.HasSuffix(rt.BinaryName, ".cdi") {
			return true, evf("runtime nvidia uses %s", rt.BinaryName)
		}
	}
	return false, ""
}

func checkCDI(ctx context.Context, e *Env) Outcome {
	if o := e.noGPU(ctx); o != nil {
		return *o
	}
	var cp *containerdConfig
	if c, o := e.k3sContainerd(ctx); o == nil {
		cp = &c
	}
	used, why := e.cdiInUse(cp)
	if !used {
		return skip("CDI is not used by the nvidia runtime")
	}
	dirs := []string{"/etc/cdi", "/var/run/cdi"}
	if cp != nil && len(cp.CDIDirs) > 0 {
		dirs = cp.CDIDirs
	}
	var specs []string
	for _, d := range dirs {
		for _, ext := range []string{"*.yaml", "*.yml", "*.json"} {
			for _, p := range e.glob(d + "/" + ext) {
				if s, err := e.read(p); err == nil && strings.Contains(s, string(facts.GPUResource)) {
					specs = append(specs, p)
				}
			}
		}
	}
	ev := []string{why, "searched: " + strings.Join(dirs, ", ")}
	if len(specs) == 0 {
		return fail("CDI is used but there is no nvidia.com/gpu CDI spec",
			"generate it: `sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml` (again after every driver upgrade; or enable nvidia-cdi-refresh)", ev...)
	}
	return pass("CDI spec: "+strings.Join(specs, ", "), ev...)
}

func checkDevChar(ctx context.Context, e *Env) Outcome {
	mode, _ := e.cgroup()
	if mode != cgroupV2 || e.pid1() != "systemd" {
		return skip("only needed with cgroup v2 under systemd")
	}
	nodes := e.glob("/dev/nvidia*")
	if len(nodes) == 0 {
		if o := e.noGPU(ctx); o != nil {
			return *o
		}
		return skip("no /dev/nvidia* nodes (WSL2 uses /dev/dxg)")
	}
	links := map[string]bool{}
	for _, l := range e.glob("/dev/char/*") {
		if t, err := os.Readlink(e.path(l)); err == nil {
			links[filepath.Base(t)] = true
		}
	}
	var missing []string
	for _, n := range nodes {
		fi, err := os.Lstat(e.path(n))
		if err != nil || fi.IsDir() {
			continue // /dev/nvidia-caps is a directory
		}
		if !links[path.Base(n)] {
			missing = append(missing, n)
		}
	}
	ev := []string{"NVIDIA nodes: " + strings.Join(nodes, ", ")}
	if len(missing) > 0 {
		ev = append(ev, "no /dev/char link for: "+strings.Join(missing, ", "))
		return warn("NVIDIA device nodes lack /dev/char symlinks: GPU containers lose the GPU (\"Failed to initialize NVML: Unknown Error\") after `systemctl daemon-reload`",
			"`sudo nvidia-ctk system create-dev-char-symlinks --create-all`, and make it permanent with the udev rule from the NVIDIA Container Toolkit docs", ev...)
	}
	return pass("every NVIDIA device node has a /dev/char symlink", ev...)
}
