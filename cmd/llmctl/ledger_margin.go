package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/llmctl/llmctl/internal/printer"
	"github.com/llmctl/llmctl/pkg/billing/margin"
	"github.com/llmctl/llmctl/pkg/billing/reconcile"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/serve/config"
)

// ledgerMarginOptions is `llmctl ledger margin`: revenue against the box's
// cost per tenant and model (pkg/billing/margin).
type ledgerMarginOptions struct {
	db           *dbFlag
	rf           *remoteFlags
	g            *globals
	Since        string
	Until        string
	EnergyTarget string
	State        string
	Costs        margin.Costs

	format       printer.Format
	since, until time.Time
}

func (o *ledgerMarginOptions) Complete(now time.Time) (err error) {
	if o.since, o.until, err = parseWindow(o.Since, o.Until, now); err != nil {
		return err
	}
	// The config file's costs: under the flags.
	if file, err := o.g.configCosts(); err != nil {
		return err
	} else {
		o.Costs.ElectricityPerKWh = or(o.Costs.ElectricityPerKWh, file.ElectricityPerKWh)
		o.Costs.GPUMonthly = or(o.Costs.GPUMonthly, file.GPUMonthly)
		o.Costs.OtherMonthly = or(o.Costs.OtherMonthly, file.OtherMonthly)
	}
	o.EnergyTarget, o.State, err = energyFlags(o.EnergyTarget, o.State, "--state")
	return err
}

// energyFlags checks an --energy-target and defaults the energy state file
// (the one `ledger margin` and `top` share) to energy-state.json in the
// data dir.
func energyFlags(target, state, stateFlag string) (string, string, error) {
	if state == "" {
		dir, err := store.DataDir()
		if err != nil {
			return "", "", fmt.Errorf("%s: %w", stateFlag, err)
		}
		state = filepath.Join(dir, "energy-state.json")
	}
	if target != "" {
		t, err := reconcile.ParseTarget(target)
		if err != nil {
			return "", "", fmt.Errorf("--energy-target: %w", err)
		}
		target = t.URL
	}
	return target, state, nil
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (o *ledgerMarginOptions) Validate() error {
	if o.until.Before(o.since) {
		return fmt.Errorf("--until (%s) is before --since (%s)", o.until.Format(time.RFC3339), o.since.Format(time.RFC3339))
	}
	return o.Costs.Validate()
}

// configCosts reads costs: from the config file named by --config or
// LLMCTL_CONFIG (zero when there is none).
func (g *globals) configCosts() (margin.Costs, error) {
	path := g.ConfigFile
	if path == "" {
		path = os.Getenv("LLMCTL_CONFIG")
	}
	if path == "" {
		return margin.Costs{}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return margin.Costs{}, fmt.Errorf("--config: %w", err)
	}
	defer f.Close()
	var c config.Config
	if err := c.MergeFile(path, f); err != nil {
		return margin.Costs{}, err
	}
	return c.Costs, nil
}

func (o *ledgerMarginOptions) Run(cmd *cobra.Command, g *globals) error {
	ctx := cmd.Context()
	if rc, err := o.rf.remote(o.db); err != nil {
		return err
	} else if rc != nil {
		return errors.New("ledger margin reads the ledger database: use --db")
	}
	energy := margin.Energy{Note: "no --energy-target given"}
	since := o.since
	if o.EnergyTarget != "" {
		var err error
		if energy, since, err = margin.Measure(ctx, &http.Client{Timeout: 10 * time.Second}, o.EnergyTarget, o.State, o.since, o.until, 0); err != nil {
			return err
		}
	}
	c, err := o.db.openLedger(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	names, err := c.names(ctx)
	if err != nil {
		return err
	}
	usage, err := margin.FromLedger(ctx, c.lg, since, o.until)
	if err != nil {
		return err
	}
	rep, err := margin.Compute(o.Costs, since, o.until, usage, energy, names)
	if err != nil {
		return err
	}
	if o.format != printer.Table {
		return printer.Structured(g.Out, o.format, rep)
	}
	tw := printer.TableWriter(g.Out, "tenant", "model", "requests", "tokens in+out", "share", "revenue", "cost", "margin")
	for _, r := range rep.Rows {
		tw.Row(r.Tenant, dash(r.Model), fmt.Sprint(r.Requests), fmt.Sprintf("%d+%d", r.Prompt, r.Generated), fmt.Sprintf("%.1f%%", 100*r.Share),
			r.Revenue.String(), r.Cost.String(), r.Margin.String())
	}
	tw.Row("TOTAL", "", "", "", "", rep.Revenue.String(), rep.TotalCost.String(), rep.Margin.String())
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(g.Out, "\nwindow %s .. %s\ncost: %s\n", rep.Since.Format(time.RFC3339), rep.Until.Format(time.RFC3339), rep.Basis)
	if rep.TokensPerJoule > 0 {
		fmt.Fprintf(g.Out, "tokens per joule: %.3f\n", rep.TokensPerJoule)
	}
	if rep.Unattributed > 0 {
		fmt.Fprintf(g.Out, "unattributed (no tokens in the window): %s\n", rep.Unattributed)
	}
	return nil
}

func newLedgerMarginCmd(g *globals, db *dbFlag, rf *remoteFlags) *cobra.Command {
	o := &ledgerMarginOptions{db: db, rf: rf, g: g}
	cmd := &cobra.Command{
		Use:   "margin",
		Short: "Revenue against the box's cost (energy and fixed costs) per tenant and model",
		Long: `Revenue from the ledger against what the box cost over the window: the GPUs'
measured energy (llmctl_gpu_energy_joules_total on the gateway's admin /metrics,
from NVML) at costs.electricityPerKWh, plus costs.gpuMonthly and costs.otherMonthly
prorated over 730 h a month. The cost is attributed by share of generated tokens.
Without an energy figure the report prices fixed costs only and says so.`,
		Example: `  llmctl ledger margin --since 24h --energy-target http://127.0.0.1:9090/metrics
  llmctl ledger margin --since 2026-12-01 --gpu-monthly 450 --electricity-per-kwh 0.30 -o json`,
		Args: cobra.NoArgs,
		RunE: windowRunE(g, o),
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Since, "since", "24h", "window start: a duration back (24h), a date or an RFC 3339 time")
	fl.StringVar(&o.Until, "until", "", "window end (default now)")
	fl.StringVar(&o.EnergyTarget, "energy-target", "", "the gateway's admin /metrics URL, for the GPUs' energy counter")
	fl.StringVar(&o.State, "state", "", "file of earlier energy samples (default energy-state.json in the data dir)")
	fl.StringVar(&o.Costs.ElectricityPerKWh, "electricity-per-kwh", "", "price of a kWh (overrides costs.electricityPerKWh)")
	fl.StringVar(&o.Costs.GPUMonthly, "gpu-monthly", "", "GPU rent or amortisation per month (overrides costs.gpuMonthly)")
	fl.StringVar(&o.Costs.OtherMonthly, "other-monthly", "", "other fixed costs per month (overrides costs.otherMonthly)")
	printer.Bind(cmd, &o.format)
	return cmd
}
