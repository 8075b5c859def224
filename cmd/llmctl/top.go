package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/llmctl/llmctl/internal/printer"
	"github.com/llmctl/llmctl/pkg/billing/margin"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/deploy"
	"github.com/llmctl/llmctl/pkg/gpu/nvmlprobe"
	"github.com/llmctl/llmctl/pkg/preflight/facts"
	"github.com/llmctl/llmctl/pkg/top"
	"github.com/llmctl/llmctl/pkg/top/kube"
	"github.com/llmctl/llmctl/pkg/top/ledgersource"
	"github.com/llmctl/llmctl/pkg/top/metrics"
	"github.com/llmctl/llmctl/pkg/top/ui"
)

// defaultTopTarget is `llmctl serve`'s default admin listener.
const defaultTopTarget = "http://127.0.0.1:9090/metrics"

// topOptions is `llmctl top`.
type topOptions struct {
	Targets  []string
	Interval time.Duration
	DB       string
	Once     bool
	Kube     deploy.ClientFlags // Namespace set: discover gateway pods there
	Selector string
	// The Margin pane's energy (as ledger margin's flags).
	EnergyTarget, EnergyState string

	format    printer.Format
	outputSet bool   // -o given: it applies to --once only
	dsn       string // "" when there is no ledger to read
}

func (o *topOptions) Complete() error {
	var err error
	if o.Kube.Namespace != "" {
		if len(o.Targets) > 0 {
			return fmt.Errorf("--target and --namespace: use one (targets are discovered in the namespace)")
		}
		if err := completeClient(&o.Kube); err != nil {
			return err
		}
	} else if len(o.Targets) == 0 {
		if v := os.Getenv("LLMCTL_TOP_TARGETS"); v != "" {
			o.Targets = strings.Split(v, ",")
		} else {
			o.Targets = []string{defaultTopTarget}
		}
	}
	for i, t := range o.Targets {
		if o.Targets[i], err = top.ValidateTarget(strings.TrimSpace(t)); err != nil {
			return err
		}
	}
	if o.EnergyTarget, o.EnergyState, err = energyFlags(o.EnergyTarget, o.EnergyState, "--energy-state"); err != nil {
		return err
	}
	o.dsn, err = o.resolveDSN()
	return err
}

// resolveDSN: --db, else LLMCTL_DB, else the default SQLite file only if it
// exists — top only reads, it must not create an empty database.
func (o *topOptions) resolveDSN() (string, error) {
	if o.DB != "" {
		return o.DB, nil
	}
	if v := os.Getenv("LLMCTL_DB"); v != "" {
		return v, nil
	}
	dsn, err := store.DefaultDSN()
	if err != nil {
		return "", nil // no home dir: no default ledger
	}
	if _, err := os.Stat(strings.TrimPrefix(dsn, "sqlite:")); errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return dsn, nil
}

func (o *topOptions) Validate() error {
	if o.Interval < 100*time.Millisecond {
		return fmt.Errorf("--interval %s: want at least 100ms", o.Interval)
	}
	if o.outputSet && !o.Once {
		return fmt.Errorf("-o applies to --once only")
	}
	return nil
}

