package ledger

import (
	"encoding/json"
	"strconv"
	"time"
)

// budgetShares are the percentages of a budget whose crossing sends a
// budget.threshold alert (the 50/80/100 % default).
func budgetShares() []int64 { return []int64{50, 80, 100} }

// budgetThresholdPayload is the data of a budget.threshold event.
type budgetThresholdPayload struct {
	Tenant      string    `json:"tenant"`
	KeyID       string    `json:"keyId,omitempty"`
	BudgetID    string    `json:"budgetId"`
	Period      string    `json:"period"`
	Percent     int64     `json:"percent"`
	Budget      string    `json:"budget"`
	Spent       string    `json:"spent"`
	Refused     bool      `json:"refused"`
	PeriodStart time.Time `json:"periodStart"`
	ResetsAt    time.Time `json:"resetsAt"`
}

// budgetEvents returns the budget.threshold events of a reservation of
// amount against st: one per share that the spend crosses (before < share
// ≤ after). A refused reservation reports the 100 % share: the budget is
// what stops the owner now. An event's id is fixed per budget, period and
// share, so each share alerts once a period however many replicas and
// requests cross it, and a lost write is made again by the next crossing.
func budgetEvents(st BudgetStatus, amount Micros, refused bool, now time.Time) []Event {
	before, after := st.Spent, st.Spent+amount
	period := st.Start.UTC().Format(time.RFC3339)
	if st.Period == PeriodRolling && st.Duration > 0 {
		// A rolling window has no period of its own: one a duration long.
		period = "r" + strconv.FormatInt(now.UnixMicro()/st.Duration.Microseconds(), 10)
	}
	var out []Event
	for _, pct := range budgetShares() {
		share := Micros(int64(st.Amount) / 100 * pct)
		if rem := int64(st.Amount) % 100; rem != 0 {
			share += Micros((rem*pct + 99) / 100) // the exact share, rounded up
		}
		crossed := before < share && share <= after
		if refused {
			crossed = pct == 100
		}
		if !crossed {
			continue
		}
		spent := after
		if refused {
			spent = before
		}
		p, _ := json.Marshal(budgetThresholdPayload{Tenant: st.TenantID, KeyID: st.KeyID, BudgetID: st.ID,
			Period: st.Describe(), Percent: pct, Budget: st.Amount.String(), Spent: spent.String(), Refused: refused,
			PeriodStart: st.Start.UTC(), ResetsAt: st.ResetsAt.UTC()})
		out = append(out, Event{ID: EventID(EventBudgetThreshold, st.ID, period, strconv.FormatInt(pct, 10)),
			Type: EventBudgetThreshold, TenantID: st.TenantID, Payload: p, Time: now.UTC()})
	}
	return out
}
