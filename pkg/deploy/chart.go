package deploy

import (
	"fmt"
	"io/fs"
	"path"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/cli/values"
	"helm.sh/helm/v3/pkg/getter"

	"github.com/llmctl/llmctl/charts"
)

// LoadChart loads the gateway chart embedded in the binary.
func LoadChart() (*chart.Chart, error) {
	var files []*loader.BufferedFile
	err := fs.WalkDir(charts.Gateway, charts.GatewayDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(charts.Gateway, p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, charts.GatewayDir+"/")
		files = append(files, &loader.BufferedFile{Name: path.Clean(name), Data: data})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read embedded chart: %w", err)
	}
	ch, err := loader.LoadFiles(files)
	if err != nil {
		return nil, fmt.Errorf("load embedded chart: %w", err)
	}
	return ch, nil
}

// Values merges values files and --set style assignments, later ones
// winning, the way `helm upgrade -f a.yaml --set k=v` does.
func Values(files, set []string) (map[string]any, error) {
	opts := values.Options{ValueFiles: files, Values: set}
	v, err := opts.MergeValues(getter.Providers{})
	if err != nil {
		return nil, fmt.Errorf("values: %w", err)
	}
	return v, nil
}

// RenderKubeVersion is the Kubernetes version a client-side render assumes.
const RenderKubeVersion = "v1.37.0"

// RenderOptions choose what a client-side render assumes about the cluster.
type RenderOptions struct {
	Release   string
	Namespace string
	Values    map[string]any
	// APIVersions the cluster serves beyond the built-in ones, e.g.
	// "monitoring.coreos.com/v1" to render the ServiceMonitor.
	APIVersions []string
	// ShowSecrets prints Secrets' contents; off, Secrets are left out (their
	// values are generated and must not land in a terminal or a log).
	ShowSecrets bool
}

// Render renders the chart without a cluster (helm template), validating the
// values against values.schema.json, and returns the manifests.
func Render(ch *chart.Chart, o RenderOptions) (string, error) {
	inst := action.NewInstall(&action.Configuration{})
	inst.DryRun = true
	inst.DryRunOption = "client"
	inst.ClientOnly = true
	inst.Replace = true
	inst.ReleaseName = o.Release
	inst.Namespace = o.Namespace
	inst.HideSecret = !o.ShowSecrets
	inst.APIVersions = append(chartutil.VersionSet{}, o.APIVersions...)
	// Helm's client-only default is an old v1.20; render for the version the
	// chart is tested against so output is stable and kubeVersion passes.
	inst.KubeVersion = &chartutil.KubeVersion{Version: RenderKubeVersion, Major: "1", Minor: "37"}
	inst.IncludeCRDs = true
	rel, err := inst.Run(ch, o.Values)
	if err != nil {
		return "", fmt.Errorf("render chart: %w", err)
	}
	return strings.TrimSpace(rel.Manifest) + "\n", nil
}
