package config

import (
	"strings"

	"github.com/llmctl/llmctl/pkg/billing/alerts"
)

// mergeAlertsEnv overlays the alerts' variables: LLMCTL_ALERTS_LOW_BALANCE,
// and one endpoint, LLMCTL_ALERTS_WEBHOOK_URL with _SECRET and _EVENTS
// (comma-separated), replacing the file's endpoints as LLMCTL_BACKENDS
// replaces its backends, so that a secret never has to be in a file. Then
// it fills every endpoint's secretEnv from the environment.
func (c *Config) mergeAlertsEnv(get, lookup func(string) (string, bool)) {
	if v, ok := get("LLMCTL_ALERTS_LOW_BALANCE"); ok {
		c.Alerts.LowBalance = v
	}
	if v, ok := get("LLMCTL_ALERTS_WEBHOOK_URL"); ok {
		c.Alerts.Endpoints = []alerts.Endpoint{{URL: v, SecretEnv: "LLMCTL_ALERTS_WEBHOOK_SECRET", Events: SplitList(envOr(get, "LLMCTL_ALERTS_WEBHOOK_EVENTS"))}}
	}
	c.Alerts.Resolve(lookup)
}

func envOr(get func(string) (string, bool), k string) string {
	v, _ := get(k)
	return v
}

// SplitList splits a comma-separated list, dropping empty items.
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
