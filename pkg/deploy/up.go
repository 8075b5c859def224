package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage/driver"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"
)

// Defaults for the release llmctl manages.
const (
	DefaultRelease   = "llmctl"
	DefaultNamespace = "llmctl"
	DefaultTimeout   = 10 * time.Minute
)

// UpOptions say what to install and how long to wait for it.
type UpOptions struct {
	Release   string
	Namespace string
	Values    map[string]any
	Timeout   time.Duration
	// Progress receives rollout progress; TTY redraws one line, otherwise
	// one plain line per change.
	Progress io.Writer
	TTY      bool
	// Atomic undoes a release whose rollout does not finish: an upgrade
	// is rolled back to the revision before it, a first install is
	// uninstalled (like helm's --atomic). Without it the failed revision
	// stays, marked failed, for the next `up` to fix.
	Atomic bool
}

// UpResult is what `llmctl up` reports.
type UpResult struct {
	Release   string `json:"release"`
	Namespace string `json:"namespace"`
	Revision  int    `json:"revision"`
	// Action is "installed" or "upgraded".
	Action       string `json:"action"`
	ChartVersion string `json:"chartVersion"`
	// Undone says what Atomic did after a failed rollout: "rolled back to
	// revision N" or "uninstalled".
	Undone          string `json:"undone,omitempty"`
	Endpoint        string `json:"endpoint"`
	AdminKeyCommand string `json:"adminKeyCommand"`
	Notes           string `json:"-"`
}

// Deployer installs, upgrades and removes the gateway release through one
// cluster connection.
type Deployer struct {
	getter genericclioptions.RESTClientGetter
	kube   kubernetes.Interface
	log    *slog.Logger
}

// NewDeployer connects to the cluster getter points at.
func NewDeployer(getter genericclioptions.RESTClientGetter, log *slog.Logger) (*Deployer, error) {
	cfg, err := getter.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return &Deployer{getter: getter, kube: kube, log: log}, nil
}

// helm returns a Helm action configuration storing releases in Secrets in
// namespace, the same storage the helm CLI reads by default.
func (d *Deployer) helm(namespace string) (*action.Configuration, error) {
	cfg := new(action.Configuration)
	debug := func(format string, v ...any) { d.log.Debug(fmt.Sprintf(format, v...), "component", "helm") }
	if err := cfg.Init(d.getter, namespace, "secret", debug); err != nil {
		return nil, fmt.Errorf("helm: %w", err)
	}
	return cfg, nil
}

// Up installs the release or upgrades it in place (helm upgrade --install),
// then waits until every workload is rolled out. On timeout the error says
// why: each unready pod's reason and its warning events.
func (d *Deployer) Up(ctx context.Context, ch *chart.Chart, o UpOptions) (*UpResult, error) {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	cfg, err := d.helm(o.Namespace)
	if err != nil {
		return nil, err
	}
	hist := action.NewHistory(cfg)
	hist.Max = 1
	_, err = hist.Run(o.Release)
	exists := err == nil
	if err != nil && !errors.Is(err, driver.ErrReleaseNotFound) {
		return nil, fmt.Errorf("read release %s: %w", o.Release, err)
	}

	var rel *release.Release
	res := &UpResult{Release: o.Release, Namespace: o.Namespace, ChartVersion: ch.Metadata.Version}
	if exists {
		up := action.NewUpgrade(cfg)
		up.Namespace = o.Namespace
		up.Timeout = o.Timeout
		up.MaxHistory = 10
		rel, err = up.RunWithContext(ctx, o.Release, ch, o.Values)
		res.Action = "upgraded"
	} else {
		in := action.NewInstall(cfg)
		in.Namespace = o.Namespace
		in.ReleaseName = o.Release
		in.CreateNamespace = true
		in.Timeout = o.Timeout
		rel, err = in.RunWithContext(ctx, ch, o.Values)
		res.Action = "installed"
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", map[bool]string{true: "upgrade", false: "install"}[exists], o.Release, err)
	}
	res.Revision = rel.Version
	if rel.Info != nil {
		res.Notes = rel.Info.Notes
	}
	d.log.Info("release applied", "release", o.Release, "namespace", o.Namespace, "revision", rel.Version, "action", res.Action)

	w := &watcher{kube: d.kube, namespace: o.Namespace, release: o.Release, out: o.Progress, tty: o.TTY}
	if err := w.wait(ctx, o.Timeout); err != nil {
		return res, d.failed(ctx, cfg, rel, exists, o, res, err)
	}
	res.Endpoint, res.AdminKeyCommand = endpoint(ch, o.Values, o.Namespace, fullname(ch, o.Release, o.Values))
	return res, nil
}

