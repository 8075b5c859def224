//go:build cgo

package preflight_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"github.com/llmctl/llmctl/pkg/gpu/gonvml"
	"github.com/llmctl/llmctl/pkg/preflight"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const gib = 1 << 30

// rtx4090 is a consumer board as go-nvml's mock server builds it, made
// deterministic (the mock draws random UUIDs) and given the queries the
// server leaves unset: bare metal answers them all.
func rtx4090(t testing.TB) *server.Server {
	t.Helper()
	s, err := server.New(
		server.WithGPUs(gpus.Config{Name: "NVIDIA GeForce RTX 4090", Architecture: nvml.DEVICE_ARCH_ADA, MemoryMB: 24564, CudaMajor: 8, CudaMinor: 9}),
		server.WithDriverVersion("550.54.15"), server.WithNVMLVersion("12.550.54.15"), server.WithCUDADriverVersion(12040))
	if err != nil {
		t.Fatal(err)
	}
	d := s.Devices[0].(*server.Device)
	d.UUID = "GPU-00000000-4090-0000-0000-000000000000"
	d.MemoryInfo.Free = 22 * gib
	d.MemoryInfo.Used = d.MemoryInfo.Total - d.MemoryInfo.Free
	d.GetEccModeFunc = func() (nvml.EnableState, nvml.EnableState, nvml.Return) {
		return 0, 0, nvml.ERROR_NOT_SUPPORTED // GeForce boards have no ECC
	}
	d.GetTotalEccErrorsFunc = func(nvml.MemoryErrorType, nvml.EccCounterType) (uint64, nvml.Return) {
		return 0, nvml.ERROR_NOT_SUPPORTED
	}
	d.GetRemappedRowsFunc = func() (int, int, bool, bool, nvml.Return) { return 0, 0, false, false, nvml.SUCCESS }
	d.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 41, nvml.SUCCESS }
	d.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{Gpu: 3}, nvml.SUCCESS }
	d.GetPowerUsageFunc = func() (uint32, nvml.Return) { return 23000, nvml.SUCCESS }
	return s
}

// wslGPU is the same board seen through WSL2's paravirtualised NVML: most
// health queries answer "Not Supported", and MIG/temperature too.
func wslGPU(t *testing.T) *server.Server {
	s := rtx4090(t)
	d := s.Devices[0].(*server.Device)
	ns := nvml.ERROR_NOT_SUPPORTED
	d.GetMigModeFunc = func() (int, int, nvml.Return) { return 0, 0, ns }
	d.GetRemappedRowsFunc = func() (int, int, bool, bool, nvml.Return) { return 0, 0, false, false, ns }
	d.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 0, ns }
	d.GetPowerUsageFunc = func() (uint32, nvml.Return) { return 0, ns }
	return s
}

// initFails is an NVML whose nvmlInit returns r. Only Init is set: the probe
// must not call anything else (the mock would panic).
func initFails(r nvml.Return) nvml.Interface {
	return &mock.Interface{InitFunc: func() nvml.Return { return r }}
}

// fixedDisk keeps golden files independent of the machine's disk.
func fixedDisk(string) (uint64, uint64, error) { return 200 * gib, 500 * gib, nil }

type fixtureCase struct {
	name string
	nvml nvml.Interface
	want map[string]preflight.Verdict
	// mention: substrings the failing checks' message or remedy must contain.
	mention map[string]string
	fix     string
}

