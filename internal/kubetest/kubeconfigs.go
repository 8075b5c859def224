package kubetest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/llmctl/llmctl/pkg/preflight/facts"
)

// Kubeconfig candidates, in llmctl's one order (facts.FindKubeconfig).
const (
	FromFlag = "flag" // --kubeconfig
	FromEnv  = "env"  // $KUBECONFIG
	FromK3s  = "k3s"  // facts.K3sKubeconfig (under a root)
	FromHome = "home" // ~/.kube/config
)

// KubeconfigCase is one row of the precedence table every command is tested
// against: which candidates exist, and which one must win ("" means none:
// the command must say there is no kubeconfig).
type KubeconfigCase struct {
	Name string
	Have []string
	Want string
}

// KubeconfigCases is the precedence table shared by facts' own test and the
// tests of doctor, up, down and top, so they cannot drift apart.
func KubeconfigCases() []KubeconfigCase {
	return []KubeconfigCase{
		{"nothing", nil, ""},
		{"home only", []string{FromHome}, FromHome},
		{"k3s beats home", []string{FromK3s, FromHome}, FromK3s},
		{"env beats k3s and home", []string{FromEnv, FromK3s, FromHome}, FromEnv},
		{"env alone", []string{FromEnv}, FromEnv},
		{"env beats home", []string{FromEnv, FromHome}, FromEnv},
		{"flag beats env and home", []string{FromFlag, FromEnv, FromHome}, FromFlag},
		{"flag beats all", []string{FromFlag, FromEnv, FromK3s, FromHome}, FromFlag},
		{"flag beats home", []string{FromFlag, FromHome}, FromFlag},
	}
}

// DeadPort is the loopback port the candidate's kubeconfig points at: each
// candidate names its own refused port, so whichever kubeconfig a command
// used shows in its error ("127.0.0.1:2") without a cluster.
func DeadPort(candidate string) int {
	return map[string]int{FromFlag: 1, FromEnv: 2, FromK3s: 3, FromHome: 4}[candidate]
}

// KubeconfigFiles lays out c's candidates: under root the K3s file, under
// home ~/.kube/config, and separate files for the flag and the environment.
// It returns the --kubeconfig and KUBECONFIG values ("" where c has none).
func KubeconfigFiles(t testing.TB, c KubeconfigCase, root, home string) (flag, env string) {
	t.Helper()
	dir := t.TempDir()
	paths := map[string]string{
		FromFlag: filepath.Join(dir, "flag.yaml"),
		FromEnv:  filepath.Join(dir, "env.yaml"),
		FromK3s:  filepath.Join(root, facts.K3sKubeconfig),
		FromHome: filepath.Join(home, ".kube", "config"),
	}
	for _, h := range c.Have {
		p := paths[h]
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(DeadKubeconfig(DeadPort(h))), 0o600); err != nil {
			t.Fatal(err)
		}
		switch h {
		case FromFlag:
			flag = p
		case FromEnv:
			env = p
		}
	}
	return flag, env
}

// DeadKubeconfig is a kubeconfig for a server nothing listens on: 127.0.0.1:port.
func DeadKubeconfig(port int) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: dead
  cluster:
    server: https://127.0.0.1:%d
    insecure-skip-tls-verify: true
contexts:
- name: dead
  context: {cluster: dead, user: u}
current-context: dead
users:
- name: u
  user: {token: t}
`, port)
}
