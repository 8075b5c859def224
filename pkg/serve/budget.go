package serve

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/serve/admin"
)

// budgetExceeded answers a reservation refused by a budget: 429 like a rate
// limit (the caller may retry later, unlike a 402), but with its own type and
// code so that clients and dashboards can tell the two apart, the numbers in
// currency units, and Retry-After = the seconds until the period resets (for
// a rolling budget: until the oldest charge counted leaves the window).
// Clients that retry 429s on their own (the official OpenAI SDKs) honour
// Retry-After, so they wait for the reset instead of hammering.
func budgetExceeded(be *billing.BudgetError, now time.Time) *apiError {
	owner := "your tenant's"
	if be.KeyID != "" {
		owner = "this API key's"
	}
	wait := be.ResetAt.Sub(now)
	secs := int64((wait + time.Second - 1) / time.Second)
	msg := fmt.Sprintf("%s %s budget of %s would be exceeded: %s already spent in this period (open requests included), "+
		"and this request may cost up to %s. It resets at %s; lower max_tokens to reserve less.",
		owner, be.Period, ledger.Micros(be.Budget), ledger.Micros(be.Spent), ledger.Micros(be.Cost),
		be.ResetAt.UTC().Format(time.RFC3339))
	return &apiError{Status: http.StatusTooManyRequests, Type: "budget_exceeded", Code: "budget_exceeded", Message: msg,
		Header: http.Header{"Retry-After": {strconv.FormatInt(max(secs, 1), 10)}}}
}

// meBudgets lists, for /v1/me, the caller's tenant's own budgets and its
// key's, with their spend; none when the ledger keeps no budgets.
func (g *Gateway) meBudgets(ctx context.Context, p billing.Principal) ([]admin.BudgetJSON, error) {
	bl, ok := g.opts.Ledger.(admin.Budgets)
	out := []admin.BudgetJSON{}
	if !ok {
		return out, nil
	}
	st, err := bl.Budgets(ctx, p.TenantID, time.Now())
	if err != nil {
		return nil, err
	}
	for _, s := range st {
		if s.KeyID == "" || s.KeyID == p.KeyID {
			out = append(out, admin.BudgetOut(s, p.TenantName))
		}
	}
	return out, nil
}
