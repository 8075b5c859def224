package preflight

import (
	"errors"
	"fmt"
	"os"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/llmctl/llmctl/pkg/preflight/facts"
)

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

// LoadKube builds a client from the kubeconfig FindKubeconfig picks. Every
// request is bounded by Timeout, so a dead API server costs one timeout,
// not a hang.
func LoadKube(o KubeOptions) KubeTarget {
	rules, src, err := facts.FindKubeconfig(o.Root, o.Kubeconfig, o.EnvPath, o.Home)
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
