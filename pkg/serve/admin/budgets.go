package admin

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
)

// Audit actions of budgets.
const (
	AuditBudgetSet    = "budget.set"
	AuditBudgetDelete = "budget.delete"
)

// Budgets is what the budget endpoints need from the ledger (its Store).
// A Ledger that lacks it answers them 501 billing_disabled.
type Budgets interface {
	SetBudget(ctx context.Context, b ledger.Budget) (ledger.Budget, error)
	Budgets(ctx context.Context, tenantID string, at time.Time) ([]ledger.BudgetStatus, error)
	DeleteBudgets(ctx context.Context, tenantID, keyID, id string) (int, error)
}

// SetBudget stores a budget (see ledger.BudgetStore).
func (v LedgerView) SetBudget(ctx context.Context, b ledger.Budget) (ledger.Budget, error) {
	return v.l.Store().SetBudget(ctx, b)
}

// Budgets lists a tenant's budgets with their spend at at.
func (v LedgerView) Budgets(ctx context.Context, tenantID string, at time.Time) ([]ledger.BudgetStatus, error) {
	return v.l.Store().Budgets(ctx, tenantID, at)
}

// DeleteBudgets deletes an owner's budget id, or all of them.
func (v LedgerView) DeleteBudgets(ctx context.Context, tenantID, keyID, id string) (int, error) {
	return v.l.Store().DeleteBudgets(ctx, tenantID, keyID, id)
}

// BudgetJSON is a budget as the admin API and /v1/me show it: decimal
// strings for people, micro-unit integers for programs.
type BudgetJSON struct {
	Object string `json:"object"`
	ID     string `json:"id"`
	Tenant string `json:"tenant"`
	// KeyID is set on a key's budget; absent on the tenant's own.
	KeyID        string `json:"key_id,omitempty"`
	Amount       string `json:"amount"`
	AmountMicros int64  `json:"amount_micros"`
	Period       string `json:"period"` // day | week | month | rolling
	TZ           string `json:"tz,omitempty"`
	Duration     string `json:"duration,omitempty"` // rolling only, e.g. "24h0m0s"
	// Spent counts settled debits in the current period and open holds.
	Spent           string    `json:"spent"`
	SpentMicros     int64     `json:"spent_micros"`
	Remaining       string    `json:"remaining"`
	RemainingMicros int64     `json:"remaining_micros"`
	PeriodStart     time.Time `json:"period_start"`
	ResetsAt        time.Time `json:"resets_at"`
	CreatedAt       time.Time `json:"created_at"`
}

// BudgetOut renders a budget of the tenant named tenant.
func BudgetOut(s ledger.BudgetStatus, tenant string) BudgetJSON {
	out := BudgetJSON{Object: "budget", ID: s.ID, Tenant: tenant, KeyID: s.KeyID,
		Amount: s.Amount.String(), AmountMicros: int64(s.Amount), Period: string(s.Period),
		Spent: s.Spent.String(), SpentMicros: int64(s.Spent), Remaining: s.Remaining().String(), RemainingMicros: int64(s.Remaining()),
		PeriodStart: s.Start.UTC(), ResetsAt: s.ResetsAt.UTC(), CreatedAt: s.Created.UTC()}
	if s.Period == ledger.PeriodRolling {
		out.Duration = s.Duration.String()
	} else {
		out.TZ = s.TZ
	}
	return out
}

// decodeBudget reads PUT …/budgets: {"amount": "50", "period": "month",
// "tz": "Europe/Berlin"} or {"amount": "5", "period": "rolling", "duration": "24h"}.
func decodeBudget(body []byte) (ledger.Budget, *apiError) {
	var b ledger.Budget
	var amount, period, dur string
	fs := map[string]field{"amount": text(&amount), "period": text(&period), "tz": text(&b.TZ), "duration": text(&dur)}
	if e := decodeObject(body, fs); e != nil {
		return b, e
	}
	m, err := ledger.ParseMicros(amount)
	if err != nil || strings.TrimSpace(amount) != amount || m <= 0 {
		return b, badRequest("amount", "%q is required: a positive decimal string of currency units with at most 6 fractional digits, such as \"50\" or \"12.50\" (got %q)", "amount", amount)
	}
	b.Amount, b.Period = m, ledger.Period(period)
	if dur != "" {
		d, err := time.ParseDuration(dur)
		if err != nil {
			return b, badRequest("duration", "%q must be a Go duration such as \"24h\" or \"168h\" (got %q)", "duration", dur)
		}
		b.Duration = d
	}
	return b, nil
}

// budgetOwner resolves the path to the tenant (and key) owning budgets.
func (h *Handler) budgetOwner(r *http.Request) (tenantID, tenantName, keyID string, e *apiError) {
	if id := r.PathValue("id"); id != "" {
		k, err := h.st.GetKey(r.Context(), id)
		if err != nil {
			return "", "", "", h.storeError(r, keyWhat(id), err)
		}
		return k.TenantID, k.TenantName, k.ID, nil
	}
	name := r.PathValue("name")
	t, err := h.st.GetTenant(r.Context(), name)
	if err != nil {
		return "", "", "", h.storeError(r, tenantWhat(name), err)
	}
	return t.ID, t.Name, "", nil
}

