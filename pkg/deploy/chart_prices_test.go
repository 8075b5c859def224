package deploy_test

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/deploy"
)

// gateway.prices turns on billing in the pod: the prices file beside the
// config in the ConfigMap (mounted at /etc/llmctl), and billing.prices
// naming it; ledger.ParsePrices reads the file the chart wrote.
func TestGatewayPrices(t *testing.T) {
	var cm *corev1.ConfigMap
	for _, o := range decode(t, render(t, "gateway.prices.default.input=500000", "gateway.prices.default.output=1500000",
		"gateway.prices.models.llama3.input=200000", "gateway.prices.models.llama3.output=600000",
		"gateway.config.billing.overdraft=2")) {
		if c, ok := o.(*corev1.ConfigMap); ok {
			cm = c
		}
	}
	if cm == nil {
		t.Fatal("no ConfigMap rendered")
	}
	var cfg struct {
		Billing map[string]any `json:"billing"`
	}
	if err := sigsyaml.Unmarshal([]byte(cm.Data["config.yaml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Billing["prices"] != "/etc/llmctl/prices.yaml" || cfg.Billing["overdraft"] == nil {
		t.Errorf("config's billing section = %v, want prices /etc/llmctl/prices.yaml and the user's overdraft", cfg.Billing)
	}
	p, err := ledger.ParsePrices([]byte(cm.Data["prices.yaml"]))
	if err != nil {
		t.Fatalf("rendered prices.yaml does not parse: %v\n%s", err, cm.Data["prices.yaml"])
	}
	if _, ok := p.Models["llama3"]; !ok {
		t.Errorf("prices.yaml lost llama3: %s", cm.Data["prices.yaml"])
	}

	for _, o := range decode(t, render(t)) {
		if c, ok := o.(*corev1.ConfigMap); ok && (c.Data["prices.yaml"] != "" || strings.Contains(c.Data["config.yaml"], "prices")) {
			t.Errorf("no gateway.prices, yet the ConfigMap has prices: %v", c.Data)
		}
	}

	vals, err := deploy.Values(nil, []string{"gateway.prices.default.input=1", "gateway.config.billing.prices=/x.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := deploy.Render(loadChart(t), deploy.RenderOptions{Release: "llmctl", Namespace: "llmctl", Values: vals}); err == nil ||
		!strings.Contains(err.Error(), "set gateway.prices or gateway.config.billing.prices, not both") {
		t.Errorf("both prices settings: %v", err)
	}
}