func fixtureCases(t *testing.T) []fixtureCase {
	return []fixtureCase{
		{name: "healthy-k3s", nvml: rtx4090(t),
			want: map[string]preflight.Verdict{
				"host.kernel": preflight.Pass, "host.wsl": preflight.Pass, "host.cgroup": preflight.Pass, "host.swap": preflight.Pass,
				"gpu.nvml": preflight.Pass, "gpu.driver": preflight.Pass, "gpu.devices": preflight.Pass, "gpu.health": preflight.Pass,
				"runtime.nvidia-binary": preflight.Pass, "runtime.k3s-containerd": preflight.Pass, "runtime.systemd-cgroup": preflight.Pass,
				"runtime.template": preflight.Pass, "runtime.dev-char": preflight.Pass, "model.fit": preflight.Pass,
			}},
		{name: "wsl2-no-systemd", nvml: wslGPU(t),
			want: map[string]preflight.Verdict{
				"host.wsl": preflight.Pass, "host.wsl-systemd": preflight.Fail, "host.cgroup": preflight.Warn, "host.swap": preflight.Warn,
				"gpu.nvml": preflight.Pass, "gpu.devices": preflight.Pass, "gpu.health": preflight.Pass,
				"runtime.nvidia-binary": preflight.Fail, "runtime.k3s-containerd": preflight.Skip,
			},
			mention: map[string]string{"host.wsl-systemd": "systemd=true", "host.cgroup": ".wslconfig"}},
		{name: "runtime-system-only", nvml: rtx4090(t),
			want: map[string]preflight.Verdict{
				"runtime.nvidia-binary": preflight.Pass, "runtime.k3s-containerd": preflight.Fail, "runtime.systemd-cgroup": preflight.Skip,
			},
			mention: map[string]string{"runtime.k3s-containerd": "ignores /etc/containerd/config.toml"},
			fix:     "containerd-template"},
		{name: "v3-no-systemdcgroup", nvml: rtx4090(t),
			want: map[string]preflight.Verdict{
				"runtime.k3s-containerd": preflight.Pass, "runtime.systemd-cgroup": preflight.Fail, "runtime.template": preflight.Warn,
				"runtime.dev-char": preflight.Warn,
			},
			mention: map[string]string{"runtime.systemd-cgroup": "SystemdCgroup = true", "runtime.template": `{{ template "base" . }}`}},
		{name: "no-driver", nvml: initFails(nvml.ERROR_DRIVER_NOT_LOADED),
			want: map[string]preflight.Verdict{
				"gpu.nvml": preflight.Fail, "gpu.driver": preflight.Skip, "gpu.devices": preflight.Skip,
				"runtime.nvidia-binary": preflight.Pass, "model.fit": preflight.Pass, // falls back to RAM
			},
			mention: map[string]string{"gpu.nvml": "modprobe nvidia"}},
		{name: "rm-mismatch", nvml: initFails(nvml.ERROR_LIB_RM_VERSION_MISMATCH),
			want:    map[string]preflight.Verdict{"gpu.nvml": preflight.Fail, "gpu.devices": preflight.Skip},
			mention: map[string]string{"gpu.nvml": "reboot"}},
	}
}

// TestFixtures runs every check but the cluster's over each fixture tree with
// a go-nvml mock, asserts the verdicts that define the fixture, and compares
// the whole report with a golden JSON file (go test -update rewrites them).
func TestFixtures(t *testing.T) {
	for _, c := range fixtureCases(t) {
		t.Run(c.name, func(t *testing.T) {
			root := copyTree(t, filepath.Join("testdata", c.name))
			preflight.WriteTestGGUF(t, root)
			env := &preflight.Env{Root: root, GPU: gonvml.New(c.nvml), Model: filepath.Join(root, "model.gguf"), Context: 8192, Statfs: fixedDisk}
			checks, err := preflight.Select(preflight.All(), nil, []string{"cluster"})
			if err != nil {
				t.Fatal(err)
			}
			rep := preflight.Run(context.Background(), env, checks, preflight.RunOptions{})
			got := map[string]preflight.Result{}
			for _, r := range rep.Results {
				got[r.ID] = r
			}
			for id, v := range c.want {
				if got[id].Verdict != v {
					t.Errorf("%s = %s (%s), want %s\n  evidence: %v", id, got[id].Verdict, got[id].Message, v, got[id].Evidence)
				}
			}
			for id, s := range c.mention {
				if r := got[id]; !strings.Contains(r.Message+"\n"+r.Remedy, s) {
					t.Errorf("%s does not mention %q: %s / %s", id, s, r.Message, r.Remedy)
				}
			}
			var fixes []string
			for _, f := range rep.Fixes() {
				fixes = append(fixes, f.ID)
			}
			if strings.Join(fixes, ",") != c.fix {
				t.Errorf("fixes offered %v, want %q", fixes, c.fix)
			}
			golden(t, filepath.Join("testdata", "golden", c.name+".json"), rep)
		})
	}
}

