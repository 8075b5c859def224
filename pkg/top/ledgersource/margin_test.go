package ledgersource

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/billing/margin"
	"github.com/llmctl/llmctl/pkg/top/metrics"
)

// checkMargin prices run's ledger (populate) for the Margin pane, on
// SQLite and PostgreSQL.
func checkMargin(t *testing.T, src *Source, now time.Time) {
	t.Helper()
	ctx := context.Background()
	// 730.000365 a month over 24 h of 730: 24.000012 to the micro-unit.
	m := Margins{Source: src, Costs: margin.Costs{GPUMonthly: "730", OtherMonthly: "0.000365"}}
	rep, err := m.Margin(ctx, now.Add(-24*time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	// acme: debits 0.25 and 0.50 and a release in the day; beta's debit
	// is 25 h old.
	if len(rep.Rows) != 1 {
		t.Fatalf("rows = %+v, want acme/llama only", rep.Rows)
	}
	r := rep.Rows[0]
	if r.Tenant != "acme" || r.Model != "llama" || r.Requests != 3 || r.Prompt != 30 || r.Generated != 60 ||
		r.Revenue != 750_000 || r.Cost != 24_000_012 || r.Margin != -23_250_012 {
		t.Errorf("row = %+v", r)
	}
	if rep.Revenue != 750_000 || rep.TotalCost != 24_000_012 || rep.Margin != -23_250_012 || rep.Energy.Measured {
		t.Errorf("report = %+v", rep)
	}
	if rep.Basis != "fixed 730.000365/month × 24.00 h / 730 h; energy not measured: fixed costs only; "+noEnergy {
		t.Errorf("basis = %q", rep.Basis)
	}

	rep, err = Margins{Source: src}.Margin(ctx, now.Add(-24*time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Basis != NoCosts || rep.TotalCost != 0 || rep.Margin != 750_000 {
		t.Errorf("without costs: %+v", rep)
	}
}

// checkMarginEnergy prices the pane with measured energy: a baseline sample
// at the window's start in the state file `ledger margin` shares, the
// gateway's counter 3.6 MJ (1 kWh) above it now. It also holds top to one
// recorded sample per EnergySampleEvery, and keeps the pane on fixed costs
// (saying why) when the gateway cannot be read.
func checkMarginEnergy(t *testing.T, src *Source, now time.Time) {
	t.Helper()
	ctx := context.Background()
	var joules atomic.Int64
	joules.Store(4_600_000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "# TYPE %s counter\n%s{gpu=\"0\",source=\"nvml\"} %d\n", metrics.GPUEnergy, metrics.GPUEnergy, joules.Load())
	}))
	defer srv.Close()
	target := srv.URL + "/metrics"
	state := filepath.Join(t.TempDir(), "energy-state.json")
	since := now.Add(-24 * time.Hour)
	if err := margin.SaveEnergyState(state, nil, margin.EnergySample{Target: target, Time: since, Joules: 1_000_000}); err != nil {
		t.Fatal(err)
	}
	m := Margins{Source: src, Costs: margin.Costs{ElectricityPerKWh: "0.30"}, EnergyTarget: target, State: state}
	rep, err := m.Margin(ctx, since, now)
	if err != nil {
		t.Fatal(err)
	}
	// 1 kWh at 0.30, all of it acme's (the window's only generated tokens).
	if !rep.Energy.Measured || rep.Energy.Joules != 3_600_000 || rep.EnergyCost != 300_000 || rep.TotalCost != 300_000 ||
		len(rep.Rows) != 1 || rep.Rows[0].Cost != 300_000 || rep.Rows[0].Margin != 450_000 {
		t.Fatalf("measured: %+v", rep)
	}
	samples := func() int {
		t.Helper()
		h, err := margin.LoadEnergyState(state)
		if err != nil {
			t.Fatal(err)
		}
		return len(h)
	}
	if n := samples(); n != 2 {
		t.Fatalf("after the first read %d samples, want the baseline and this one", n)
	}
	joules.Store(4_700_000)
	if rep, err = m.Margin(ctx, since, now.Add(time.Minute)); err != nil || rep.Energy.Joules != 3_700_000 {
		t.Fatalf("second read: %v %+v", err, rep.Energy)
	}
	if n := samples(); n != 2 {
		t.Fatalf("a read a minute later recorded a sample: %d, want 2", n)
	}
	if _, err = m.Margin(ctx, since, now.Add(EnergySampleEvery)); err != nil || samples() != 3 {
		t.Fatalf("a read an hour later: %v, %d samples, want 3", err, samples())
	}

	srv.Close()
	rep, err = m.Margin(ctx, since, now)
	if err != nil || rep.Energy.Measured || rep.TotalCost != 0 || !strings.Contains(rep.Basis, "energy target "+target) {
		t.Fatalf("gateway down: %v %+v", err, rep)
	}
}
