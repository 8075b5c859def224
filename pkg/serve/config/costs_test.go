package config

import (
	"strings"
	"testing"
)

// TestCosts: the costs: section is read, an unknown key in it is refused
// by name, and a bad amount is named by its field.
func TestCosts(t *testing.T) {
	var c Config
	if err := c.MergeFile("serve.yaml", strings.NewReader("costs:\n  electricityPerKWh: \"0.30\"\n  gpuMonthly: 450\n  otherMonthly: \"60.5\"\n")); err != nil {
		t.Fatal(err)
	}
	if c.Costs.ElectricityPerKWh != "0.30" || c.Costs.GPUMonthly != "450" || c.Costs.OtherMonthly != "60.5" || c.Costs.Validate() != nil {
		t.Fatalf("costs %+v", c.Costs)
	}
	var d Config
	if err := d.MergeFile("serve.yaml", strings.NewReader("costs:\n  electricity: 1\n")); err == nil || !strings.Contains(err.Error(), "electricity") {
		t.Fatalf("unknown key: %v", err)
	}
	d = Defaults("sqlite:/tmp/x.db")
	d.Costs.GPUMonthly = "lots"
	if err := d.Validate(); err == nil || !strings.Contains(err.Error(), "costs.gpuMonthly") {
		t.Fatalf("bad amount: %v", err)
	}
}
