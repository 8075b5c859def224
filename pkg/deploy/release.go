package deploy

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// fullname mirrors the chart's llmctl-gateway.fullname helper, to name the
// Service and Secret in what up prints.
func fullname(ch *chart.Chart, release string, vals map[string]any) string {
	v, err := chartutil.CoalesceValues(ch, vals)
	if err != nil {
		v = vals
	}
	if s, _ := v["fullnameOverride"].(string); s != "" {
		return trunc63(s)
	}
	name := ch.Metadata.Name
	if s, _ := v["nameOverride"].(string); s != "" {
		name = s
	}
	if strings.Contains(release, name) {
		return trunc63(release)
	}
	if strings.HasPrefix(name, release) {
		return trunc63(name)
	}
	return trunc63(release + "-" + name)
}

func trunc63(s string) string {
	if len(s) > 63 {
		s = s[:63]
	}
	return strings.TrimSuffix(s, "-")
}

// endpoint is where clients reach the gateway and how to find the admin key.
func endpoint(ch *chart.Chart, vals map[string]any, namespace, name string) (string, string) {
	v, err := chartutil.CoalesceValues(ch, vals)
	if err != nil {
		v = vals
	}
	// The chart keeps the admin key in the release's Secret (generated once,
	// kept across upgrades); the gateway imports it on start.
	keyCmd := fmt.Sprintf("kubectl -n %s get secret %s -o jsonpath='{.data.admin-key}' | base64 -d", namespace, name)
	ing, _ := v.Table("ingress")
	if enabled, _ := ing["enabled"].(bool); enabled {
		scheme := "http"
		if tls, _ := ing["tlsSecretName"].(string); tls != "" {
			scheme = "https"
		}
		host, _ := ing["host"].(string)
		if host == "" {
			host = "<node address>"
		}
		path, _ := ing["path"].(string)
		return fmt.Sprintf("%s://%s%s/v1", scheme, host, strings.TrimSuffix(path, "/")), keyCmd
	}
	port := 80
	if svc, err := v.Table("service"); err == nil {
		if p, ok := svc["port"].(float64); ok {
			port = int(p)
		} else if p, ok := svc["port"].(int64); ok {
			port = int(p)
		}
	}
	return fmt.Sprintf("kubectl -n %s port-forward svc/%s 8080:%d, then http://127.0.0.1:8080/v1", namespace, name, port), keyCmd
}

// releasePVCs lists the volume claims the release's StatefulSets created;
// Helm does not own them, so uninstall leaves them.
func (d *Deployer) releasePVCs(ctx context.Context, namespace, release string) ([]string, error) {
	l, err := d.kube.CoreV1().PersistentVolumeClaims(namespace).List(ctx, metav1.ListOptions{LabelSelector: instanceLabel + "=" + release})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("list volume claims: %w", err)
	}
	var out []string
	for _, p := range l.Items {
		out = append(out, p.Name)
	}
	sort.Strings(out)
	return out, nil
}

func (d *Deployer) deletePVC(ctx context.Context, namespace, name string) error {
	err := d.kube.CoreV1().PersistentVolumeClaims(namespace).Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete volume claim %s: %w", name, err)
	}
	return nil
}
