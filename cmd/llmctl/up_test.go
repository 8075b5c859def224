package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llmctl/llmctl/internal/kubetest"
	"github.com/llmctl/llmctl/pkg/preflight/facts"
)

func TestUpDryRunPrintsManifests(t *testing.T) {
	out, _, err := run(t, "up", "--dry-run", "--set", "gpuBackend.enabled=true")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kind: Deployment", "name: llmctl-gateway-gpu", "nvidia.com/gpu: 1", "kind: Ingress"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry-run output lacks %q", want)
		}
	}
	if strings.Contains(out, "kind: Secret") {
		t.Error("dry-run printed the Secret without --show-secrets")
	}
}

func TestUpRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("replicaCount: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"up", "--dry-run", "--set", "replicaCount=lots"}, "replicaCount"},
		{[]string{"up", "--dry-run", "-f", bad}, "bad.yaml"},
		{[]string{"up", "--dry-run", "-f", filepath.Join(dir, "missing.yaml")}, "missing.yaml"},
		{[]string{"up", "--release", "Not_A_Name"}, "--release"},
		{[]string{"up", "--timeout", "0s"}, "--timeout"},
		{[]string{"up", "--show-secrets"}, "--dry-run"},
		{[]string{"up", "-o", "xml"}, "xml"},
		{[]string{"down", "-o", "xml"}, "xml"},
	} {
		_, _, err := run(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: want an error naming %q, got %v", tc.args, tc.want, err)
		}
	}
}

// The commands end to end against a real API server: up installs and says
// where the endpoint and admin key are; down removes it.
func TestUpDownAgainstCluster(t *testing.T) {
	c := kubetest.New(t)
	common := []string{"--kubeconfig", c.Kubeconfig, "-n", "cmdtest"}
	args := append([]string{"up", "--timeout", "90s", "-o", "json",
		"--set", "persistence.enabled=false", "--set", "postgresql.persistence.enabled=false", "--set", "redis.persistence.enabled=false",
		"--set", "ingress.host=llm.example.com"}, common...)
	out, errOut, err := run(t, args...)
	if err != nil {
		t.Fatalf("up: %v\nstderr:\n%s", err, errOut)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("up -o json: %v\n%s", err, out)
	}
	if res["action"] != "installed" || res["endpoint"] != "http://llm.example.com/v1" ||
		!strings.Contains(res["adminKeyCommand"].(string), "kubectl -n cmdtest get secret llmctl-gateway") {
		t.Errorf("up result: %v", res)
	}
	if !strings.Contains(errOut, "preflight: cluster.nodes pass:") {
		t.Errorf("doctor's node check did not gate the install:\n%s", errOut)
	}
	if !strings.Contains(errOut, "preflight: cluster reachable (Kubernetes "+kubetest.Version+")") {
		t.Errorf("no preflight line in stderr:\n%s", errOut)
	}
	if !strings.Contains(errOut, "ready: ") {
		t.Errorf("no progress lines in stderr:\n%s", errOut)
	}

	out, _, err = run(t, append([]string{"up"}, common...)...)
	if err != nil {
		t.Fatalf("second up: %v", err)
	}
	if !strings.HasPrefix(out, "upgraded llmctl (revision 2, chart 0.1.0) in namespace cmdtest: ready\n") {
		t.Errorf("second up output:\n%s", out)
	}

	out, _, err = run(t, append([]string{"down"}, common...)...)
	if err != nil {
		t.Fatalf("down: %v", err)
	}
	if out != "uninstalled llmctl from namespace cmdtest\n" {
		t.Errorf("down output: %q", out)
	}
	out, _, err = run(t, append([]string{"down"}, common...)...)
	if err != nil || !strings.Contains(out, "nothing to uninstall") {
		t.Errorf("second down: %v %q", err, out)
	}
}

func TestUpPreflightStopsOnUnreachableCluster(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\ncontexts:\n- name: c\n  context: {cluster: c, user: u}\nusers:\n- name: u\n  user: {token: x}\ncurrent-context: c\n"
	if err := os.WriteFile(kc, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := run(t, "up", "--kubeconfig", kc)
	if err == nil || !strings.Contains(err.Error(), "preflight: cluster unreachable") || !strings.Contains(err.Error(), "--skip-preflight") {
		t.Fatalf("want a preflight failure, got %v", err)
	}
}

// TestRemoteCommand: up's "manage:" line reaches the admin API through the
// Ingress, or through the port-forward the endpoint names.
func TestRemoteCommand(t *testing.T) {
	const key = "kubectl -n ns get secret llmctl-gateway -o jsonpath='{.data.admin-key}' | base64 -d"
	got := remoteCommand("https://llm.example.com/v1", key)
	if want := `llmctl tenants list --server https://llm.example.com --api-key "$(` + key + `)"`; got != want {
		t.Errorf("ingress:\n got %s\nwant %s", got, want)
	}
	got = remoteCommand("kubectl -n ns port-forward svc/llmctl-gateway 8080:80, then http://127.0.0.1:8080/v1", key)
	if !strings.HasPrefix(got, "llmctl tenants list --server http://127.0.0.1:8080 --api-key") ||
		!strings.HasSuffix(got, `(while "kubectl -n ns port-forward svc/llmctl-gateway 8080:80" runs)`) {
		t.Errorf("port-forward: %s", got)
	}
}

// TestNoKubeconfigIsAnError: with no --kubeconfig, KUBECONFIG, k3s.yaml or
// ~/.kube/config, down and top -n say so instead of asking client-go's
// fallback http://localhost:8080 (llmctl serve's own port).
func TestNoKubeconfigIsAnError(t *testing.T) {
	if _, err := os.Stat(facts.K3sKubeconfig); err == nil {
		t.Skipf("%s exists on this machine", facts.K3sKubeconfig)
	}
	t.Setenv("HOME", t.TempDir())
	t.Setenv("KUBECONFIG", "")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	for _, args := range [][]string{{"down"}, {"top", "--once", "-n", "llmctl"}} {
		_, _, err := run(t, args...)
		if !errors.Is(err, facts.ErrNoKubeconfig) || !strings.Contains(err.Error(), "--kubeconfig") {
			t.Errorf("%v: err = %v, want no kubeconfig", args, err)
		}
	}
}
