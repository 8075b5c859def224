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

// LoadKube builds a client from the first kubeconfig found: --kubeconfig,
// KUBECONFIG, K3s's k3s.yaml, then ~/.kube/config (only when Root is "/":
// a mounted image's cluster is not the user's). Every request is bounded by
// Timeout, so a dead API server costs one timeout, not a hang.
func LoadKube(o KubeOptions) KubeTarget {
	root := o.Root
	if root == "" {
		root = "/"
	}
	rules := &clientcmd.ClientConfigLoadingRules{}
	switch {
	case o.Kubeconfig != "":
		rules.ExplicitPath = o.Kubeconfig
	case o.EnvPath != "":
		rules.Precedence = filepath.SplitList(o.EnvPath)
	default:
		k3s := filepath.Join(root, K3sKubeconfig)
		home := filepath.Join(o.Home, ".kube", "config")
		if _, err := os.Stat(k3s); err == nil {
			rules.ExplicitPath = k3s
		} else if root == "/" && o.Home != "" && fileExists(home) {
			rules.ExplicitPath = home
		} else {
			return KubeTarget{Err: ErrNoKubeconfig}
		}
	}
	src := rules.ExplicitPath
	if src == "" {
		src = "KUBECONFIG=" + o.EnvPath
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
