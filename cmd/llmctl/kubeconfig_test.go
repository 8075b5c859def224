package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/llmctl/llmctl/internal/kubetest"
	"github.com/llmctl/llmctl/pkg/preflight/facts"
)

// TestKubeconfigOrderAllCommands runs the one precedence table
// (kubetest.KubeconfigCases, also facts' own test) through doctor, up, down
// and top -n. Each candidate kubeconfig names its own refused loopback port,
// so the port in a command's answer says which file it used. up, down and
// top only look at the real /etc/rancher/k3s, so the rows where the K3s
// file decides run through doctor --root only.
func TestKubeconfigOrderAllCommands(t *testing.T) {
	if _, err := os.Stat(facts.K3sKubeconfig); err == nil {
		t.Skipf("%s exists on this machine and would take part", facts.K3sKubeconfig)
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	commands := map[string][]string{
		"up":     {"up", "--timeout", "2s"},
		"down":   {"down"},
		"top":    {"top", "--once", "-n", "llmctl"},
		"doctor": {"doctor", "--only", "cluster.api", "-o", "json"},
	}
	for _, c := range kubetest.KubeconfigCases() {
		for name, args := range commands {
			if name != "doctor" && slices.Contains(c.Have, kubetest.FromK3s) {
				continue
			}
			t.Run(c.Name+"/"+name, func(t *testing.T) {
				root, home := "/", t.TempDir()
				if name == "doctor" && slices.Contains(c.Have, kubetest.FromK3s) {
					root = t.TempDir()
				}
				flag, env := kubetest.KubeconfigFiles(t, c, root, home)
				t.Setenv("HOME", home)
				t.Setenv("KUBECONFIG", env)
				a := slices.Clone(args)
				if flag != "" {
					a = append(a, "--kubeconfig", flag)
				}
				if name == "doctor" {
					a = append(a, "--root", root)
				}
				out, errOut, err := run(t, a...)
				all := fmt.Sprint(out, errOut, err)
				if c.Want == "" {
					if name == "doctor" {
						if !strings.Contains(all, "no kubeconfig") {
							t.Errorf("doctor without a kubeconfig: %s", all)
						}
					} else if !errors.Is(err, facts.ErrNoKubeconfig) {
						t.Errorf("err = %v, want no kubeconfig", err)
					}
					if strings.Contains(all, "localhost:8080") {
						t.Errorf("asked client-go's fallback: %s", all)
					}
					return
				}
				want := fmt.Sprintf("127.0.0.1:%d", kubetest.DeadPort(c.Want))
				if !strings.Contains(all, want) {
					t.Errorf("want the %s kubeconfig (%s) used:\n%s", c.Want, want, all)
				}
			})
		}
	}
}
