package adminclient

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Budget is a budget as the admin API answers it, with its current
// period's spend.
type Budget struct {
	ID              string    `json:"id"`
	Tenant          string    `json:"tenant"`
	KeyID           string    `json:"key_id,omitempty"`
	Amount          string    `json:"amount"`
	AmountMicros    int64     `json:"amount_micros"`
	Period          string    `json:"period"`
	TZ              string    `json:"tz,omitempty"`
	Duration        string    `json:"duration,omitempty"`
	Spent           string    `json:"spent"`
	SpentMicros     int64     `json:"spent_micros"`
	Remaining       string    `json:"remaining"`
	RemainingMicros int64     `json:"remaining_micros"`
	PeriodStart     time.Time `json:"period_start"`
	ResetsAt        time.Time `json:"resets_at"`
	CreatedAt       time.Time `json:"created_at"`
}

// BudgetSet is the body of a PUT: amount in currency units; tz for a
// calendar period, duration (a Go duration) for a rolling one.
type BudgetSet struct {
	Amount   string `json:"amount"`
	Period   string `json:"period"`
	TZ       string `json:"tz,omitempty"`
	Duration string `json:"duration,omitempty"`
}

// BudgetOwner names whose budgets: a tenant (name or id), or an API key id.
type BudgetOwner struct {
	Tenant string
	KeyID  string
}

func (o BudgetOwner) path() string {
	if o.KeyID != "" {
		return "/admin/v1/keys/" + esc(o.KeyID) + "/budgets"
	}
	return "/admin/v1/tenants/" + esc(o.Tenant) + "/budgets"
}

// Budgets is GET …/budgets: a tenant's own and its keys', or a key's.
func (c *Client) Budgets(ctx context.Context, o BudgetOwner) ([]Budget, error) {
	var l list[Budget]
	_, err := c.do(ctx, http.MethodGet, o.path(), nil, nil, &l)
	return l.Data, err
}

// SetBudget is PUT …/budgets.
func (c *Client) SetBudget(ctx context.Context, o BudgetOwner, b BudgetSet) (Budget, error) {
	var out Budget
	_, err := c.do(ctx, http.MethodPut, o.path(), nil, b, &out)
	return out, err
}

// DeleteBudgets is DELETE …/budgets: the budget id, or all of the owner's
// when id is "". It returns how many were deleted.
func (c *Client) DeleteBudgets(ctx context.Context, o BudgetOwner, id string) (int, error) {
	var q url.Values
	if id != "" {
		q = url.Values{"id": {id}}
	}
	var out struct{ Deleted int }
	_, err := c.do(ctx, http.MethodDelete, o.path(), q, nil, &out)
	return out.Deleted, err
}