// failed records a rollout that did not finish in Helm's storage, as helm
// itself does when its own wait fails, so `helm status`/`helm history` and
// the next `up` see a failed revision rather than a "deployed" one. With
// Atomic it then undoes the revision. The returned error keeps waitErr (and
// so ErrRolloutTimeout) and adds what was done.
func (d *Deployer) failed(ctx context.Context, cfg *action.Configuration, rel *release.Release, upgraded bool, o UpOptions, res *UpResult, waitErr error) error {
	// The wait may have ended because ctx did; recording the outcome must
	// still happen.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	rel.SetStatus(release.StatusFailed, fmt.Sprintf("llmctl up: rollout did not finish: %v", waitErr))
	if err := cfg.Releases.Update(rel); err != nil {
		return fmt.Errorf("%w (and marking revision %d failed: %v)", waitErr, rel.Version, err)
	}
	if !o.Atomic {
		return waitErr
	}
	if upgraded {
		rb := action.NewRollback(cfg)
		rb.Timeout = o.Timeout
		rb.MaxHistory = 10
		if err := rb.Run(o.Release); err != nil {
			return fmt.Errorf("%w (and rolling back: %v)", waitErr, err)
		}
		prev, err := cfg.Releases.Last(o.Release)
		if err != nil {
			return fmt.Errorf("%w (rolled back; reading the new revision: %v)", waitErr, err)
		}
		res.Revision = prev.Version
		res.Undone = fmt.Sprintf("rolled back to the previous revision (now revision %d)", prev.Version)
	} else {
		un := action.NewUninstall(cfg)
		un.Wait = true
		un.Timeout = o.Timeout
		if _, err := un.Run(o.Release); err != nil {
			return fmt.Errorf("%w (and uninstalling: %v)", waitErr, err)
		}
		res.Undone = "uninstalled"
	}
	d.log.InfoContext(ctx, "failed rollout undone", "release", o.Release, "namespace", o.Namespace, "undone", res.Undone)
	return fmt.Errorf("%w; --atomic: %s", waitErr, res.Undone)
}

// DownOptions say what to remove.
type DownOptions struct {
	Release   string
	Namespace string
	Timeout   time.Duration
	// Purge also deletes the release's PersistentVolumeClaims (the database).
	Purge bool
}

// DownResult is what `llmctl down` reports.
type DownResult struct {
	Release     string   `json:"release"`
	Namespace   string   `json:"namespace"`
	DeletedPVCs []string `json:"deletedPVCs,omitempty"`
	KeptPVCs    []string `json:"keptPVCs,omitempty"`
	AlreadyGone bool     `json:"alreadyGone,omitempty"`
}

// Down uninstalls the release and waits for its resources to go. Volume
// claims (PostgreSQL's and Redis's data) outlive it unless Purge is set.
func (d *Deployer) Down(ctx context.Context, o DownOptions) (*DownResult, error) {
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	cfg, err := d.helm(o.Namespace)
	if err != nil {
		return nil, err
	}
	res := &DownResult{Release: o.Release, Namespace: o.Namespace}
	un := action.NewUninstall(cfg)
	un.Wait = true
	un.Timeout = o.Timeout
	un.DeletionPropagation = "foreground"
	if _, err := un.Run(o.Release); err != nil {
		if !errors.Is(err, driver.ErrReleaseNotFound) {
			return nil, fmt.Errorf("uninstall %s: %w", o.Release, err)
		}
		res.AlreadyGone = true
	}
	pvcs, err := d.releasePVCs(ctx, o.Namespace, o.Release)
	if err != nil {
		return nil, err
	}
	for _, name := range pvcs {
		if !o.Purge {
			res.KeptPVCs = append(res.KeptPVCs, name)
			continue
		}
		if err := d.deletePVC(ctx, o.Namespace, name); err != nil {
			return res, err
		}
		res.DeletedPVCs = append(res.DeletedPVCs, name)
	}
	return res, nil
}
