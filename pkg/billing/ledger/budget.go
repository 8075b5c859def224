package ledger

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	// Budgets name IANA zones; the embedded database makes them work on
	// hosts (distroless images) without /usr/share/zoneinfo.
	_ "time/tzdata"

	"github.com/llmctl/llmctl/pkg/billing"
)

// Period is how a budget's window is cut.
type Period string

// Budget periods: calendar periods in the budget's time zone, or a window
// of a fixed duration ending now.
const (
	PeriodDay     Period = "day"
	PeriodWeek    Period = "week" // ISO weeks: Monday 00:00 to Monday 00:00
	PeriodMonth   Period = "month"
	PeriodRolling Period = "rolling"
)

// Budget caps what a tenant, or one API key of it (KeyID set), may spend per
// period. Spend is never stored: it is the sum of the owner's settled debits
// created in the period and its open holds, read when a request reserves,
// so a budget "resets" by time passing and no job can forget to reset it.
type Budget struct {
	ID       string `json:"id"`
	TenantID string `json:"tenant"`
	// KeyID is the public id of the key whose budget this is; "" for the
	// tenant's, which counts every key of the tenant.
	KeyID  string `json:"keyId,omitempty"`
	Amount Micros `json:"amount"`
	Period Period `json:"period"`
	// TZ is the IANA zone of a calendar period ("UTC" by default).
	TZ string `json:"tz,omitempty"`
	// Duration is the window of a rolling budget.
	Duration time.Duration `json:"duration,omitempty"`
	Created  time.Time     `json:"created"`
}

// BudgetStatus is a budget with what its owner has spent in the period
// containing At.
type BudgetStatus struct {
	Budget
	Start time.Time `json:"start"` // first instant of the period
	// ResetsAt is the end of a calendar period; for a rolling budget, when
	// the oldest debit counted leaves the window (now + Duration if none).
	ResetsAt time.Time `json:"resetsAt"`
	// Spent is settled debits in [Start, …) plus all open holds.
	Spent Micros `json:"spent"`
}

// Remaining is what the owner may still reserve in the period (never < 0).
func (s BudgetStatus) Remaining() Micros { return max(s.Amount-s.Spent, 0) }

// ErrInvalidBudget reports a budget that cannot be stored.
var ErrInvalidBudget = errors.New("invalid budget")

// MaxRollingDuration bounds a rolling window: a longer one would make every
// reservation sum over years of entries.
const MaxRollingDuration = 366 * 24 * time.Hour

// Normalize checks b and fills the defaults: TZ "UTC" for a calendar
// period, TZ "UTC" and a whole number of seconds for a rolling one. The
// result is the identity `budgets set` upserts by: owner, period, zone and
// duration.
func (b Budget) Normalize() (Budget, error) {
	bad := func(format string, args ...any) (Budget, error) {
		return Budget{}, fmt.Errorf("%w: %s", ErrInvalidBudget, fmt.Sprintf(format, args...))
	}
	if b.TenantID == "" {
		return bad("no tenant")
	}
	if b.Amount <= 0 {
		return bad("the amount must be positive, got %s", b.Amount)
	}
	switch b.Period {
	case PeriodDay, PeriodWeek, PeriodMonth:
		if b.Duration != 0 {
			return bad("a duration is for a rolling budget, not a %s one", b.Period)
		}
		if b.TZ == "" {
			b.TZ = "UTC"
		}
		// "Local" would mean whatever zone each replica's host has.
		if b.TZ == "Local" {
			return bad("time zone %q: name an IANA zone such as Europe/Berlin", b.TZ)
		}
		if _, err := time.LoadLocation(b.TZ); err != nil {
			return bad("time zone %q: not an IANA zone name such as Europe/Berlin or UTC", b.TZ)
		}
	case PeriodRolling:
		if b.TZ != "" && b.TZ != "UTC" {
			return bad("a rolling budget has no time zone (got %q)", b.TZ)
		}
		b.TZ = "UTC"
		if b.Duration < time.Second || b.Duration > MaxRollingDuration || b.Duration%time.Second != 0 {
			return bad("a rolling budget needs a duration of whole seconds from 1s to %s, got %s", MaxRollingDuration, b.Duration)
		}
	default:
		return bad("period %q: must be day, week, month or rolling", b.Period)
	}
	return b, nil
}

// Describe names the period for people: "month (Europe/Berlin)", "rolling 24h0m0s".
func (b Budget) Describe() string {
	if b.Period == PeriodRolling {
		return "rolling " + b.Duration.String()
	}
	return string(b.Period) + " (" + b.TZ + ")"
}

// PeriodBounds is the calendar math of budgets, a pure function of its
// arguments: the period containing now, as [start, reset). Day, week (ISO,
// from Monday) and month start at midnight in loc, so a day across a DST
// change lasts 23 or 25 hours. A rolling period is [now-d, now] and its
// reset is now+d, the latest moment all of its current spend has left it.
func PeriodBounds(p Period, loc *time.Location, d time.Duration, now time.Time) (start, reset time.Time) {
	if p == PeriodRolling {
		return now.Add(-d), now.Add(d)
	}
	t := now.In(loc)
	y, m, day := t.Date()
	switch p {
	case PeriodWeek:
		back := (int(t.Weekday()) + 6) % 7 // days since Monday
		start = time.Date(y, m, day-back, 0, 0, 0, 0, loc)
		reset = time.Date(y, m, day-back+7, 0, 0, 0, 0, loc)
	case PeriodMonth:
		start = time.Date(y, m, 1, 0, 0, 0, 0, loc)
		reset = time.Date(y, m+1, 1, 0, 0, 0, 0, loc)
	default: // PeriodDay
		start = time.Date(y, m, day, 0, 0, 0, 0, loc)
		reset = time.Date(y, m, day+1, 0, 0, 0, 0, loc)
	}
	return start, reset
}

// bounds is PeriodBounds for a stored (valid) budget.
func (b Budget) bounds(now time.Time) (start, reset time.Time) {
	loc, err := time.LoadLocation(b.TZ)
	if err != nil {
		loc = time.UTC // Normalize refused it; a hand-edited row counts in UTC
	}
	return PeriodBounds(b.Period, loc, b.Duration, now)
}

func newBudgetID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "bud_" + hex.EncodeToString(b[:])
}

// BudgetStore is the part of Store that keeps budgets (budget_sql.go).
type BudgetStore interface {
	// SetBudget stores b (Normalize'd), replacing the amount of the budget
	// with the same owner, period, zone and duration if there is one; it
	// returns the stored budget with its id.
	SetBudget(ctx context.Context, b Budget) (Budget, error)
	// Budgets lists every budget of a tenant (its own and its keys'), each
	// with the spend of the period containing at.
	Budgets(ctx context.Context, tenantID string, at time.Time) ([]BudgetStatus, error)
	// DeleteBudgets deletes the owner's budget id, or all the owner's
	// budgets when id is "" (keyID "" is the tenant's own); it returns how
	// many it deleted.
	DeleteBudgets(ctx context.Context, tenantID, keyID, id string) (int, error)
}

// budgetRefusal is the error of a reservation that would cross b.
func budgetRefusal(st BudgetStatus, cost Micros) *billing.BudgetError {
	return &billing.BudgetError{TenantID: st.TenantID, KeyID: st.KeyID, BudgetID: st.ID, Period: st.Describe(),
		Budget: int64(st.Amount), Spent: int64(st.Spent), Cost: int64(cost), ResetAt: st.ResetsAt}
}
