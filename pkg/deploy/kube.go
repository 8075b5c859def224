package deploy

import (
	"context"
	"fmt"
	"time"

	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"

	"github.com/llmctl/llmctl/pkg/preflight/facts"
)

// ClientFlags are the kubeconfig, context and namespace flags (cli-runtime's
// ConfigFlags with only these three bound) and what they resolve to.
type ClientFlags struct {
	Kubeconfig string
	Context    string
	Namespace  string
}

// Getter builds the RESTClientGetter Helm and client-go use.
func (f *ClientFlags) Getter() *genericclioptions.ConfigFlags {
	kc, ctx, ns := f.Kubeconfig, f.Context, f.Namespace
	cf := &genericclioptions.ConfigFlags{KubeConfig: &kc, Context: &ctx, Namespace: &ns}
	return cf.WithDiscoveryBurst(300).WithDiscoveryQPS(50)
}

// Reachable is the cluster reachability preflight: the API server answers
// /version within timeout. The error says where it looked and what to try.
func Reachable(ctx context.Context, getter genericclioptions.RESTClientGetter, timeout time.Duration) (string, error) {
	cfg, err := getter.ToRESTConfig()
	if err != nil {
		return "", fmt.Errorf("cluster: no usable kubeconfig: %w (on a K3s node, %s is used automatically; check it is readable)", err, facts.K3sKubeconfig)
	}
	cfg.Timeout = timeout
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", fmt.Errorf("cluster: %w", err)
	}
	type result struct {
		v   string
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := cs.Discovery().ServerVersion()
		if err != nil {
			ch <- result{err: err}
			return
		}
		ch <- result{v: v.GitVersion}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return "", fmt.Errorf("cluster unreachable at %s: %w (is K3s running? `systemctl status k3s`)", cfg.Host, r.err)
		}
		return r.v, nil
	case <-ctx.Done():
		return "", ctx.Err()
	case <-time.After(timeout + time.Second):
		return "", fmt.Errorf("cluster unreachable at %s: no answer within %s", cfg.Host, timeout)
	}
}
