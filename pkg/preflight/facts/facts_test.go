package facts_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llmctl/llmctl/internal/kubetest"
	"github.com/llmctl/llmctl/pkg/preflight/facts"
)

func TestFindKubeconfigOrder(t *testing.T) {
	for _, c := range kubetest.KubeconfigCases() {
		t.Run(c.Name, func(t *testing.T) {
			root, home := t.TempDir(), t.TempDir()
			flag, env := kubetest.KubeconfigFiles(t, c, root, home)
			// root "/" is the only root ~/.kube/config counts under, and
			// this machine's own k3s.yaml must not take part: the K3s
			// file is looked up under root, home under home.
			rules, src, err := facts.FindKubeconfig(root, flag, env, home)
			if c.Want == "" {
				if !errors.Is(err, facts.ErrNoKubeconfig) {
					t.Fatalf("err = %v, want ErrNoKubeconfig", err)
				}
				return
			}
			if c.Want == kubetest.FromHome {
				// Under a mounted root the user's own ~/.kube/config does
				// not count (its cluster is not the image's).
				if !errors.Is(err, facts.ErrNoKubeconfig) {
					t.Fatalf("home under a non-/ root: %q %v", src, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{kubetest.FromFlag: flag, kubetest.FromEnv: "KUBECONFIG=" + env,
				kubetest.FromK3s: filepath.Join(root, facts.K3sKubeconfig)}[c.Want]
			if src != want {
				t.Errorf("source %q, want %q", src, want)
			}
			if c.Want == kubetest.FromEnv && (len(rules.Precedence) != 1 || rules.Precedence[0] != env) {
				t.Errorf("KUBECONFIG precedence %v", rules.Precedence)
			}
		})
	}
}

func TestKubeconfigPathList(t *testing.T) {
	env := strings.Join([]string{"/a/one", "/b/two"}, string(filepath.ListSeparator))
	rules, _, err := facts.FindKubeconfig(t.TempDir(), "", env, "")
	if err != nil || len(rules.Precedence) != 2 || rules.Precedence[1] != "/b/two" {
		t.Fatalf("%v %v", rules, err)
	}
}

func TestErrNoKubeconfigNamesEveryPlace(t *testing.T) {
	for _, want := range []string{"--kubeconfig", "KUBECONFIG", facts.K3sKubeconfig, "~/.kube/config"} {
		if !strings.Contains(facts.ErrNoKubeconfig.Error(), want) {
			t.Errorf("message lacks %q", want)
		}
	}
}

func TestDetectWSL(t *testing.T) {
	for _, c := range []struct {
		rel  string
		want facts.WSL
	}{
		{"5.15.153.1-microsoft-standard-WSL2\n", facts.WSL2},
		{"4.19.128-microsoft-standard", facts.WSL2},
		{"6.6.36.3-microsoft-standard-WSL2+", facts.WSL2},
		{"4.4.0-19041-Microsoft", facts.WSL1},
		{"6.1.0-27-amd64", facts.NotWSL},
		{"", facts.NotWSL},
	} {
		if got := facts.DetectWSL(c.rel); got != c.want {
			t.Errorf("%q: %s, want %s", c.rel, got, c.want)
		}
	}
}
