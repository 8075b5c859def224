package billing

import (
	"errors"
	"fmt"
	"time"
)

// ErrBudgetExceeded is wrapped by a Reserver's refusal of a request whose
// maximum cost would take a tenant's or key's spend in a budget period past
// the budget; the gateway answers 429 budget_exceeded.
var ErrBudgetExceeded = errors.New("budget exceeded")

// BudgetError is that refusal, with the numbers the answer shows. Amounts are
// micro-units of the currency (this package cannot import the ledger's type).
type BudgetError struct {
	TenantID string
	KeyID    string // the key whose budget it is; "" for the tenant's
	BudgetID string
	Period   string // "month (Europe/Berlin)", "rolling 24h0m0s", …
	Budget   int64
	Spent    int64 // settled debits and open holds counted in the period
	Cost     int64 // this request's maximum cost
	// ResetAt is when the period ends (calendar budgets), or when the
	// oldest charge counted leaves a rolling window: the earliest time a
	// retry can succeed.
	ResetAt time.Time
}

func (e *BudgetError) Error() string {
	owner := "tenant " + e.TenantID
	if e.KeyID != "" {
		owner = "key " + e.KeyID
	}
	return fmt.Sprintf("budget exceeded: %s budget %s per %s: spent %d µ, budget %d µ, request needs up to %d µ, resets %s",
		owner, e.BudgetID, e.Period, e.Spent, e.Budget, e.Cost, e.ResetAt.UTC().Format(time.RFC3339))
}

// Unwrap makes errors.Is(err, ErrBudgetExceeded) hold.
func (e *BudgetError) Unwrap() error { return ErrBudgetExceeded }
