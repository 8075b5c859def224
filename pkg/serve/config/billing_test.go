package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestBillingSection(t *testing.T) {
	c := Defaults("sqlite:/tmp/x.db")
	if b := c.Billing; b.Overdraft != "0" || b.WebhookTolerance != DefaultWebhookTolerance || b.Prices != "" || b.Webhooks() {
		t.Fatalf("defaults: %+v", b)
	}
	if err := c.MergeFile("serve.yaml", strings.NewReader(`
billing:
  prices: /etc/llmctl/prices.yaml
  overdraft: "1.50"
  stripeWebhookSecrets: [whsec_a, whsec_b]
  webhookTolerance: 1m
  redeemAttemptsPerMinute: -1
  admitWhenLedgerDown: true
`)); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"LLMCTL_OVERDRAFT": "2", "LLMCTL_LEMONSQUEEZY_WEBHOOK_SECRETS": " l1, ,l2", "LLMCTL_SPOOL_DIR": "/var/spool/llmctl", "LLMCTL_PRICES": " "}
	if err := c.MergeEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	b := c.Billing
	if b.Prices != "/etc/llmctl/prices.yaml" || b.Overdraft != "2" || b.SpoolDir != "/var/spool/llmctl" || b.WebhookTolerance != time.Minute ||
		b.RedeemAttemptsPerMinute != -1 || !b.AdmitWhenLedgerDown || !slices.Equal(b.StripeWebhookSecrets, []string{"whsec_a", "whsec_b"}) ||
		!slices.Equal(b.LemonSqueezyWebhookSecrets, []string{"l1", "l2"}) || !b.Webhooks() {
		t.Fatalf("env over file over defaults (an empty variable changes nothing): %+v", b)
	}
	if m, err := b.OverdraftMicros(); err != nil || m != 2_000_000 {
		t.Fatalf("overdraft: %d %v", m, err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestBillingSectionRefusals(t *testing.T) {
	c := Defaults("sqlite:/tmp/x.db")
	err := c.MergeFile("serve.yaml", strings.NewReader("billing:\n  overdraf: 1\n"))
	if err == nil || !strings.Contains(err.Error(), "overdraf") || !strings.Contains(err.Error(), "serve.yaml") {
		t.Fatalf("unknown billing field: %v", err)
	}
	c = Defaults("sqlite:/tmp/x.db")
	c.Billing = Billing{Overdraft: "-1", RedeemAttemptsPerMinute: -2}
	err = c.Validate()
	for _, want := range []string{"billing.overdraft", "billing.webhookTolerance", "billing.redeemAttemptsPerMinute"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validation error lacks %q: %v", want, err)
		}
	}
	c.Billing = defaultBilling()
	c.Billing.Overdraft = "lots"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "billing.overdraft") {
		t.Errorf("overdraft not a number: %v", err)
	}
}