// copyTree copies a fixture into a temp dir so fixes can write, and so the
// model file need not live in the repository.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	return copyTreeInto(t, src, t.TempDir())
}

func copyTreeInto(t testing.TB, src, dst string) string {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		case d.Type()&os.ModeSymlink != 0: // dev/char links, libnvidia-ml.so.1
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func golden(t *testing.T, path string, rep preflight.Report) {
	t.Helper()
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(want) != string(b) {
		t.Errorf("report differs from %s (go test -update rewrites it):\n%s", path, diffLines(string(want), string(b)))
	}
}

func diffLines(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for i := range max(len(al), len(bl)) {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			out = append(out, fmt.Sprintf("line %d:\n- %s\n+ %s", i+1, x, y))
		}
		if len(out) > 10 {
			break
		}
	}
	return strings.Join(out, "\n")
}

// TestContainerdTemplateFix applies the fix offered for the runtime-only-in-
// system-containerd fixture and checks what it wrote: the base template, the
// nvidia runtime for the config's layout, runc's SystemdCgroup, and that the
// previous template was backed up.
func TestContainerdTemplateFix(t *testing.T) {
	root := copyTree(t, filepath.Join("testdata", "runtime-system-only"))
	tmpl := filepath.Join(root, "var/lib/rancher/k3s/agent/etc/containerd/config.toml.tmpl")
	if err := os.WriteFile(tmpl, []byte("{{ template \"base\" . }}\n# mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := &preflight.Env{Root: root, GPU: gonvml.New(rtx4090(t)), Statfs: fixedDisk}
	checks, _ := preflight.Select(preflight.All(), []string{"runtime.k3s-containerd"}, nil)
	rep := preflight.Run(context.Background(), env, checks, preflight.RunOptions{})
	var log strings.Builder
	res := preflight.ApplyFixes(context.Background(), rep, &log, func(*preflight.Fix) (bool, error) { return true, nil })
	if len(res) != 1 || !res[0].Applied {
		t.Fatalf("fix results %+v\n%s", res, log.String())
	}
	got, _ := os.ReadFile(tmpl)
	for _, want := range []string{"{{ template \"base\" . }}\n# mine\n", `[plugins."io.containerd.grpc.v1.cri".containerd.runtimes."nvidia".options]`, `BinaryName = "/usr/bin/nvidia-container-runtime"`, "SystemdCgroup = true"} {
		if !strings.Contains(string(got), want) {
			t.Errorf("template lacks %q:\n%s", want, got)
		}
	}
	backups, _ := filepath.Glob(tmpl + ".bak-*")
	if len(backups) != 1 {
		t.Fatalf("backups %v, want one", backups)
	}
	if b, _ := os.ReadFile(backups[0]); string(b) != "{{ template \"base\" . }}\n# mine\n" {
		t.Errorf("backup holds %q", b)
	}
	if !strings.Contains(log.String(), "fix containerd-template") || !strings.Contains(log.String(), "restart K3s") {
		t.Errorf("fix log:\n%s", log.String())
	}
	// The template minus K3s's Go template call must be a valid containerd
	// config with the runtime: what K3s renders from it.
	rendered := strings.Replace(string(got), `{{ template "base" . }}`, mustRead(t, filepath.Join(root, "var/lib/rancher/k3s/agent/etc/containerd/config.toml")), 1)
	if err := os.WriteFile(filepath.Join(root, "var/lib/rancher/k3s/agent/etc/containerd/config.toml"), []byte(rendered), 0o644); err != nil {
		t.Fatal(err)
	}
	env2 := &preflight.Env{Root: root, GPU: gonvml.New(rtx4090(t)), Statfs: fixedDisk}
	checks, _ = preflight.Select(preflight.All(), []string{"runtime.k3s-containerd", "runtime.systemd-cgroup"}, nil)
	for _, r := range preflight.Run(context.Background(), env2, checks, preflight.RunOptions{}).Results {
		if r.Verdict != preflight.Pass {
			t.Errorf("after the fix %s = %s: %s %v", r.ID, r.Verdict, r.Message, r.Evidence)
		}
	}
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
