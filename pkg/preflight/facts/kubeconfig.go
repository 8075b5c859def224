package facts

import (
	"errors"
	"os"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"
)

// ErrNoKubeconfig means no kubeconfig was found anywhere llmctl looks. Its
// message names every place, so the user knows what to create or pass.
var ErrNoKubeconfig = errors.New("no kubeconfig: not given by --kubeconfig or KUBECONFIG, and neither " + K3sKubeconfig + " nor ~/.kube/config exists")

// KubeconfigOrder is the order FindKubeconfig tries, for help texts.
const KubeconfigOrder = "--kubeconfig, then $KUBECONFIG, then " + K3sKubeconfig + ", then ~/.kube/config"

// FindKubeconfig is llmctl's one kubeconfig order, for doctor, up, down and
// top alike: --kubeconfig (flag), then KUBECONFIG (env, a path list), then
// K3s's k3s.yaml under root when it exists (on a K3s box it is the cluster
// llmctl manages, even when ~/.kube/config names another), then
// ~/.kube/config (only when root is "/": a mounted image's cluster is not
// the user's). It returns the loading rules and where they came from, or
// ErrNoKubeconfig. The caller passes env and home so this package reads no
// process state.
func FindKubeconfig(root, flag, env, home string) (*clientcmd.ClientConfigLoadingRules, string, error) {
	if root == "" {
		root = "/"
	}
	rules := &clientcmd.ClientConfigLoadingRules{}
	switch {
	case flag != "":
		rules.ExplicitPath = flag
	case env != "":
		rules.Precedence = filepath.SplitList(env)
		return rules, "KUBECONFIG=" + env, nil
	default:
		k3s := filepath.Join(root, K3sKubeconfig)
		homeFile := filepath.Join(home, ".kube", "config")
		if _, err := os.Stat(k3s); err == nil {
			rules.ExplicitPath = k3s
		} else if root == "/" && home != "" && exists(homeFile) {
			rules.ExplicitPath = homeFile
		} else {
			return nil, "", ErrNoKubeconfig
		}
	}
	return rules, rules.ExplicitPath, nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
