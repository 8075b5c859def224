package config

import (
	"errors"
	"fmt"
	"time"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
)

// Billing is the ledger and the payment webhooks (docs/billing.md): the
// `billing:` section, under LLMCTL_… variables and serve's flags like every
// other setting.
type Billing struct {
	// Prices is the prices file; set, it turns on prepaid billing.
	Prices string `yaml:"prices"`
	// Overdraft is how far below zero a balance may go, in currency units.
	Overdraft string `yaml:"overdraft"`
	// SpoolDir is the ledger's spool, one per process; empty: DATA_DIR/spool.
	SpoolDir string `yaml:"spoolDir"`
	// The payment providers' signing secrets, several while rotating.
	StripeWebhookSecrets       []string      `yaml:"stripeWebhookSecrets"`
	StandardWebhookSecrets     []string      `yaml:"standardWebhookSecrets"`
	LemonSqueezyWebhookSecrets []string      `yaml:"lemonSqueezyWebhookSecrets"`
	WebhookTolerance           time.Duration `yaml:"webhookTolerance"` // largest accepted timestamp skew
	// RedeemAttemptsPerMinute bounds POST /v1/me/redeem per key and
	// replica: 0 is serve's default (10), -1 no limit.
	RedeemAttemptsPerMinute int `yaml:"redeemAttemptsPerMinute"`
	// AdmitWhenLedgerDown serves with an unrecorded hold instead of 503
	// while the ledger database is unreachable.
	AdmitWhenLedgerDown bool `yaml:"admitWhenLedgerDown"`
}

// DefaultWebhookTolerance is the skew a webhook's timestamp may have.
const DefaultWebhookTolerance = 300 * time.Second

func defaultBilling() Billing {
	return Billing{Overdraft: "0", WebhookTolerance: DefaultWebhookTolerance}
}

// mergeBillingEnv overlays the billing variables, named as before the
// section existed; a secrets variable (comma-separated) replaces the
// file's list, as LLMCTL_BACKENDS replaces its backends.
func (c *Config) mergeBillingEnv(get func(string) (string, bool)) {
	for k, dst := range map[string]*string{"LLMCTL_PRICES": &c.Billing.Prices, "LLMCTL_OVERDRAFT": &c.Billing.Overdraft,
		"LLMCTL_SPOOL_DIR": &c.Billing.SpoolDir} {
		if v, ok := get(k); ok {
			*dst = v
		}
	}
	for k, dst := range map[string]*[]string{"LLMCTL_STRIPE_WEBHOOK_SECRETS": &c.Billing.StripeWebhookSecrets,
		"LLMCTL_STANDARD_WEBHOOK_SECRETS":     &c.Billing.StandardWebhookSecrets,
		"LLMCTL_LEMONSQUEEZY_WEBHOOK_SECRETS": &c.Billing.LemonSqueezyWebhookSecrets} {
		if v, ok := get(k); ok {
			*dst = SplitList(v)
		}
	}
}

// OverdraftMicros is Overdraft in micro-units.
func (b Billing) OverdraftMicros() (ledger.Micros, error) {
	m, err := ledger.ParseMicros(b.Overdraft)
	if err != nil {
		return 0, fmt.Errorf("billing.overdraft: %w", err)
	}
	if m < 0 {
		return 0, fmt.Errorf("billing.overdraft: %s must not be negative", b.Overdraft)
	}
	return m, nil
}

// Webhooks reports whether any payment provider is configured.
func (b Billing) Webhooks() bool {
	return len(b.StripeWebhookSecrets) > 0 || len(b.StandardWebhookSecrets) > 0 || len(b.LemonSqueezyWebhookSecrets) > 0
}

// Validate reports every problem in the section. The prices file is read
// when serve opens the ledger, which names it in its own errors.
func (b Billing) Validate() error {
	var errs []error
	if _, err := b.OverdraftMicros(); err != nil {
		errs = append(errs, err)
	}
	if b.WebhookTolerance <= 0 {
		errs = append(errs, fmt.Errorf("billing.webhookTolerance: %s must be positive", b.WebhookTolerance))
	}
	if b.RedeemAttemptsPerMinute < -1 {
		errs = append(errs, fmt.Errorf("billing.redeemAttemptsPerMinute: %d: want -1 (no limit), 0 (the default) or more", b.RedeemAttemptsPerMinute))
	}
	return errors.Join(errs...)
}
