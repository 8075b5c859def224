package preflight_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmctl/llmctl/internal/kubetest"
	"github.com/llmctl/llmctl/pkg/preflight"
	"github.com/llmctl/llmctl/pkg/preflight/facts"
)

var deadKubeconfig = kubetest.DeadKubeconfig(1)

func writeFile(t *testing.T, p, s string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadKubeOrder(t *testing.T) {
	root := t.TempDir()
	if kt := preflight.LoadKube(preflight.KubeOptions{Root: root}); !errors.Is(kt.Err, facts.ErrNoKubeconfig) {
		t.Errorf("nothing anywhere: %v", kt.Err)
	}
	k3s := writeFile(t, filepath.Join(root, facts.K3sKubeconfig), deadKubeconfig)
	if kt := preflight.LoadKube(preflight.KubeOptions{Root: root}); kt.Err != nil || !strings.HasPrefix(kt.Source, k3s) {
		t.Errorf("k3s.yaml: %q %v", kt.Source, kt.Err)
	}
	env := writeFile(t, filepath.Join(t.TempDir(), "env.yaml"), deadKubeconfig)
	if kt := preflight.LoadKube(preflight.KubeOptions{Root: root, EnvPath: env}); kt.Err != nil || !strings.Contains(kt.Source, "KUBECONFIG="+env) {
		t.Errorf("KUBECONFIG: %q %v", kt.Source, kt.Err)
	}
	flag := writeFile(t, filepath.Join(t.TempDir(), "flag.yaml"), deadKubeconfig)
	if kt := preflight.LoadKube(preflight.KubeOptions{Root: root, EnvPath: env, Kubeconfig: flag}); kt.Err != nil || !strings.HasPrefix(kt.Source, flag) {
		t.Errorf("--kubeconfig: %q %v", kt.Source, kt.Err)
	}
	bad := writeFile(t, filepath.Join(t.TempDir(), "bad.yaml"), "clusters: [")
	if kt := preflight.LoadKube(preflight.KubeOptions{Kubeconfig: bad}); kt.Err == nil || kt.Client != nil {
		t.Errorf("bad kubeconfig loaded: %v", kt)
	}
}

// TestAPIServerDown: a dead API server fails cluster.api once and the other
// cluster checks skip instead of each waiting for their own timeout.
func TestAPIServerDown(t *testing.T) {
	p := writeFile(t, filepath.Join(t.TempDir(), "dead.yaml"), deadKubeconfig)
	kt := preflight.LoadKube(preflight.KubeOptions{Kubeconfig: p, Timeout: time.Second})
	checks, _ := preflight.Select(preflight.All(), []string{"cluster"}, nil)
	rep := preflight.Run(context.Background(), &preflight.Env{Root: t.TempDir(), Kube: kt, CallTimeout: time.Second}, checks, preflight.RunOptions{})
	for _, r := range rep.Results {
		want := preflight.Skip
		if r.ID == "cluster.api" {
			want = preflight.Fail
		}
		if r.Verdict != want {
			t.Errorf("%s = %s (%s), want %s", r.ID, r.Verdict, r.Message, want)
		}
	}
	if ev := strings.Join(rep.Results[0].Evidence, "\n"); !strings.Contains(ev, "127.0.0.1:1") {
		t.Errorf("api evidence does not name the server: %s", ev)
	}
}

func TestNoClusterConfigured(t *testing.T) {
	checks, _ := preflight.Select(preflight.All(), []string{"cluster.api"}, nil)
	e := &preflight.Env{Root: t.TempDir(), Kube: preflight.KubeTarget{Err: facts.ErrNoKubeconfig}}
	if r := preflight.Run(context.Background(), e, checks, preflight.RunOptions{}).Results[0]; r.Verdict != preflight.Skip {
		t.Errorf("no K3s, no kubeconfig: %s %s", r.Verdict, r.Message)
	}
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "var/lib/rancher/k3s"), 0o755); err != nil {
		t.Fatal(err)
	}
	e = &preflight.Env{Root: root, Kube: preflight.KubeTarget{Err: facts.ErrNoKubeconfig}}
	if r := preflight.Run(context.Background(), e, checks, preflight.RunOptions{}).Results[0]; r.Verdict != preflight.Warn {
		t.Errorf("K3s installed, no kubeconfig: %s %s", r.Verdict, r.Message)
	}
}

// TestAPIServerHangs: an API server that accepts connections and never
// answers costs one call timeout; the verdict names the deadline.
func TestAPIServerHangs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var held []net.Conn // keep them open, say nothing
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	cfg := strings.Replace(deadKubeconfig, "127.0.0.1:1", ln.Addr().String(), 1)
	p := writeFile(t, filepath.Join(t.TempDir(), "hang.yaml"), cfg)
	kt := preflight.LoadKube(preflight.KubeOptions{Kubeconfig: p, Timeout: 300 * time.Millisecond})
	checks, _ := preflight.Select(preflight.All(), []string{"cluster"}, nil)
	rep := preflight.Run(context.Background(), &preflight.Env{Root: t.TempDir(), Kube: kt, CallTimeout: 300 * time.Millisecond}, checks, preflight.RunOptions{})
	api := rep.Results[0]
	if api.Verdict != preflight.Fail || !strings.Contains(strings.Join(api.Evidence, "\n"), "no answer within 300ms") {
		t.Errorf("api: %s %s %v", api.Verdict, api.Message, api.Evidence)
	}
	if rep.Summary.Skip != len(rep.Results)-1 {
		t.Errorf("summary %+v: the other cluster checks should skip", rep.Summary)
	}
}
