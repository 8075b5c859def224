package cri_test

import (
	"errors"
	"os"
	"reflect"
	"testing"

	"github.com/llmctl/llmctl/pkg/preflight/cri"
)

// The config JSON containerd 1.6.20 really returned (captured from
// kubetest.StartContainerd; paths shortened), and the shapes around it.
func TestParseConfig(t *testing.T) {
	real, err := os.ReadFile("testdata/containerd-1.6-config.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, in string
		want     cri.Config
		err      bool
		noConfig bool
	}{
		{name: "containerd 1.6", in: string(real), want: cri.Config{DefaultRuntime: "runc", Runtimes: map[string]cri.Runtime{
			"nvidia": {Type: "io.containerd.runc.v2", BinaryName: "/usr/bin/nvidia-container-runtime"},
			"runc":   {Type: "io.containerd.runc.v2"},
		}}},
		{name: "containerd 2 with CDI and a shim path", in: `{"containerd":{"defaultRuntimeName":"runc","runtimes":{"kata":{"runtimeType":"io.containerd.kata.v2","runtimePath":"/opt/kata/bin/containerd-shim-kata-v2"}}},"enableCDI":true,"cdiSpecDirs":["/etc/cdi","/var/run/cdi"]}`,
			want: cri.Config{DefaultRuntime: "runc", CDI: true, CDIDirs: []string{"/etc/cdi", "/var/run/cdi"},
				Runtimes: map[string]cri.Runtime{"kata": {Type: "io.containerd.kata.v2", Path: "/opt/kata/bin/containerd-shim-kata-v2"}}}},
		{name: "no runtimes", in: `{}`, want: cri.Config{Runtimes: map[string]cri.Runtime{}}},
		{name: "BinaryName not a string", in: `{"containerd":{"runtimes":{"x":{"options":{"BinaryName":7}}}}}`,
			want: cri.Config{Runtimes: map[string]cri.Runtime{"x": {}}}},
		{name: "runtimes not an object", in: `{"containerd":{"runtimes":[1]}}`, err: true},
		{name: "truncated", in: `{"containerd":{"runtimes":`, err: true},
		{name: "not an object", in: `"config"`, err: true, noConfig: true},
		{name: "empty", in: ``, err: true, noConfig: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cri.ParseConfig([]byte(tc.in))
			if tc.err {
				if err == nil {
					t.Fatalf("no error, got %+v", got)
				}
				if errors.Is(err, cri.ErrNoConfig) != tc.noConfig {
					t.Fatalf("ErrNoConfig=%t, want %t: %v", errors.Is(err, cri.ErrNoConfig), tc.noConfig, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// FuzzParseConfig: any bytes give a config or an error, never a panic, and
// every parsed runtime is listed by RuntimeNames exactly once.
func FuzzParseConfig(f *testing.F) {
	if real, err := os.ReadFile("testdata/containerd-1.6-config.json"); err == nil {
		f.Add(real)
	}
	f.Add([]byte(`{"containerd":{"runtimes":{"nvidia":{"options":{"BinaryName":"/x"}}}}}`))
	f.Add([]byte(`{"enableCDI":true,"cdiSpecDirs":null}`))
	f.Add([]byte(`  {`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := cri.ParseConfig(data)
		if err != nil {
			return
		}
		names := c.RuntimeNames()
		if len(names) != len(c.Runtimes) {
			t.Fatalf("%d names for %d runtimes", len(names), len(c.Runtimes))
		}
		for _, n := range names {
			if _, ok := c.Runtimes[n]; !ok {
				t.Fatalf("name %q not in runtimes", n)
			}
		}
	})
}
