package preflight

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseContainerdConfigLayouts(t *testing.T) {
	k3s := "var/lib/rancher/k3s/agent/etc/containerd/config.toml"
	cases := []struct {
		file      string
		version   int
		cri       string
		runtimes  string
		nvidiaBin string
		nvSystemd string
		cdi       bool
	}{
		{"healthy-k3s/" + k3s, 3, "io.containerd.cri.v1.runtime", "nvidia nvidia-cdi runc", "/usr/bin/nvidia-container-runtime", "true", true},
		{"runtime-system-only/" + k3s, 2, "io.containerd.grpc.v1.cri", "runc", "", "", false},
		{"runtime-system-only/etc/containerd/config.toml", 2, "io.containerd.grpc.v1.cri", "nvidia", "/usr/bin/nvidia-container-runtime", "true", false},
		{"v3-no-systemdcgroup/" + k3s, 3, "io.containerd.cri.v1.runtime", "nvidia runc", "/usr/bin/nvidia-container-runtime", "unset (false)", true},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", c.file))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := parseContainerdConfig(data)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Version != c.version || cfg.CRIKey != c.cri || cfg.CDI != c.cdi {
				t.Errorf("version %d cri %q cdi %t, want %d %q %t", cfg.Version, cfg.CRIKey, cfg.CDI, c.version, c.cri, c.cdi)
			}
			if got := strings.Join(sortedKeys(cfg.Runtimes), " "); got != c.runtimes {
				t.Errorf("runtimes %q, want %q", got, c.runtimes)
			}
			if nv, ok := cfg.Runtimes["nvidia"]; ok {
				if nv.BinaryName != c.nvidiaBin || boolPtr(nv.SystemdCgroup) != c.nvSystemd {
					t.Errorf("nvidia = %q systemd %s, want %q %s", nv.BinaryName, boolPtr(nv.SystemdCgroup), c.nvidiaBin, c.nvSystemd)
				}
			}
		})
	}
}

func TestParseContainerdConfigV1AndOptions(t *testing.T) {
	cfg, err := parseContainerdConfig([]byte(`
[plugins.cri]
  enable_cdi = true
  cdi_spec_dirs = ["/opt/cdi"]
[plugins.cri.containerd.runtimes.nvidia]
  runtime_type = "io.containerd.runc.v2"
[plugins.cri.containerd.runtimes.nvidia.options]
  BinaryName = "/usr/local/nvidia/toolkit/nvidia-container-runtime"
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Version != 1 || !cfg.CDI || strings.Join(cfg.CDIDirs, ",") != "/opt/cdi" {
		t.Errorf("got %+v", cfg)
	}
	if cfg.Runtimes["nvidia"].BinaryName != "/usr/local/nvidia/toolkit/nvidia-container-runtime" {
		t.Errorf("nvidia = %+v", cfg.Runtimes["nvidia"])
	}
}

func TestParseContainerdConfigErrors(t *testing.T) {
	for in, want := range map[string]string{
		"version = 4\n":                   "unknown version 4",
		"version = \"2\"\n":               "want an integer",
		"[plugins\nversion = 2":           "parse containerd config",
		"version = 2\n[a]\nx=1\n[a]\nx=2": "parse containerd config", // duplicate table: containerd would refuse it too
	} {
		_, err := parseContainerdConfig([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", in, err, want)
		}
	}
}

// FuzzParseContainerdConfig: arbitrary input parses or errors, never panics.
func FuzzParseContainerdConfig(f *testing.F) {
	for _, p := range []string{
		"healthy-k3s/var/lib/rancher/k3s/agent/etc/containerd/config.toml",
		"runtime-system-only/etc/containerd/config.toml",
	} {
		data, err := os.ReadFile(filepath.Join("testdata", p))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("version = 3\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes]\nnvidia = 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := parseContainerdConfig(data)
		if err == nil && (cfg.Version < 1 || cfg.Version > 3) {
			t.Fatalf("accepted version %d", cfg.Version)
		}
	})
}
