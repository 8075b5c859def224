package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/billing/webhook"
	"github.com/llmctl/llmctl/pkg/serve"
	"github.com/llmctl/llmctl/pkg/serve/config"
)

// serveBillingOptions are `llmctl serve`'s ledger and webhook flags, over
// the config's `billing:` section (already file < env). Prepaid billing is
// on when a prices file is given; webhooks when a secret is.
type serveBillingOptions struct {
	prices           string
	overdraft        string
	spoolDir         string
	stripeSecrets    []string
	standardSecrets  []string
	lemonSecrets     []string
	webhookTolerance time.Duration
	redeemPerMinute  int
	admitWhenDown    bool

	// What load makes of the effective section.
	cfg          config.Billing
	priceList    ledger.Prices
	overdraftMic ledger.Micros
	alerts       bool // alerts configured: they need the ledger
}

func (o *serveBillingOptions) bind(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.prices, "prices", "", "prices file (YAML, micro-units per 1M tokens); turns on prepaid billing (env LLMCTL_PRICES, config billing.prices)")
	f.StringVar(&o.overdraft, "overdraft", "0", "how far below zero a tenant's balance may go, in currency units (env LLMCTL_OVERDRAFT, config billing.overdraft)")
	f.StringVar(&o.spoolDir, "spool-dir", "", "ledger spool directory, one per process (env LLMCTL_SPOOL_DIR, config billing.spoolDir; default DATA_DIR/spool)")
	f.StringArrayVar(&o.stripeSecrets, "stripe-webhook-secret", nil, "Stripe endpoint secret, repeatable for rotation (env LLMCTL_STRIPE_WEBHOOK_SECRETS, comma-separated; config billing.stripeWebhookSecrets)")
	f.StringArrayVar(&o.standardSecrets, "standard-webhook-secret", nil, "Standard Webhooks whsec_ secret, repeatable (env LLMCTL_STANDARD_WEBHOOK_SECRETS, comma-separated; config billing.standardWebhookSecrets)")
	f.StringArrayVar(&o.lemonSecrets, "lemonsqueezy-webhook-secret", nil, "Lemon Squeezy signing secret, repeatable for rotation (env LLMCTL_LEMONSQUEEZY_WEBHOOK_SECRETS, comma-separated; config billing.lemonSqueezyWebhookSecrets)")
	f.DurationVar(&o.webhookTolerance, "webhook-tolerance", config.DefaultWebhookTolerance, "largest accepted webhook timestamp skew (config billing.webhookTolerance)")
	f.IntVar(&o.redeemPerMinute, "redeem-attempts-per-minute", serve.DefaultRedeemPerMinute, "voucher redemption attempts (POST /v1/me/redeem) allowed per API key and minute, in each replica; -1: no limit (config billing.redeemAttemptsPerMinute)")
	f.BoolVar(&o.admitWhenDown, "admit-when-ledger-down", false, "serve requests with an unrecorded hold when the ledger database is unreachable (default: 503; config billing.admitWhenLedgerDown)")
}

// apply layers the flags that were given over b.
func (o *serveBillingOptions) apply(b *config.Billing, changed func(string) bool) {
	for flag, set := range map[string]func(){
		"prices":                      func() { b.Prices = o.prices },
		"overdraft":                   func() { b.Overdraft = o.overdraft },
		"spool-dir":                   func() { b.SpoolDir = o.spoolDir },
		"stripe-webhook-secret":       func() { b.StripeWebhookSecrets = o.stripeSecrets },
		"standard-webhook-secret":     func() { b.StandardWebhookSecrets = o.standardSecrets },
		"lemonsqueezy-webhook-secret": func() { b.LemonSqueezyWebhookSecrets = o.lemonSecrets },
		"webhook-tolerance":           func() { b.WebhookTolerance = o.webhookTolerance },
		"redeem-attempts-per-minute":  func() { b.RedeemAttemptsPerMinute = o.redeemPerMinute },
		"admit-when-ledger-down":      func() { b.AdmitWhenLedgerDown = o.admitWhenDown },
	} {
		if changed(flag) {
			set()
		}
	}
}

// load reads what the effective (validated) section names: the prices
// file, the overdraft in micro-units and the spool's default place.
func (o *serveBillingOptions) load(b config.Billing) error {
	var err error
	if o.overdraftMic, err = b.OverdraftMicros(); err != nil {
		return err
	}
	if b.Prices != "" {
		if o.priceList, err = ledger.LoadPrices(b.Prices); err != nil {
			return fmt.Errorf("prices %s: %w", b.Prices, err)
		}
	}
	if b.SpoolDir == "" {
		dir, err := store.DataDir()
		if err != nil {
			return err
		}
		b.SpoolDir = filepath.Join(dir, "spool")
	}
	o.cfg = b
	return nil
}

func (o *serveBillingOptions) enabled() bool {
	return o.cfg.Prices != "" || o.cfg.Webhooks() || o.alerts
}

// billing is what serve gets from the ledger: the Reserver, the webhook
// handler, and a Close that flushes the spool on shutdown.
type billingParts struct {
	reserver serve.Reserver
	webhooks http.Handler
	// ledger is the admin API's credits/balance and /v1/me's balance;
	// nil when billing is off.
	ledger *ledger.Ledger
	close  func(ctx context.Context) error
}

func (o *serveBillingOptions) open(ctx context.Context, dsn string, st store.Store, reg prometheus.Registerer, log *slog.Logger) (*billingParts, error) {
	if !o.enabled() {
		return &billingParts{close: func(context.Context) error { return nil }}, nil
	}
	ls, err := ledger.Open(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("open ledger: %w", err)
	}
	// The admin tenant is the operator's own: charged like any tenant (its
	// spend shows in the ledger) but never refused for balance, so the
	// bootstrap key works the moment --prices is on (docs/billing.md).
	l, err := ledger.New(ls, ledger.Config{Prices: o.priceList, Overdraft: o.overdraftMic, SpoolDir: o.cfg.SpoolDir,
		AdmitWhenDown: o.cfg.AdmitWhenLedgerDown, HouseTenants: []string{serve.AdminTenant},
		Logger: log.With("component", "ledger"), Registerer: reg})
	if err != nil {
		ls.Close()
		return nil, err
	}
	p := &billingParts{ledger: l, close: func(ctx context.Context) error {
		err := l.Close(ctx)
		ls.Close()
		return err
	}}
	if o.cfg.Prices != "" {
		p.reserver = l
	}
	if o.cfg.Webhooks() {
		h, err := webhook.New(webhook.Config{StripeSecrets: o.cfg.StripeWebhookSecrets, StandardSecrets: o.cfg.StandardWebhookSecrets,
			LemonSqueezySecrets: o.cfg.LemonSqueezyWebhookSecrets, Tolerance: o.cfg.WebhookTolerance, Logger: log.With("component", "webhook"), Registerer: reg}, l, st)
		if err != nil {
			_ = p.close(ctx)
			return nil, err
		}
		p.webhooks = h
	}
	return p, nil
}