func (h *Handler) budgets() (Budgets, *apiError) {
	b, ok := h.ledger.(Budgets)
	if !ok {
		return nil, billingDisabled()
	}
	return b, nil
}

// listBudgets is GET …/budgets: a tenant's lists its own and its keys'
// budgets, a key's only the key's; each with the current period's spend.
func (h *Handler) listBudgets(r *http.Request, _ []byte) (int, any, *apiError) {
	bl, e := h.budgets()
	if e != nil {
		return 0, nil, e
	}
	if e := onlyParams(r.URL.Query()); e != nil {
		return 0, nil, e
	}
	tenantID, tenantName, keyID, e := h.budgetOwner(r)
	if e != nil {
		return 0, nil, e
	}
	st, err := bl.Budgets(r.Context(), tenantID, h.now())
	if err != nil {
		return 0, nil, h.ledgerError(r, err)
	}
	out := make([]BudgetJSON, 0, len(st))
	for _, s := range st {
		if keyID == "" || s.KeyID == keyID {
			out = append(out, BudgetOut(s, tenantName))
		}
	}
	return http.StatusOK, listOf(out), nil
}

// putBudget is PUT …/budgets: it sets the amount of the owner's budget of
// that period, zone and duration, creating it if there is none.
func (h *Handler) putBudget(r *http.Request, body []byte) (int, any, *apiError) {
	bl, e := h.budgets()
	if e != nil {
		return 0, nil, e
	}
	b, e := decodeBudget(body)
	if e != nil {
		return 0, nil, e
	}
	tenantID, tenantName, keyID, e := h.budgetOwner(r)
	if e != nil {
		return 0, nil, e
	}
	b.TenantID, b.KeyID = tenantID, keyID
	saved, err := bl.SetBudget(r.Context(), b)
	if errors.Is(err, ledger.ErrInvalidBudget) {
		return 0, nil, badRequest("", "%s", strings.TrimPrefix(err.Error(), ledger.ErrInvalidBudget.Error()+": "))
	}
	if err != nil {
		return 0, nil, h.ledgerError(r, err)
	}
	h.audit(r, AuditBudgetSet, budgetTarget(tenantName, keyID), BudgetAuditDetails(saved))
	st, err := bl.Budgets(r.Context(), tenantID, h.now())
	if err != nil {
		return 0, nil, h.ledgerError(r, err)
	}
	for _, s := range st {
		if s.ID == saved.ID {
			return http.StatusOK, BudgetOut(s, tenantName), nil
		}
	}
	// Deleted by someone else since: answer what was written.
	return http.StatusOK, BudgetOut(ledger.BudgetStatus{Budget: saved}, tenantName), nil
}

// deleteBudgets is DELETE …/budgets[?id=bud_…]: one budget of the owner,
// or all of the owner's (a tenant's own, not its keys').
func (h *Handler) deleteBudgets(r *http.Request, _ []byte) (int, any, *apiError) {
	bl, e := h.budgets()
	if e != nil {
		return 0, nil, e
	}
	q := r.URL.Query()
	if e := onlyParams(q, "id"); e != nil {
		return 0, nil, e
	}
	tenantID, tenantName, keyID, e := h.budgetOwner(r)
	if e != nil {
		return 0, nil, e
	}
	id := q.Get("id")
	n, err := bl.DeleteBudgets(r.Context(), tenantID, keyID, id)
	if err != nil {
		return 0, nil, h.ledgerError(r, err)
	}
	if id != "" && n == 0 {
		return 0, nil, notFound("budget %q not found among the budgets of %s", id, budgetTarget(tenantName, keyID))
	}
	if n > 0 {
		h.audit(r, AuditBudgetDelete, budgetTarget(tenantName, keyID), map[string]any{"id": id, "deleted": n})
	}
	return http.StatusOK, struct {
		Object  string `json:"object"`
		Deleted int    `json:"deleted"`
	}{"budget.deleted", n}, nil
}

// budgetTarget is the audit target: the tenant's name or the key's id, as
// the tenant and key actions name them.
func budgetTarget(tenant, keyID string) string {
	if keyID != "" {
		return keyID
	}
	return tenant
}

// BudgetAuditDetails is the details of a budget.set audit record; the CLI
// writes the same on --db.
func BudgetAuditDetails(b ledger.Budget) map[string]any {
	d := map[string]any{"id": b.ID, "amount": b.Amount.String(), "period": b.Period}
	if b.Period == ledger.PeriodRolling {
		d["duration"] = b.Duration.String()
	} else {
		d["tz"] = b.TZ
	}
	return d
}
