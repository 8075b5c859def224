package preflight

import (
	"strings"
	"testing"

	"github.com/llmctl/llmctl/pkg/preflight/facts"
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
	if got := matchFailures("I1127 No devices found. Waiting indefinitely.", pluginLogFailures); len(got) != 1 || !strings.Contains(got[0].remedy, facts.GPUPresentLabel) {
		t.Errorf("no devices: %v", got)
	}
	if got := matchFailures("all good", pluginLogFailures); len(got) != 0 {
		t.Errorf("healthy log matched %v", got)
	}
}
