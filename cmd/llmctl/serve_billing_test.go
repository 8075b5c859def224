package main

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// billingSettings completes serve's billing section from a config file,
// env and serve's own flags (parsed by cobra, as on the command line).
func billingSettings(t *testing.T, file string, env map[string]string, args ...string) (*serveOptions, error) {
	t.Helper()
	o := &serveOptions{g: &globals{streams: defaultStreams(), ConfigFile: file, LogLevel: "info"}}
	cmd := &cobra.Command{Use: "serve"}
	o.billing.bind(cmd)
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	o.changed = cmd.Flags().Changed
	if err := o.Complete(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		return o, err
	}
	return o, o.Validate()
}

// TestServeBillingPrecedence: the billing settings layer like every other
// (flag > env > file > default), the old variables included.
func TestServeBillingPrecedence(t *testing.T) {
	file := writeFile(t, `
billing:
  prices: /from/file.yaml
  overdraft: "1"
  spoolDir: /spool/file
  standardWebhookSecrets: [whsec_file]
  webhookTolerance: 1m
  redeemAttemptsPerMinute: 5
`)
	o, err := billingSettings(t, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if b := o.cfg.Billing; b.Prices != "" || b.Overdraft != "0" || b.WebhookTolerance != 300*time.Second || b.RedeemAttemptsPerMinute != 0 || b.Webhooks() {
		t.Fatalf("defaults: %+v", b)
	}

	env := map[string]string{"LLMCTL_OVERDRAFT": "2", "LLMCTL_SPOOL_DIR": "/spool/env", "LLMCTL_STANDARD_WEBHOOK_SECRETS": "whsec_e1,whsec_e2"}
	o, err = billingSettings(t, file, env)
	if err != nil {
		t.Fatal(err)
	}
	if b := o.cfg.Billing; b.Prices != "/from/file.yaml" || b.Overdraft != "2" || b.SpoolDir != "/spool/env" ||
		!slices.Equal(b.StandardWebhookSecrets, []string{"whsec_e1", "whsec_e2"}) || b.WebhookTolerance != time.Minute || b.RedeemAttemptsPerMinute != 5 {
		t.Fatalf("env over file: %+v", b)
	}

	o, err = billingSettings(t, file, env, "--overdraft", "3", "--spool-dir", "/spool/flag", "--standard-webhook-secret", "whsec_f",
		"--webhook-tolerance", "2m", "--redeem-attempts-per-minute", "-1", "--admit-when-ledger-down")
	if err != nil {
		t.Fatal(err)
	}
	if b := o.cfg.Billing; b.Prices != "/from/file.yaml" || b.Overdraft != "3" || b.SpoolDir != "/spool/flag" ||
		!slices.Equal(b.StandardWebhookSecrets, []string{"whsec_f"}) || b.WebhookTolerance != 2*time.Minute || b.RedeemAttemptsPerMinute != -1 || !b.AdmitWhenLedgerDown {
		t.Fatalf("flags over env: %+v", b)
	}
}

func TestServeBillingRefusals(t *testing.T) {
	for _, c := range []struct {
		name, file string
		env        map[string]string
		args       []string
		want       string
	}{
		{"unknown field", "billing:\n  overdraft: 1\n  spooldir: /x\n", nil, nil, "spooldir"},
		{"negative overdraft flag", "", nil, []string{"--overdraft", "-1"}, "billing.overdraft"},
		{"bad overdraft env", "", map[string]string{"LLMCTL_OVERDRAFT": "lots"}, nil, "billing.overdraft"},
		{"zero tolerance", "billing:\n  webhookTolerance: 0s\n", nil, nil, "billing.webhookTolerance"},
	} {
		t.Run(c.name, func(t *testing.T) {
			file := ""
			if c.file != "" {
				file = writeFile(t, c.file)
			}
			_, err := billingSettings(t, file, c.env, c.args...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one naming %q", err, c.want)
			}
		})
	}
	missing := filepath.Join(t.TempDir(), "prices.yaml")
	o, err := billingSettings(t, "", map[string]string{"LLMCTL_PRICES": missing})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.billing.load(o.cfg.Billing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("missing prices file: %v", err)
	}
}

// TestServeBillingSpoolDefault: no spool dir anywhere is DATA_DIR/spool.
func TestServeBillingSpoolDefault(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	o, err := billingSettings(t, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.billing.load(o.cfg.Billing); err != nil {
		t.Fatal(err)
	}
	if d := o.billing.cfg.SpoolDir; !strings.HasSuffix(d, filepath.Join("llmctl", "spool")) {
		t.Fatalf("spool dir %q", d)
	}
}