func (o *topOptions) Run(ctx context.Context, g *globals) error {
	// Checked before anything is drawn: bubbletea on a pipe would switch a
	// terminal that is not there into the alternate screen and read keys
	// from nowhere.
	// The Margin pane prices with the config file's costs: (before the
	// screen, so that a bad amount is said plainly).
	var costs margin.Costs
	if !o.Once && o.dsn != "" {
		var err error
		if costs, err = g.configCosts(); err != nil {
			return err
		}
		if err := costs.Validate(); err != nil {
			return fmt.Errorf("--config: %w", err)
		}
	}
	if !o.Once && (!isTerminal(g.In) || !isTerminal(g.Out)) {
		return errors.New("top needs a terminal on stdin and stdout; use --once for one snapshot (-o table|json|yaml)")
	}
	// A scrape may take up to one refresh (within 1–5 s) before it counts as down.
	timeout := min(max(o.Interval, time.Second), 5*time.Second)
	src := &top.Sources{
		Targets: o.Targets,
		Scraper: &metrics.Scraper{Client: &http.Client{Timeout: timeout}},
		Timeout: timeout,
	}
	if nvmlprobe.Available { // built with cgo and -tags nvml
		src.GPU = top.NVMLSource{Probe: nvmlprobe.Open()}
	}
	if o.Kube.Namespace != "" {
		cfg, err := o.Kube.Getter().ToRESTConfig()
		if err != nil {
			return fmt.Errorf("kubeconfig: %w", err)
		}
		cfg.Timeout = timeout
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return fmt.Errorf("kubernetes client: %w", err)
		}
		d := &kube.Discovery{Client: cs, Namespace: o.Kube.Namespace, Selector: o.Selector}
		src.Discover, src.Scraper = d.Targets, d
	}
	if o.dsn != "" {
		ls, closeLedger, err := ledgersource.Open(ctx, o.dsn)
		if err != nil {
			return fmt.Errorf("--db: %w", err)
		}
		defer closeLedger()
		src.Ledger = ls
		src.Margin = ledgersource.Margins{Source: ls, Costs: costs, EnergyTarget: o.EnergyTarget, State: o.EnergyState,
			HTTP: &http.Client{Timeout: timeout}}
	}
	if o.Once {
		snap, err := top.Once(ctx, src, o.Interval)
		if err != nil {
			return err
		}
		if o.format == printer.Table {
			return top.WriteTable(g.Out, snap)
		}
		return printer.Structured(g.Out, o.format, snap)
	}
	r := lipgloss.NewRenderer(g.Out)
	if !g.Color() {
		r.SetColorProfile(termenv.Ascii)
	}
	m := ui.New(ctx, ui.Options{Sources: src, Interval: o.Interval, Renderer: r})
	p := tea.NewProgram(m, tea.WithContext(ctx), tea.WithAltScreen(), tea.WithInput(g.In), tea.WithOutput(g.Out))
	if _, err := p.Run(); err != nil && !errors.Is(err, tea.ErrProgramKilled) {
		return fmt.Errorf("top: %w", err)
	}
	return nil
}

func newTopCmd(g *globals) *cobra.Command {
	o := &topOptions{}
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Live view of gateway traffic, GPUs and the billing ledger",
		Long: `top scrapes one or more gateways' /metrics (--target, repeatable; or the gateway
pods found in --namespace, through the API server's pod proxy) and shows per
model request rates, p50/p99 latency and time to first token, tokens per second,
error and 429 rates, backend health, GPU readings, and each tenant's balance and
recent spend from the ledger database (--db); m swaps the ledger for the Margin
pane: revenue, attributed cost and margin per tenant and model over the last
24h, priced with the costs: section of --config and, with --energy-target,
the GPUs' measured energy (as llmctl ledger margin).

Keys: ? help, tab switch pane, m margin/ledger, / filter, s/S sort, enter drill down, esc back, q quit.`,
		Example: `  llmctl top --target http://127.0.0.1:9090/metrics --db sqlite:/var/lib/llmctl/llmctl.db
  llmctl top --target http://10.0.0.5:9090 --once -o json
  llmctl top -n llmctl --db postgres://llmctl@db/llmctl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.outputSet = cmd.Flags().Changed(printer.Flag)
			if err := o.Complete(); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context(), g)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.Targets, "target", nil, "gateway metrics URL, repeatable (env LLMCTL_TOP_TARGETS, comma-separated; default "+defaultTopTarget+", serve's admin listener)")
	f.DurationVar(&o.Interval, "interval", time.Second, "refresh interval; with --once, the window rates are measured over")
	f.StringVar(&o.DB, "db", "", "ledger database: postgres://… or sqlite:PATH (env LLMCTL_DB; default the SQLite file in the data dir, if it exists)")
	f.StringVarP(&o.Kube.Namespace, "namespace", "n", "", "discover gateway pods in this namespace and scrape them through the API server's pod proxy (instead of --target)")
	f.StringVar(&o.Selector, "selector", kube.DefaultSelector, "with --namespace: label selector of the gateway pods")
	f.StringVar(&o.Kube.Kubeconfig, "kubeconfig", "", "with --namespace: kubeconfig file (default: $KUBECONFIG, then "+facts.K3sKubeconfig+", then ~/.kube/config)")
	f.StringVar(&o.Kube.Context, "context", "", "with --namespace: kubeconfig context")
	f.BoolVar(&o.Once, "once", false, "print one snapshot and exit")
	f.StringVar(&o.EnergyTarget, "energy-target", "", "Margin pane: the gateway's admin /metrics URL with the GPUs' energy counter (without it, fixed costs only)")
	f.StringVar(&o.EnergyState, "energy-state", "", "Margin pane: file of energy samples shared with ledger margin (default energy-state.json in the data dir); top adds one at most hourly")
	printer.Bind(cmd, &o.format)
	f.Lookup(printer.Flag).Usage = "with --once: " + f.Lookup(printer.Flag).Usage
	return cmd
}
