package main

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/llmctl/llmctl/internal/printer"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/reconcile"
	"github.com/llmctl/llmctl/pkg/billing/store"
)

// ledgerReconcileOptions is `llmctl ledger reconcile`: the ledger's tokens
// against the backends' own counters (pkg/billing/reconcile).
type ledgerReconcileOptions struct {
	db              *dbFlag
	rf              *remoteFlags
	Since           string
	Interval        time.Duration
	Targets         []string
	ToleranceTokens int64
	Tolerance       float64
	State           string
	MetricsFile     string
	NoAlert         bool
	Timeout         time.Duration

	format  printer.Format
	since   time.Time
	targets []reconcile.Target
}

func (o *ledgerReconcileOptions) Complete(now time.Time) (err error) {
	if o.Since != "" {
		if o.since, err = parseSince(o.Since, now); err != nil {
			return err
		}
	}
	for _, s := range o.Targets {
		t, err := reconcile.ParseTarget(s)
		if err != nil {
			return err
		}
		o.targets = append(o.targets, t)
	}
	if o.State == "" {
		dir, err := store.DataDir()
		if err != nil {
			return fmt.Errorf("--state: %w", err)
		}
		o.State = filepath.Join(dir, "reconcile-state.json")
	}
	return nil
}

func (o *ledgerReconcileOptions) Validate() error {
	switch {
	case len(o.targets) == 0:
		return errors.New("--target is required: the /metrics URL of each backend (vLLM, llama.cpp --metrics, or an llmctl gateway with the embedded engine)")
	case (o.Since == "") == (o.Interval == 0):
		return errors.New("give one of --since (a window back from now, from the samples in --state) or --interval (watch the targets for that long now)")
	case o.Interval < 0 || o.ToleranceTokens < 0 || o.Tolerance < 0 || o.Tolerance > 1:
		return errors.New("--interval and --tolerance-tokens must not be negative, --tolerance is a fraction in [0, 1]")
	}
	return nil
}

