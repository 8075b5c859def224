package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/llmctl/llmctl/pkg/billing/alerts"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/serve/config"
)

// serveAlertsOptions are `llmctl serve`'s alerts flags: the default
// low-balance threshold and one endpoint, over the file's `alerts:`.
type serveAlertsOptions struct {
	lowBalance string
	url        string
	secret     string
	events     []string
}

func (a *serveAlertsOptions) bind(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&a.lowBalance, "alerts-low-balance", "", "default balance.low threshold in currency units, e.g. 1.00 (env LLMCTL_ALERTS_LOW_BALANCE)")
	f.StringVar(&a.url, "alerts-webhook-url", "", "alerts endpoint URL, replacing the config file's endpoints (env LLMCTL_ALERTS_WEBHOOK_URL)")
	f.StringVar(&a.secret, "alerts-webhook-secret", "", "its Standard Webhooks whsec_ signing secret (env LLMCTL_ALERTS_WEBHOOK_SECRET, preferred: flags show in ps)")
	f.StringSliceVar(&a.events, "alerts-webhook-events", nil, "events it receives, comma-separated; default all (env LLMCTL_ALERTS_WEBHOOK_EVENTS)")
}

// apply layers the flags over cfg (already file < env).
func (a *serveAlertsOptions) apply(cfg *config.Config, changed func(string) bool, lookup func(string) (string, bool)) error {
	if changed("alerts-low-balance") {
		cfg.Alerts.LowBalance = a.lowBalance
	}
	if !changed("alerts-webhook-url") {
		if changed("alerts-webhook-secret") || changed("alerts-webhook-events") {
			return errors.New("--alerts-webhook-secret and --alerts-webhook-events need --alerts-webhook-url")
		}
		return nil
	}
	cfg.Alerts.Endpoints = []alerts.Endpoint{{URL: a.url, Secret: a.secret, SecretEnv: "LLMCTL_ALERTS_WEBHOOK_SECRET", Events: a.events}}
	if !changed("alerts-webhook-events") {
		if v, ok := lookup("LLMCTL_ALERTS_WEBHOOK_EVENTS"); ok {
			cfg.Alerts.Endpoints[0].Events = config.SplitList(v)
		}
	}
	cfg.Alerts.Resolve(lookup)
	return nil
}

// startAlerts sets the ledger's default threshold and runs the delivery
// worker until stop is called. Without a ledger there is nothing to alert on.
func startAlerts(ctx context.Context, cfg alerts.Config, l *ledger.Ledger, st store.Store, reg prometheus.Registerer, log *slog.Logger) (ob ledger.Outbox, stop func(), err error) {
	stop = func() {}
	if l == nil {
		return nil, stop, nil
	}
	ob, ok := ledger.OutboxOf(l.Store())
	if !ok {
		return nil, stop, nil
	}
	if !cfg.Enabled() {
		return ob, stop, nil
	}
	low, err := cfg.LowBalanceMicros()
	if err != nil {
		return nil, nil, err
	}
	ob.SetLowBalance(low)
	w, err := alerts.New(alerts.Options{Config: cfg, Outbox: ob, Keys: st, Backlog: l.Backlog,
		Logger: log.With("component", "alerts"), Registerer: reg})
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { w.Run(ctx) })
	log.Info("alerts on", "endpoints", len(cfg.Endpoints), "lowBalance", low.String())
	return ob, func() { cancel(); wg.Wait() }, nil
}
