package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llmctl/llmctl/internal/kubetest"
	"github.com/llmctl/llmctl/pkg/preflight"
	"github.com/llmctl/llmctl/pkg/preflight/facts"
)

var updateGolden = flag.Bool("update", false, "rewrite golden files")

const fixtures = "../../pkg/preflight/testdata"

// rtx4090 is what NVML reports on a healthy single-GPU box (recorded shape;
// the NVML path itself is tested with go-nvml's mocks in pkg/preflight).
func rtx4090() preflight.GPUProbe {
	return preflight.StaticProbe(preflight.GPUSnapshot{Init: preflight.InitOK, DriverVersion: "550.54.15", CUDADriverVersion: 12040,
		Devices: []preflight.GPUDevice{{Index: 0, Name: "NVIDIA GeForce RTX 4090", UUID: "GPU-00000000-4090-0000-0000-000000000000",
			Memory:  preflight.Val(preflight.GPUMemory{Total: 24 << 30, Free: 22 << 30}),
			Compute: preflight.Val("8.9"), MIG: preflight.NA[bool]("not supported"), ECC: preflight.NA[bool]("not supported"),
			ECCUncorrected: preflight.NA[uint64]("not supported"), Remapped: preflight.Val(preflight.RemappedRows{}),
			TemperatureC: preflight.Val[uint32](41)}}})
}

// runDoctor runs `doctor args...` with the GPU, cluster and disk replaced.
func runDoctor(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	g := &globals{streams: streams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut}, LogLevel: "info"}
	cmd := newDoctorCmdWith(g, doctorDeps{
		gpu:    rtx4090(),
		kube:   &preflight.KubeTarget{Err: facts.ErrNoKubeconfig},
		statfs: func(string) (uint64, uint64, error) { return 200 << 30, 500 << 30, nil },
	})
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetContext(context.Background())
	err := cmd.Execute()
	return out.String(), err
}

func exitCode(err error) int {
	var ec exitCoder
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *updateGolden {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (go test -update creates it)", err)
	}
	if string(want) != got {
		t.Errorf("output differs from %s (go test -update rewrites it)\n--- want\n%s\n--- got\n%s", p, want, got)
	}
}

func TestDoctorTableGolden(t *testing.T) {
	out, err := runDoctor(t, "", "--root", filepath.Join(fixtures, "v3-no-systemdcgroup"), "--skip", "cluster,model")
	if exitCode(err) != 1 {
		t.Fatalf("exit %d (%v), want 1: a check failed", exitCode(err), err)
	}
	if strings.Contains(out, "\x1b[") {
		t.Error("colour written to a non-terminal")
	}
	checkGolden(t, "doctor-v3-no-systemdcgroup.txt", out)
}

func TestDoctorJSON(t *testing.T) {
	out, err := runDoctor(t, "", "--root", filepath.Join(fixtures, "healthy-k3s"), "--skip", "cluster", "-o", "json")
	if exitCode(err) != 0 {
		t.Fatalf("exit %d (%v), want 0\n%s", exitCode(err), err, out)
	}
	var rep struct {
		Schema  string
		Summary map[string]int
		Results []map[string]any
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if rep.Schema != preflight.Schema || rep.Summary["total"] != len(rep.Results) || rep.Summary["fail"] != 0 || len(rep.Results) != 20 {
		t.Errorf("schema %q summary %v, %d results", rep.Schema, rep.Summary, len(rep.Results))
	}
	for _, r := range rep.Results {
		for _, k := range []string{"id", "category", "title", "verdict", "message"} {
			if s, _ := r[k].(string); s == "" {
				t.Errorf("result %v lacks %q", r["id"], k)
			}
		}
	}
	checkGolden(t, "doctor-healthy-k3s.json", out)
}

func TestDoctorStrictAndOnly(t *testing.T) {
	root := filepath.Join(fixtures, "wsl2-no-systemd")
	out, err := runDoctor(t, "", "--root", root, "--only", "host.cgroup,host.swap")
	if exitCode(err) != 0 || !strings.Contains(out, "2 checks: 0 passed, 2 warnings") {
		t.Fatalf("warnings only: exit %d\n%s", exitCode(err), out)
	}
	if _, err := runDoctor(t, "", "--root", root, "--only", "host.cgroup,host.swap", "--strict"); exitCode(err) != 1 {
		t.Fatalf("--strict with warnings: exit %d, want 1", exitCode(err))
	}
}

func TestDoctorList(t *testing.T) {
	out, err := runDoctor(t, "", "--list", "--only", "runtime")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "runtime.k3s-containerd") || strings.Contains(out, "host.kernel") {
		t.Errorf("list:\n%s", out)
	}
}

func TestDoctorRejectsBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--only", "gpu.nvlm"}, `unknown check or category "gpu.nvlm"`},
		// -o xml is a usage error (exit 2): TestEveryOutputFlagIsShared.
		{[]string{"--yes"}, "--yes only makes sense with --fix"},
		{[]string{"--fix", "-o", "json"}, "--fix is interactive"},
		{[]string{"--root", "/does/not/exist"}, "not a directory"},
		{[]string{"--context", "-5"}, "--context -5"},
		{[]string{"--model", "/does/not/exist.gguf"}, "--model /does/not/exist.gguf: not a readable file"},
	} {
		_, err := runDoctor(t, "", c.args...)
		if err == nil || exitCode(err) != -1 || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err = %v, want %q", c.args, err, c.want)
		}
	}
}

// TestDoctorFix answers the prompt: "n" writes nothing, "y" writes the K3s
// template (and the re-run advice), on a copy of the fixture.
func TestDoctorFix(t *testing.T) {
	root := t.TempDir()
	if err := os.CopyFS(root, os.DirFS(filepath.Join(fixtures, "runtime-system-only"))); err != nil {
		t.Fatal(err)
	}
	tmpl := filepath.Join(root, "var/lib/rancher/k3s/agent/etc/containerd/config.toml.tmpl")
	args := []string{"--root", root, "--only", "runtime", "--fix"}

	out, err := runDoctor(t, "n\n", args...)
	if exitCode(err) != 1 || !strings.Contains(out, "apply containerd-template? [y/N]") || !strings.Contains(out, "skipped") {
		t.Fatalf("answer n: exit %d\n%s", exitCode(err), out)
	}
	if _, err := os.Stat(tmpl); !os.IsNotExist(err) {
		t.Fatalf("answer n wrote the template: %v", err)
	}
	out, _ = runDoctor(t, "y\n", args...)
	if !strings.Contains(out, "wrote /var/lib/rancher/k3s/agent/etc/containerd/config.toml.tmpl") || !strings.Contains(out, "run `llmctl doctor` again") {
		t.Fatalf("answer y:\n%s", out)
	}
	b, err := os.ReadFile(tmpl)
	if err != nil || !strings.HasPrefix(string(b), `{{ template "base" . }}`) || !strings.Contains(string(b), `runtimes."nvidia".options]`) {
		t.Fatalf("template: %v\n%s", err, b)
	}
}

// TestDoctorOnThisMachine runs the real thing (real NVML loader, real
// kubeconfig lookup, real /proc): whatever this host is, doctor reports on
// every category and exits 0 or 1, never with an error.
func TestDoctorOnThisMachine(t *testing.T) {
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "absent")) // never the developer's cluster
	out, _, err := run(t, "doctor", "--skip", "cluster")
	if c := exitCode(err); c != 0 && c != 1 {
		t.Fatalf("doctor errored: %v\n%s", err, out)
	}
	for _, want := range []string{"HOST\n", "GPU\n", "RUNTIME\n", "MODEL\n", "checks:"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestDoctorAgainstCluster runs the real command's kubeconfig loading and
// cluster checks against a throwaway control plane with a KWOK GPU node.
func TestDoctorAgainstCluster(t *testing.T) {
	c := kubetest.New(t)
	t.Setenv("KUBECONFIG", "")
	out, _, err := run(t, "doctor", "--kubeconfig", c.Kubeconfig, "--only", "cluster", "-o", "json")
	if c := exitCode(err); c != 0 && c != 1 {
		t.Fatalf("doctor errored: %v\n%s", err, out)
	}
	var rep preflight.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	got := map[string]preflight.Result{}
	for _, r := range rep.Results {
		got[r.ID] = r
	}
	if r := got["cluster.api"]; r.Verdict != preflight.Pass || !strings.Contains(r.Message, kubetest.Version) {
		t.Errorf("api: %s %s", r.Verdict, r.Message)
	}
	if r := got["cluster.nodes"]; r.Verdict != preflight.Pass {
		t.Errorf("nodes: %s %s", r.Verdict, r.Message)
	}
	if r := got["cluster.gpu-allocatable"]; r.Verdict != preflight.Pass || r.Message != "1 nvidia.com/gpu allocatable" {
		t.Errorf("allocatable: %s %s", r.Verdict, r.Message)
	}
	table, _, _ := run(t, "doctor", "--kubeconfig", c.Kubeconfig, "--only", "cluster")
	t.Logf("llmctl doctor --only cluster:\n%s", table)
}
