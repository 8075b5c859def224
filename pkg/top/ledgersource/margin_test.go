package ledgersource

import (
	"context"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/billing/margin"
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