func (o *ledgerReconcileOptions) Run(cmd *cobra.Command, g *globals) error {
	ctx := cmd.Context()
	if rc, err := o.rf.remote(o.db); err != nil {
		return err
	} else if rc != nil {
		return errors.New("ledger reconcile reads the ledger database: use --db (the admin API has no token sums)")
	}
	client := &http.Client{Timeout: o.Timeout}
	scrape := func(now time.Time) ([]reconcile.Sample, error) {
		var out []reconcile.Sample
		for _, t := range o.targets {
			s, err := reconcile.Scrape(ctx, client, t, now)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	}
	history, err := reconcile.LoadState(o.State)
	if err != nil {
		return err
	}
	since := o.since
	if o.Interval > 0 {
		// A live window: sample now, wait, sample again.
		since = time.Now()
		first, err := scrape(since)
		if err != nil {
			return err
		}
		history = append(history, first...)
		select {
		case <-time.After(o.Interval):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	until := time.Now()
	current, err := scrape(until)
	if err != nil {
		return err
	}
	c, err := o.db.openLedger(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	lt, err := reconcile.LedgerTokens(ctx, c.lg, reconcile.EarliestFrom(since, current, history), until)
	if err != nil {
		return err
	}
	rows := reconcile.Compare(reconcile.Input{Since: since, Until: until, Current: current, History: history, Ledger: lt,
		Tolerance: reconcile.Tolerance{Tokens: o.ToleranceTokens, Fraction: o.Tolerance}})
	if err := reconcile.SaveState(o.State, history, current, 30*24*time.Hour, until); err != nil {
		return err
	}
	if o.MetricsFile != "" {
		reg := prometheus.NewRegistry()
		if err := reconcile.Gauges(reg, rows); err != nil {
			return err
		}
		if err := prometheus.WriteToTextfile(o.MetricsFile, reg); err != nil {
			return fmt.Errorf("--metrics-file: %w", err)
		}
	}
	if err := printReconcile(g, o.format, rows); err != nil {
		return err
	}
	if !reconcile.Drifted(rows) {
		return nil
	}
	if !o.NoAlert {
		if ob, ok := ledger.OutboxOf(c.lg); ok {
			if _, err := reconcile.Alert(ctx, ob, rows, until); err != nil {
				return err
			}
		}
	}
	return exitError{code: 1, msg: "billing drift: the ledger and the backends disagree beyond the tolerance (rows marked drift)"}
}

func printReconcile(g *globals, f printer.Format, rows []reconcile.Row) error {
	if f != printer.Table {
		if rows == nil {
			rows = []reconcile.Row{}
		}
		return printer.Structured(g.Out, f, rows)
	}
	tw := printer.TableWriter(g.Out, "model", "since", "ledger in+out", "backend in+out", "drift in+out", "backend/ledger", "status")
	for _, r := range rows {
		ratio := "-"
		if v := r.Ratio(); !math.IsNaN(v) {
			ratio = strconv.FormatFloat(v, 'f', 3, 64)
		}
		backend := fmt.Sprintf("%d+%d", r.Backend.Prompt, r.Backend.Generated)
		if r.LowerBound {
			backend = "≥" + backend
		}
		status := r.Status
		if r.Note != "" {
			status += ": " + r.Note
		}
		since := "-"
		if !r.Since.IsZero() {
			since = r.Since.Format(time.RFC3339)
		}
		tw.Row(r.Model, since, fmt.Sprintf("%d+%d", r.Ledger.Prompt, r.Ledger.Generated), backend,
			fmt.Sprintf("%+d%+d", r.Drift.Prompt, r.Drift.Generated), ratio, status)
	}
	return tw.Flush()
}

func newLedgerReconcileCmd(g *globals, db *dbFlag, rf *remoteFlags) *cobra.Command {
	o := &ledgerReconcileOptions{db: db, rf: rf}
	cmd := &cobra.Command{
		Use:   "reconcile",
		Short: "Compare the tokens the ledger charged with the tokens the backends counted",
		Long: `Compare, per model, the prompt and completion tokens the ledger charged with
the tokens the backends report they processed (vLLM, llama.cpp --metrics, the
embedded engine via the gateway's /metrics). Drift beyond the tolerance exits 1,
writes a billing.drift alert and, with --metrics-file, llmctl_billing_drift_tokens.

Counters start at the backend's start; a window needs a baseline: the backend's
own start time when it started inside the window, else a sample from an earlier
run kept in --state. --interval watches the targets for a while instead.`,
		Example: `  llmctl ledger reconcile --since 1h --target http://vllm:8000/metrics
  llmctl ledger reconcile --interval 5m --target qwen=http://llama:8080/metrics -o json`,
		Args: cobra.NoArgs,
		RunE: windowRunE(g, o),
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Since, "since", "", "window start: a duration back (1h), a date or an RFC 3339 time")
	fl.DurationVar(&o.Interval, "interval", 0, "instead of --since: sample the targets now and again after this long")
	fl.StringArrayVar(&o.Targets, "target", nil, "a backend's metrics URL, or MODEL=URL to name its model (repeat for replicas)")
	fl.Int64Var(&o.ToleranceTokens, "tolerance-tokens", 16, "drift must exceed this many tokens")
	fl.Float64Var(&o.Tolerance, "tolerance", 0.01, "and this fraction of the backend's count")
	fl.StringVar(&o.State, "state", "", "file of earlier samples (default reconcile-state.json in the data dir)")
	fl.StringVar(&o.MetricsFile, "metrics-file", "", "write llmctl_billing_drift_tokens here (node_exporter textfile format)")
	fl.BoolVar(&o.NoAlert, "no-alert", false, "do not write a billing.drift alert on drift")
	fl.DurationVar(&o.Timeout, "timeout", 10*time.Second, "per-target scrape timeout")
	printer.Bind(cmd, &o.format)
	return cmd
}
