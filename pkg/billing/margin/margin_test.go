package margin

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func TestComputeExact(t *testing.T) {
	costs := Costs{ElectricityPerKWh: "0.30", GPUMonthly: "700", OtherMonthly: "30"}
	usage := []Usage{
		{TenantID: "a", Model: "m", Revenue: 1_000_000, Prompt: 5, Generated: 1, Requests: 1},
		{TenantID: "b", Model: "m", Revenue: 2_000_000, Prompt: 5, Generated: 2, Requests: 2},
	}
	// 2 h of 730 €/month = 2.000000; 7.2 MJ = 2 kWh × 0.30 = 0.600000.
	r, err := Compute(costs, t0, t0.Add(2*time.Hour), usage, Energy{Measured: true, Joules: 7_200_000}, map[string]string{"a": "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if r.FixedCost != 2_000_000 || r.EnergyCost != 600_000 || r.TotalCost != 2_600_000 || r.Revenue != 3_000_000 || r.Margin != 400_000 {
		t.Fatalf("totals %+v", r)
	}
	// 2.6 × 1/3 = 866666.67, 2.6 × 2/3 = 1733333.33: the leftover micro
	// goes to the larger remainder, and the rows add up to the total.
	if a, b := r.Rows[0], r.Rows[1]; a.Tenant != "acme" || a.Cost != 866_667 || b.Cost != 1_733_333 || a.Margin != 133_333 || b.Margin != 266_667 {
		t.Fatalf("rows %+v", r.Rows)
	}
	if r.TokensPerJoule != 3.0/7_200_000 || !strings.Contains(r.Basis, "2.000 kWh measured") {
		t.Fatalf("tokens/J %v basis %q", r.TokensPerJoule, r.Basis)
	}
}

func TestComputeFixedOnlyAndPromptShare(t *testing.T) {
	usage := []Usage{{TenantID: "a", Model: "e", Prompt: 3, Revenue: 10}, {TenantID: "b", Model: "e", Prompt: 1, Revenue: 10}}
	r, err := Compute(Costs{GPUMonthly: "730", ElectricityPerKWh: "0.3"}, t0, t0.Add(time.Hour), usage, Energy{Note: "no --energy-target given"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.TotalCost != 1_000_000 || r.EnergyCost != 0 || !strings.Contains(r.Basis, "energy not measured: fixed costs only") {
		t.Fatalf("%+v", r)
	}
	// Nothing generated (embeddings): shares by prompt tokens.
	if r.Rows[0].Cost != 750_000 || r.Rows[1].Cost != 250_000 {
		t.Fatalf("rows %+v", r.Rows)
	}
	r, _ = Compute(Costs{GPUMonthly: "730"}, t0, t0.Add(time.Hour), nil, Energy{}, nil)
	if r.Unattributed != 1_000_000 || r.Margin != -1_000_000 {
		t.Fatalf("idle window: %+v", r)
	}
}

func TestCostsValidate(t *testing.T) {
	err := Costs{ElectricityPerKWh: "-1", GPUMonthly: "abc", OtherMonthly: "0.1234567"}.Validate()
	for _, want := range []string{"costs.electricityPerKWh: must not be negative", "costs.gpuMonthly", "costs.otherMonthly"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
}

func TestEnergyOver(t *testing.T) {
	h := []EnergySample{{Target: "g", Time: t0, Joules: 100}, {Target: "g", Time: t0.Add(time.Hour), Joules: 500}, {Target: "x", Time: t0, Joules: 1}}
	e, from, ok := EnergyOver(h, EnergySample{Target: "g", Time: t0.Add(3 * time.Hour), Joules: 900}, t0.Add(90*time.Minute))
	if !ok || !from.Equal(t0.Add(time.Hour)) || e.Joules != 400 || e.LowerBound {
		t.Fatalf("%+v %v %v", e, from, ok)
	}
	e, _, _ = EnergyOver(h, EnergySample{Target: "g", Time: t0.Add(3 * time.Hour), Joules: 50}, t0.Add(90*time.Minute))
	if e.Joules != 50 || !e.LowerBound {
		t.Fatalf("restart: %+v", e)
	}
	if _, _, ok := EnergyOver(h, EnergySample{Target: "g"}, t0.Add(-time.Hour)); ok {
		t.Fatal("no sample before since")
	}
}

func FuzzParseEnergy(f *testing.F) {
	f.Add("# TYPE llmctl_gpu_energy_joules_total counter\nllmctl_gpu_energy_joules_total{gpu=\"0\",source=\"nvml\"} 12.5\n")
	f.Fuzz(func(t *testing.T, s string) {
		j, err := ParseEnergy(strings.NewReader(s))
		if err == nil && j < 0 {
			t.Fatalf("negative energy %v", j)
		}
	})
}
