package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/billing/webhook"
	"github.com/llmctl/llmctl/pkg/serve"
)

// serveBillingOptions are `llmctl serve`'s ledger and webhook flags. Prepaid
// billing is on when a prices file is given; webhooks when a secret is.
type serveBillingOptions struct {
	Prices           string
	Overdraft        string
	SpoolDir         string
	StripeSecrets    []string
	StandardSecrets  []string
	LemonSecrets     []string
	WebhookTolerance time.Duration
	RedeemPerMinute  int
	AdmitWhenDown    bool

	prices    ledger.Prices
	overdraft ledger.Micros
	changed   func(string) bool
	alerts    bool // alerts configured: they need the ledger
}

func (o *serveBillingOptions) bind(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.Prices, "prices", "", "prices file (YAML, micro-units per 1M tokens); turns on prepaid billing (env LLMCTL_PRICES)")
	f.StringVar(&o.Overdraft, "overdraft", "0", "how far below zero a tenant's balance may go, in currency units (env LLMCTL_OVERDRAFT)")
	f.StringVar(&o.SpoolDir, "spool-dir", "", "ledger spool directory, one per process (env LLMCTL_SPOOL_DIR; default DATA_DIR/spool)")
	f.StringArrayVar(&o.StripeSecrets, "stripe-webhook-secret", nil, "Stripe endpoint secret, repeatable for rotation (env LLMCTL_STRIPE_WEBHOOK_SECRETS, comma-separated)")
	f.StringArrayVar(&o.StandardSecrets, "standard-webhook-secret", nil, "Standard Webhooks whsec_ secret, repeatable (env LLMCTL_STANDARD_WEBHOOK_SECRETS, comma-separated)")
	f.StringArrayVar(&o.LemonSecrets, "lemonsqueezy-webhook-secret", nil, "Lemon Squeezy signing secret, repeatable for rotation (env LLMCTL_LEMONSQUEEZY_WEBHOOK_SECRETS, comma-separated)")
	f.DurationVar(&o.WebhookTolerance, "webhook-tolerance", 300*time.Second, "largest accepted webhook timestamp skew")
	f.IntVar(&o.RedeemPerMinute, "redeem-attempts-per-minute", serve.DefaultRedeemPerMinute, "voucher redemption attempts (POST /v1/me/redeem) allowed per API key and minute, in each replica; -1: no limit")
	f.BoolVar(&o.AdmitWhenDown, "admit-when-ledger-down", false, "serve requests with an unrecorded hold when the ledger database is unreachable (default: 503)")
	o.changed = cmd.Flags().Changed
}

func (o *serveBillingOptions) Complete(lookup func(string) (string, bool)) error {
	env := func(flag, key string, dst *string) {
		if v, ok := lookup(key); ok && !o.changed(flag) {
			*dst = v
		}
	}
	env("prices", "LLMCTL_PRICES", &o.Prices)
	env("overdraft", "LLMCTL_OVERDRAFT", &o.Overdraft)
	env("spool-dir", "LLMCTL_SPOOL_DIR", &o.SpoolDir)
	list := func(flag, key string, dst *[]string) {
		if v, ok := lookup(key); ok && !o.changed(flag) {
			*dst = nil
			for _, s := range strings.Split(v, ",") {
				if s = strings.TrimSpace(s); s != "" {
					*dst = append(*dst, s)
				}
			}
		}
	}
	list("stripe-webhook-secret", "LLMCTL_STRIPE_WEBHOOK_SECRETS", &o.StripeSecrets)
	list("standard-webhook-secret", "LLMCTL_STANDARD_WEBHOOK_SECRETS", &o.StandardSecrets)
	list("lemonsqueezy-webhook-secret", "LLMCTL_LEMONSQUEEZY_WEBHOOK_SECRETS", &o.LemonSecrets)
	var err error
	if o.overdraft, err = ledger.ParseMicros(o.Overdraft); err != nil {
		return fmt.Errorf("--overdraft: %w", err)
	}
	if o.overdraft < 0 {
		return errors.New("--overdraft must not be negative")
	}
	if o.Prices != "" {
		if o.prices, err = ledger.LoadPrices(o.Prices); err != nil {
			return fmt.Errorf("--prices: %w", err)
		}
	}
	if o.SpoolDir == "" {
		dir, err := store.DataDir()
		if err != nil {
			return err
		}
		o.SpoolDir = filepath.Join(dir, "spool")
	}
	return nil
}

func (o *serveBillingOptions) enabled() bool {
	return o.Prices != "" || o.webhooks() || o.alerts
}

func (o *serveBillingOptions) webhooks() bool {
	return len(o.StripeSecrets) > 0 || len(o.StandardSecrets) > 0 || len(o.LemonSecrets) > 0
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
	l, err := ledger.New(ls, ledger.Config{Prices: o.prices, Overdraft: o.overdraft, SpoolDir: o.SpoolDir,
		AdmitWhenDown: o.AdmitWhenDown, HouseTenants: []string{serve.AdminTenant},
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
	if o.Prices != "" {
		p.reserver = l
	}
	if o.webhooks() {
		h, err := webhook.New(webhook.Config{StripeSecrets: o.StripeSecrets, StandardSecrets: o.StandardSecrets, LemonSqueezySecrets: o.LemonSecrets,
			Tolerance: o.WebhookTolerance, Logger: log.With("component", "webhook"), Registerer: reg}, l, st)
		if err != nil {
			_ = p.close(ctx)
			return nil, err
		}
		p.webhooks = h
	}
	return p, nil
}
