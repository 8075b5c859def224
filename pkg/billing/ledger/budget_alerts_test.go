package ledger

import (
	"encoding/json"
	"slices"
	"testing"
	"time"
)

// TestBudgetEvents: each share of a budget alerts once when spend crosses
// it, several at once for a large request, 100 % on a refusal, and the id is
// fixed per budget, period and share (so replicas and retries dedupe).
func TestBudgetEvents(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	st := BudgetStatus{Budget: Budget{ID: "bud_1", TenantID: "t1", Amount: 1_000_001, Period: PeriodMonth, TZ: "UTC"},
		Start: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), ResetsAt: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}
	pcts := func(evs []Event) (out []int64) {
		for _, ev := range evs {
			var p budgetThresholdPayload
			if err := json.Unmarshal(ev.Payload, &p); err != nil {
				t.Fatal(err)
			}
			if ev.Type != EventBudgetThreshold || ev.TenantID != "t1" || p.BudgetID != "bud_1" {
				t.Fatalf("event %+v", ev)
			}
			out = append(out, p.Percent)
		}
		return out
	}
	eq := slices.Equal[[]int64]
	// 50 % of 1.000001 is 0.5000005, rounded up to 500001 µ: 500000 does not cross it.
	st.Spent = 400_000
	if got := pcts(budgetEvents(st, 100_000, false, now)); !eq(got, nil) {
		t.Fatalf("below the share: %v", got)
	}
	if got := pcts(budgetEvents(st, 100_001, false, now)); !eq(got, []int64{50}) {
		t.Fatalf("exactly at the share: %v", got)
	}
	st.Spent = 500_001 // already past 50 %: only what this request crosses
	if got := pcts(budgetEvents(st, 500_000, false, now)); !eq(got, []int64{80, 100}) {
		t.Fatalf("to the budget's last micro-unit: %v", got)
	}
	if got := pcts(budgetEvents(st, 500_001, true, now)); !eq(got, []int64{100}) {
		t.Fatalf("refused: %v", got)
	}
	a, b := budgetEvents(st, 500_000, false, now), budgetEvents(st, 500_000, false, now.Add(time.Hour))
	if a[0].ID != b[0].ID {
		t.Fatal("the same share of the same period has two ids")
	}
	next := st
	next.Start = st.ResetsAt
	if c := budgetEvents(next, 500_000, false, now); c[0].ID == a[0].ID {
		t.Fatal("the next period reuses this period's id: it would never alert again")
	}
}
