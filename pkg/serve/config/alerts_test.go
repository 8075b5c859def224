package config

import (
	"strings"
	"testing"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// alerts: in YAML, secretEnv from the environment, the LLMCTL_ALERTS_*
// variables over the file, and errors that name the field.
func TestAlertsConfig(t *testing.T) {
	env := map[string]string{"HOOK_SECRET": testSecret}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	c := Defaults("sqlite:/tmp/x.db")
	yaml := "alerts:\n  lowBalance: \"1.00\"\n  endpoints:\n    - url: https://hooks.example/a\n      secretEnv: HOOK_SECRET\n      events: [balance.low]\n"
	if err := c.MergeFile("serve.yaml", strings.NewReader(yaml)); err != nil {
		t.Fatal(err)
	}
	if err := c.MergeEnv(lookup); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if e := c.Alerts.Endpoints[0]; e.Secret != testSecret || len(e.Events) != 1 || c.Alerts.LowBalance != "1.00" {
		t.Fatalf("file + secretEnv: %+v", c.Alerts)
	}

	env["LLMCTL_ALERTS_LOW_BALANCE"] = "2.5"
	env["LLMCTL_ALERTS_WEBHOOK_URL"] = "https://hooks.example/b"
	env["LLMCTL_ALERTS_WEBHOOK_SECRET"] = testSecret
	env["LLMCTL_ALERTS_WEBHOOK_EVENTS"] = "payment.credited, key.expiring"
	if err := c.MergeEnv(lookup); err != nil {
		t.Fatal(err)
	}
	if e := c.Alerts.Endpoints; len(e) != 1 || e[0].URL != "https://hooks.example/b" || e[0].Secret != testSecret || len(e[0].Events) != 2 || c.Alerts.LowBalance != "2.5" {
		t.Fatalf("env over file: %+v", c.Alerts)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}

	c = Defaults("sqlite:/tmp/x.db")
	bad := "alerts:\n  endpoints:\n    - url: https://hooks.example/a\n      secret: whsec_short\n      events: [balance.lo]\n"
	if err := c.MergeFile("serve.yaml", strings.NewReader(bad)); err != nil {
		t.Fatal(err)
	}
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "alerts.endpoints[0].secret") || !strings.Contains(err.Error(), `unknown event "balance.lo"`) || strings.Contains(err.Error(), "whsec_short") {
		t.Fatalf("bad alerts config: %v", err)
	}
}
