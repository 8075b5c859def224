package preflight

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestIniValue(t *testing.T) {
	conf := "# wsl.conf\n[automount]\nenabled = true\n\n[Boot]\nsystemd = true # since WSL 0.67.6\ncommand=\"echo hi\"\n[network]\nsystemd=false\n"
	if v, ok := iniValue(conf, "boot", "systemd"); !ok || v != "true" {
		t.Errorf("[boot] systemd = %q %t", v, ok)
	}
	if _, ok := iniValue(conf, "boot", "missing"); ok {
		t.Error("found a missing key")
	}
	if v, _ := iniValue(conf, "network", "systemd"); v != "false" {
		t.Errorf("[network] systemd = %q: sections must not bleed", v)
	}
}

// FuzzIniValue: any wsl.conf content parses without panicking, and a value
// found never carries a comment or surrounding space.
func FuzzIniValue(f *testing.F) {
	f.Add("[boot]\nsystemd=true\n")
	f.Add("[boot]\nsystemd = true ; comment\n[x]\n")
	f.Add("[\n=\n[boot\nsystemd")
	f.Fuzz(func(t *testing.T, conf string) {
		if v, ok := iniValue(conf, "boot", "systemd"); ok && (v != strings.TrimSpace(v) || strings.ContainsAny(v, "#;\n")) {
			t.Fatalf("value %q", v)
		}
	})
}

func TestPluginLogFailures(t *testing.T) {
	log := "I1127 23:00:00 main.go:1] Starting NVIDIA device plugin\n" +
		"E1127 23:00:01 factory.go:112] could not load NVML library: libnvidia-ml.so.1: cannot open shared object file\n" +
		"E1127 23:00:01 main.go:2] Failed to initialize NVML: ERROR_LIBRARY_NOT_FOUND\n"
	got := matchFailures(log, pluginLogFailures)
	if len(got) != 2 || got[0].pattern != "could not load NVML library" || got[1].pattern != "Failed to initialize NVML" {
		t.Fatalf("matched %v", got)
	}
	if l := lineWith(log, "Failed to initialize NVML"); !strings.HasPrefix(l, "E1127") {
		t.Errorf("evidence line %q", l)
	}
	if got := matchFailures("I1127 No devices found. Waiting indefinitely.", pluginLogFailures); len(got) != 1 || !strings.Contains(got[0].remedy, GPUPresentLabel) {
		t.Errorf("no devices: %v", got)
	}
	if got := matchFailures("all good", pluginLogFailures); len(got) != 0 {
		t.Errorf("healthy log matched %v", got)
	}
}

func TestDiagnosePodOthers(t *testing.T) {
	cfgErr := corev1.Pod{}
	cfgErr.Name, cfgErr.Namespace = "gw", "llmctl"
	cfgErr.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "gateway",
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CreateContainerConfigError", Message: `secret "llmctl-admin" not found`}}}}
	pp, ok := diagnosePod(cfgErr, nil)
	if !ok || pp.verdict != Fail || !strings.Contains(strings.Join(pp.evidence, ""), `secret "llmctl-admin" not found`) {
		t.Errorf("config error: %+v", pp)
	}
	healthy := corev1.Pod{}
	healthy.Status.Phase = corev1.PodRunning
	healthy.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	if _, ok := diagnosePod(healthy, nil); ok {
		t.Error("a Running, Ready pod has a problem")
	}
}
