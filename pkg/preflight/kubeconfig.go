package preflight

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// K3sKubeconfig is where K3s writes its admin kubeconfig (mode 0600 by default).
const K3sKubeconfig = "/etc/rancher/k3s/k3s.yaml"

// KubeOptions say where to find a kubeconfig. The caller fills Env and Home
// from the process environment so this package reads none of it itself.
type KubeOptions struct {
	Root       string // filesystem root K3s's kubeconfig is looked up under
	Kubeconfig string // --kubeconfig
	Context    string // --context
	EnvPath    string // $KUBECONFIG
	Home       string // $HOME, for ~/.kube/config
	Timeout    time.Duration
}

// ErrNoKubeconfig means no kubeconfig was found anywhere doctor looks.
var ErrNoKubeconfig = errors.New("no kubeconfig: not given by --kubeconfig or KUBECONFIG, and neither " + K3sKubeconfig + " nor ~/.kube/config exists")

// FindKubeconfig is llmctl's one kubeconfig order, for doctor, up, down and
// top alike: --kubeconfig (flag), then KUBECONFIG (env, a path list), then
// K3s's k3s.yaml under root when it exists (on a K3s box it is the cluster
// llmctl manages, even when ~/.kube/config names another), then
// ~/.kube/config (only when root is "/": a mounted image's cluster is not
// the user's). It returns the loading rules and where they came from, or
// ErrNoKubeconfig.
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
		} else if root == "/" && home != "" && fileExists(homeFile) {
			rules.ExplicitPath = homeFile
		} else {
			return nil, "", ErrNoKubeconfig
		}
	}
	return rules, rules.ExplicitPath, nil
}

// LoadKube builds a client from the kubeconfig FindKubeconfig picks. Every
// request is bounded by Timeout, so a dead API server costs one timeout,
// not a hang.
func LoadKube(o KubeOptions) KubeTarget {
	rules, src, err := FindKubeconfig(o.Root, o.Kubeconfig, o.EnvPath, o.Home)
	if err != nil {
		return KubeTarget{Err: err}
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
		&clientcmd.ConfigOverrides{CurrentContext: o.Context}).ClientConfig()
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			err = fmt.Errorf("%w (K3s writes it mode 0600: run with sudo, or start K3s with --write-kubeconfig-mode 644)", err)
		}
		return KubeTarget{Source: src, Err: fmt.Errorf("load kubeconfig %s: %w", src, err)}
	}
	cfg.Timeout = o.Timeout
	// A handful of requests per run: do not let client-side throttling queue them.
	cfg.QPS, cfg.Burst = 50, 100
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return KubeTarget{Source: src, Err: fmt.Errorf("client for %s: %w", src, err)}
	}
	return KubeTarget{Client: cs, Source: src + " (server " + cfg.Host + ")"}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
