// Package kube finds gateway pods through the Kubernetes API and scrapes
// their /metrics through the API server's pod proxy, so `llmctl top
// --namespace` works from anywhere the kubeconfig works, without
// port-forwards or reachable pod IPs.
package kube

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/llmctl/llmctl/pkg/top/metrics"
)

// DefaultSelector matches the gateway pods of the llmctl-gateway chart.
const DefaultSelector = "app.kubernetes.io/name=llmctl-gateway,app.kubernetes.io/component=gateway"

// DefaultPort is the chart's container port name for the admin listener.
const DefaultPort = "metrics"

// scheme prefixes the targets Discovery hands out: kube://NS/POD:PORT.
const scheme = "kube://"

// Discovery lists gateway pods and scrapes them through the pod proxy.
type Discovery struct {
	Client    kubernetes.Interface
	Namespace string
	Selector  string           // DefaultSelector when ""
	Port      string           // container port name or number; DefaultPort when ""
	Now       func() time.Time // scrape timestamps; time.Now when nil
}

// Targets lists the running gateway pods as kube://NS/POD:PORT targets,
// sorted. A pod without an IP yet, or without the port, is left out.
func (d *Discovery) Targets(ctx context.Context) ([]string, error) {
	sel := d.Selector
	if sel == "" {
		sel = DefaultSelector
	}
	pods, err := d.Client.CoreV1().Pods(d.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("list gateway pods in %s (%s): %w", d.Namespace, sel, err)
	}
	var out []string
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" || p.DeletionTimestamp != nil {
			continue
		}
		port, ok := d.port(&p)
		if !ok {
			continue
		}
		out = append(out, fmt.Sprintf("%s%s/%s:%d", scheme, p.Namespace, p.Name, port))
	}
	sort.Strings(out)
	return out, nil
}

func (d *Discovery) port(p *corev1.Pod) (int32, bool) {
	want := d.Port
	if want == "" {
		want = DefaultPort
	}
	if n, err := strconv.ParseInt(want, 10, 32); err == nil {
		return int32(n), true
	}
	for _, c := range p.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == want {
				return cp.ContainerPort, true
			}
		}
	}
	return 0, false
}

// IsTarget reports whether target is one of Discovery's.
func IsTarget(target string) bool { return strings.HasPrefix(target, scheme) }

// Fetch GETs a kube:// target's /metrics through the API server's pod
// proxy and returns the body.
func (d *Discovery) Fetch(ctx context.Context, target string) ([]byte, error) {
	rest, ok := strings.CutPrefix(target, scheme)
	ns, pod, found := strings.Cut(rest, "/")
	if !ok || !found || ns == "" || pod == "" {
		return nil, fmt.Errorf("scrape %s: not a kube://NAMESPACE/POD:PORT target", target)
	}
	b, err := d.Client.CoreV1().RESTClient().Get().
		Namespace(ns).Resource("pods").Name(pod).SubResource("proxy").Suffix("metrics").
		SetHeader("Accept", "text/plain;version=0.0.4").
		DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("scrape %s through the API server: %w", target, err)
	}
	return b, nil
}

// Scrape fetches and parses a kube:// target: Discovery is the scraper of
// the targets it discovers (top.Fetcher).
func (d *Discovery) Scrape(ctx context.Context, target string) (metrics.Scrape, error) {
	b, err := d.Fetch(ctx, target)
	if err != nil {
		return metrics.Scrape{}, err
	}
	now := time.Now
	if d.Now != nil {
		now = d.Now
	}
	sc, err := metrics.Parse(bytes.NewReader(b), now())
	if err != nil {
		return metrics.Scrape{}, fmt.Errorf("scrape %s: %w", target, err)
	}
	return sc, nil
}
