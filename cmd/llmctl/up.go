package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"

	"github.com/llmctl/llmctl/internal/printer"
	"github.com/llmctl/llmctl/pkg/deploy"
	"github.com/llmctl/llmctl/pkg/preflight"
	"github.com/llmctl/llmctl/pkg/preflight/facts"
)

// upOptions are `llmctl up`'s flags and what Complete derives from them.
type upOptions struct {
	g      *globals
	client deploy.ClientFlags

	release       string
	valueFiles    []string
	set           []string
	timeout       time.Duration
	dryRun        bool
	showSecrets   bool
	skipPreflight bool
	gpu           bool
	atomic        bool
	pluginImage   string
	node          string

	values map[string]any
	format printer.Format
}

func newUpCmd(g *globals) *cobra.Command {
	o := &upOptions{g: g}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Install or upgrade the gateway stack in the cluster and wait until it serves",
		Long: `Install or upgrade the llmctl gateway chart (embedded in this binary) as a Helm
release, like "helm upgrade --install", then wait for the rollout. On a K3s node
/etc/rancher/k3s/k3s.yaml is used unless --kubeconfig or KUBECONFIG names another
(the order doctor uses).`,
		Example: `  llmctl up
  llmctl up --gpu --set gpuBackend.enabled=true
  llmctl up -f values.yaml --set ingress.host=llm.example.com
  llmctl up --dry-run > manifests.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Complete(); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd)
		},
	}
	f := cmd.Flags()
	addClientFlags(cmd, &o.client)
	f.StringVar(&o.release, "release", deploy.DefaultRelease, "Helm release name")
	f.StringSliceVarP(&o.valueFiles, "values", "f", nil, "values file (repeatable; later files win)")
	f.StringArrayVar(&o.set, "set", nil, "set a value, key=value (repeatable; wins over -f)")
	f.DurationVar(&o.timeout, "timeout", deploy.DefaultTimeout, "how long to wait for the rollout")
	f.BoolVar(&o.dryRun, "dry-run", false, "print the rendered manifests and change nothing")
	f.BoolVar(&o.showSecrets, "show-secrets", false, "with --dry-run, include Secrets (generated values!)")
	f.BoolVar(&o.skipPreflight, "skip-preflight", false, "do not check the cluster first")
	f.BoolVar(&o.atomic, "atomic", false, "if the rollout does not finish, roll the upgrade back (or uninstall a first install)")
	f.BoolVar(&o.gpu, "gpu", false, "also set up GPU prerequisites: RuntimeClass nvidia, NVIDIA device plugin, WSL2 node label")
	f.StringVar(&o.pluginImage, "device-plugin-image", facts.DevicePluginImage, "NVIDIA device plugin image (with --gpu)")
	f.StringVar(&o.node, "node", "", "node to label on WSL2 (with --gpu; default: the only node or this host's)")
	printer.Bind(cmd, &o.format)
	return cmd
}

// addClientFlags binds the kubeconfig, context and namespace flags.
func addClientFlags(cmd *cobra.Command, c *deploy.ClientFlags) {
	f := cmd.Flags()
	f.StringVar(&c.Kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, then "+facts.K3sKubeconfig+", then ~/.kube/config)")
	f.StringVar(&c.Context, "context", "", "kubeconfig context")
	f.StringVarP(&c.Namespace, "namespace", "n", deploy.DefaultNamespace, "namespace of the release")
}

// completeClient picks the kubeconfig in llmctl's one order (facts'
// FindKubeconfig). With none at all it is an error, unless running in a
// pod: client-go would otherwise fall back to http://localhost:8080, which
// is llmctl serve's own port, and report a confusing "not found".
func completeClient(c *deploy.ClientFlags) error {
	if c.Kubeconfig != "" {
		return nil
	}
	env := os.Getenv("KUBECONFIG")
	rules, _, err := facts.FindKubeconfig("/", "", env, os.Getenv("HOME"))
	switch {
	case err == nil:
		c.Kubeconfig = rules.ExplicitPath // "" for KUBECONFIG: client-go reads it
		return nil
	case os.Getenv("KUBERNETES_SERVICE_HOST") != "":
		return nil // in a pod: client-go's in-cluster config
	}
	return fmt.Errorf("%w; pass --kubeconfig", err)
}

func (o *upOptions) Complete() error {
	var err error
	if o.values, err = deploy.Values(o.valueFiles, o.set); err != nil {
		return err
	}
	return nil
}

func (o *upOptions) Validate() error {
	if errs := validation.IsDNS1123Label(o.release); len(errs) > 0 {
		return fmt.Errorf("--release %q: %s", o.release, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Label(o.client.Namespace); len(errs) > 0 {
		return fmt.Errorf("--namespace %q: %s", o.client.Namespace, strings.Join(errs, "; "))
	}
	if o.timeout <= 0 {
		return fmt.Errorf("--timeout must be positive, got %s", o.timeout)
	}
	if o.showSecrets && !o.dryRun {
		return fmt.Errorf("--show-secrets only applies to --dry-run")
	}
	return nil
}

func (o *upOptions) Run(cmd *cobra.Command) error {
	ctx := cmd.Context()
	log, err := o.g.Logger()
	if err != nil {
		return err
	}
	ch, err := deploy.LoadChart()
	if err != nil {
		return err
	}
	if !o.dryRun { // --dry-run only renders: it needs no cluster
		if err := completeClient(&o.client); err != nil {
			return err
		}
	}
	if o.dryRun {
		manifest, err := deploy.Render(ch, deploy.RenderOptions{
			Release: o.release, Namespace: o.client.Namespace, Values: o.values, ShowSecrets: o.showSecrets,
		})
		if err != nil {
			return err
		}
		_, err = fmt.Fprint(o.g.Out, manifest)
		return err
	}

	getter := o.client.Getter()
	if !o.skipPreflight {
		v, err := deploy.Reachable(ctx, getter, 5*time.Second)
		if err != nil {
			return fmt.Errorf("preflight: %w (use --skip-preflight to try anyway)", err)
		}
		fmt.Fprintf(o.g.ErrOut, "preflight: cluster reachable (Kubernetes %s)\n", v)
		if err := o.doctorChecks(ctx, getter); err != nil {
			return err
		}
	}
	d, err := deploy.NewDeployer(getter, log)
	if err != nil {
		return err
	}
	var gpu *deploy.GPUResult
	if o.gpu {
		if gpu, err = d.EnsureGPU(ctx, deploy.GPUOptions{Image: o.pluginImage, Node: o.node}); err != nil {
			return err
		}
		for _, c := range gpu.Changes {
			fmt.Fprintf(o.g.ErrOut, "gpu: %s\n", c)
		}
	}
	res, err := d.Up(ctx, ch, deploy.UpOptions{
		Release: o.release, Namespace: o.client.Namespace, Values: o.values, Timeout: o.timeout,
		Progress: o.g.ErrOut, TTY: isTerminal(o.g.ErrOut), Atomic: o.atomic,
	})
	if err != nil {
		return err
	}
	if o.format != printer.Table {
		return printer.Structured(o.g.Out, o.format, struct {
			*deploy.UpResult
			GPU *deploy.GPUResult `json:"gpu,omitempty"`
		}{res, gpu})
	}
	_, err = fmt.Fprintf(o.g.Out, "%s %s (revision %d, chart %s) in namespace %s: ready\nendpoint:  %s\nadmin key: kept in the release's Secret; read it with: %s\nmanage:    %s\n",
		res.Action, res.Release, res.Revision, res.ChartVersion, res.Namespace, res.Endpoint, res.AdminKeyCommand,
		remoteCommand(res.Endpoint, res.AdminKeyCommand))
	return err
}

// remoteCommand is the line that points the CLI at the installed gateway's
// admin API: the API base is the endpoint without /v1, reached through the
// Ingress or through the port-forward the endpoint names. The key is read
// from the Secret by the shell, so it is never printed.
func remoteCommand(endpoint, keyCmd string) string {
	while := ""
	if pf, url, ok := strings.Cut(endpoint, ", then "); ok {
		while, endpoint = fmt.Sprintf("   (while %q runs)", pf), url
	}
	server := strings.TrimSuffix(strings.TrimSuffix(endpoint, "/"), "/v1")
	return fmt.Sprintf(`llmctl tenants list --server %s --api-key "$(%s)"%s`, server, keyCmd, while)
}

// isTerminal reports whether w is a terminal: for up's redrawn progress
// lines, doctor's colour and top's screen.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// upChecks are the doctor checks that gate an install: a cluster with no
// Ready node would only leave the rollout waiting until its timeout.
var upChecks = []string{"cluster.nodes"}

// doctorChecks runs the doctor checks relevant to the install against the
// same cluster and stops on a failure (warnings are printed, not fatal).
func (o *upOptions) doctorChecks(ctx context.Context, getter genericclioptions.RESTClientGetter) error {
	rc, err := getter.ToRESTConfig()
	if err != nil {
		return fmt.Errorf("preflight: %w", err)
	}
	kc, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("preflight: %w", err)
	}
	checks, err := preflight.Select(preflight.All(), upChecks, nil)
	if err != nil {
		return err
	}
	env := &preflight.Env{Kube: preflight.KubeTarget{Client: kc, Source: "llmctl up"}, Namespace: o.client.Namespace}
	rep := preflight.Run(ctx, env, checks, preflight.RunOptions{})
	for _, r := range rep.Results {
		fmt.Fprintf(o.g.ErrOut, "preflight: %s %s: %s\n", r.ID, r.Verdict, r.Message)
		if r.Verdict == preflight.Fail && r.Remedy != "" {
			fmt.Fprintf(o.g.ErrOut, "preflight:   fix: %s\n", r.Remedy)
		}
	}
	if rep.ExitCode(false) != 0 {
		return fmt.Errorf("preflight failed (see above; `llmctl doctor` gives the full report; --skip-preflight to try anyway)")
	}
	return nil
}
