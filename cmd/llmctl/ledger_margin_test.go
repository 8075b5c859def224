package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/margin"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/preflight"
	"github.com/llmctl/llmctl/pkg/serve/gpumetrics"
)

// energyProbe is one board whose NVML energy counter is mj.
type energyProbe struct{ mj atomic.Uint64 }

func (p *energyProbe) Probe(context.Context) preflight.GPUSnapshot {
	return preflight.GPUSnapshot{Init: preflight.InitOK, Devices: []preflight.GPUDevice{
		{Name: "GPU", EnergyMJ: preflight.Val(p.mj.Load())}}}
}

func TestLedgerMarginSQLite(t *testing.T) {
	testLedgerMargin(t, "sqlite:"+filepath.Join(t.TempDir(), "llmctl.db"))
}

func TestLedgerMarginPostgres(t *testing.T) { testLedgerMargin(t, testenv.PG(t).NewDatabase(t)) }

// testLedgerMargin prices a window to the micro-unit: the GPU energy comes
// from the gateway's real collector (a board whose
// energy counter moves 3.6 MJ between the two runs: 1 kWh at 0.30), the
// revenue from real ledger entries; the cost is split 1:2 by generated
// tokens. A first run with no earlier energy sample prices fixed costs only
// and says so.
func testLedgerMargin(t *testing.T, dsn string) {
	ctx := context.Background()
	dir := t.TempDir()
	// This binary links the plugin package, so go-nvml (and its mocks)
	// cannot be linked here (see pkg/preflight/nvmlprobe); the board is a
	// GPU snapshot at the probe boundary instead, as gpumetrics' own tests
	// do, and gonvml's tests read the energy through go-nvml's mocks.
	p := &energyProbe{}
	p.mj.Store(1_000_000_000)
	reg := prometheus.NewRegistry()
	reg.MustRegister(gpumetrics.New(p))
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()

	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, n := range []string{"acme", "beta"} {
		tn, err := st.CreateTenant(ctx, n, billing.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, tn.ID)
	}
	st.Close()
	cfg := filepath.Join(dir, "llmctl.yaml")
	if err := os.WriteFile(cfg, []byte("costs:\n  electricityPerKWh: \"0.30\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "energy.json")
	margins := func(since string) margin.Report {
		t.Helper()
		out, errOut, err := run(t, "ledger", "margin", "--db", dsn, "--config", cfg, "--since", since, "--state", state,
			"--energy-target", srv.URL+"/metrics", "-o", "json")
		var r margin.Report
		if err != nil || json.Unmarshal([]byte(out), &r) != nil {
			t.Fatalf("margin: %v\n%s\n%s", err, out, errOut)
		}
		return r
	}
	if r := margins("1h"); r.Energy.Measured || r.TotalCost != 0 || r.Basis != "energy not measured: fixed costs only; no earlier energy sample at or before the window's start (recorded one now: rerun later)" {
		t.Fatalf("first run: %+v", r)
	}
	since := time.Now()
	lg, err := ledger.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := lg.Apply(ctx, []ledger.Entry{
		{Key: "c1", TenantID: ids[0], Kind: ledger.KindCredit, Amount: 5_000_000, Time: now},
		{Key: "c2", TenantID: ids[1], Kind: ledger.KindCredit, Amount: 5_000_000, Time: now},
		{Key: "d1", TenantID: ids[0], Kind: ledger.KindDebit, Amount: -500_000, Model: "m", PromptTokens: 4, CompletionTokens: 10, Time: now},
		{Key: "d2", TenantID: ids[1], Kind: ledger.KindDebit, Amount: -250_000, Model: "m", PromptTokens: 4, CompletionTokens: 20, Time: now},
	}); err != nil {
		t.Fatal(err)
	}
	lg.Close()
	p.mj.Add(3_600_000_000)             // 3.6 MJ: 1 kWh
	time.Sleep(1100 * time.Millisecond) // past the collector's one-second probe cache
	r := margins(since.UTC().Format(time.RFC3339Nano))
	if !r.Energy.Measured || r.Energy.Joules != 3_600_000 || r.EnergyCost != 300_000 || r.TotalCost != 300_000 || r.Revenue != 750_000 || r.Margin != 450_000 {
		t.Fatalf("second run: %+v", r)
	}
	if len(r.Rows) != 2 || r.Rows[0].Tenant != "acme" || r.Rows[0].Cost != 100_000 || r.Rows[0].Margin != 400_000 ||
		r.Rows[1].Cost != 200_000 || r.Rows[1].Margin != 50_000 || r.TokensPerJoule != 30.0/3_600_000 {
		t.Fatalf("rows: %+v", r.Rows)
	}
}
