package ledger

import (
	"context"
	"errors"
	"math"
	"slices"

	"github.com/llmctl/llmctl/pkg/billing"
)

// overdraft is how far below zero p's tenant may go: unlimited for a house
// tenant, whose usage is still charged so that spend and entries show it.
func (l *Ledger) overdraft(p billing.Principal) Micros {
	if p.TenantName != "" && slices.Contains(l.cfg.HouseTenants, p.TenantName) {
		return math.MaxInt64
	}
	return l.cfg.Overdraft
}

// quotaError turns the store's refusal of hr into a *billing.QuotaError with
// the tenant's numbers, read right after the refusal (so they may differ by
// what concurrent requests settled meanwhile: they explain the refusal, the
// store's check decided it). When they cannot be read, the refusal stands
// without them.
func (l *Ledger) quotaError(ctx context.Context, hr HoldRequest, refusal error) error {
	qe := &billing.QuotaError{Overdraft: int64(hr.Overdraft), Cost: int64(hr.Amount), Err: refusal}
	a, err := l.store.Account(ctx, hr.TenantID)
	if err != nil {
		l.log.Debug("ledger cannot read the refused tenant's account", "tenant", hr.TenantID, "err", err)
		return refusal
	}
	qe.Balance, qe.Reserved = int64(a.Balance), int64(a.Reserved)
	if a.Balance == 0 && a.Reserved == 0 {
		// Never credited, or spent to exactly zero: one entry tells which.
		es, err := l.store.Entries(ctx, Filter{TenantID: hr.TenantID, Limit: 1})
		qe.New = err == nil && len(es) == 0
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return refusal
	}
	return qe
}
