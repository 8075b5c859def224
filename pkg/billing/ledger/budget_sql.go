package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/llmctl/llmctl/pkg/billing"
)

// Budgets in both dialects. The queries are written once with $N
// placeholders; SQLite reads them as ?N (numbered parameters).

// rowsFunc runs a query and calls each for every row.
type rowsFunc func(ctx context.Context, q string, args []any, each func(scan func(...any) error) error) error

type pgQueryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func pgRows(q pgQueryer) rowsFunc {
	return func(ctx context.Context, query string, args []any, each func(scan func(...any) error) error) error {
		rows, err := q.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		return eachRow(rows, each)
	}
}

type sqlQueryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func sqliteRows(q sqlQueryer) rowsFunc {
	return func(ctx context.Context, query string, args []any, each func(scan func(...any) error) error) error {
		rows, err := q.QueryContext(ctx, strings.ReplaceAll(query, "$", "?"), args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		return eachRow(rows, each)
	}
}

const budgetColumns = `id, tenant_id, key_id, amount, period, tz, duration_us, created_at`

const (
	// The budgets a reservation of key $2 of tenant $1 must respect.
	budgetsOfRequest = `SELECT ` + budgetColumns + ` FROM ledger_budgets
        WHERE tenant_id = $1 AND key_id IN ('', $2) ORDER BY key_id, id`
	budgetsOfTenant = `SELECT ` + budgetColumns + ` FROM ledger_budgets
        WHERE tenant_id = $1 ORDER BY key_id, created_at, id`
	upsertBudget = `INSERT INTO ledger_budgets (` + budgetColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        ON CONFLICT (tenant_id, key_id, period, tz, duration_us) DO UPDATE SET amount = excluded.amount
        RETURNING id, created_at`
	deleteBudgets = `DELETE FROM ledger_budgets
        WHERE tenant_id = $1 AND key_id = $2 AND (CAST($3 AS TEXT) = '' OR id = $3) RETURNING id`
	// The spend of a budget's period: debits created since $2 (their
	// time is the settlement's, so a request settled in the period counts
	// in it) and every open hold (any of them may settle in the period,
	// even one reserved before it began), with the oldest debit counted,
	// which a rolling window drops first. The literal kind = 'debit' (and
	// key_id <> '') match the partial indexes of migration 00204.
	tenantSpend = `SELECT d.s, d.m, (SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM ledger_holds WHERE tenant_id = $1)
        FROM (SELECT CAST(COALESCE(-SUM(amount), 0) AS BIGINT) AS s, COALESCE(MIN(created_at), 0) AS m
              FROM ledger_entries WHERE tenant_id = $1 AND kind = 'debit' AND created_at >= $2) d`
	keySpend = `SELECT d.s, d.m, (SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM ledger_holds WHERE tenant_id = $1 AND key_id = $3)
        FROM (SELECT CAST(COALESCE(-SUM(amount), 0) AS BIGINT) AS s, COALESCE(MIN(created_at), 0) AS m
              FROM ledger_entries WHERE key_id = $3 AND key_id <> '' AND kind = 'debit' AND created_at >= $2 AND tenant_id = $1) d`
)

func scanBudget(scan func(...any) error) (Budget, error) {
	var (
		b          Budget
		period     string
		dur, since int64
	)
	if err := scan(&b.ID, &b.TenantID, &b.KeyID, &b.Amount, &period, &b.TZ, &dur, &since); err != nil {
		return Budget{}, err
	}
	b.Period, b.Duration, b.Created = Period(period), time.Duration(dur)*time.Microsecond, time.UnixMicro(since).UTC()
	return b, nil
}

func listBudgets(ctx context.Context, rows rowsFunc, q string, args ...any) ([]Budget, error) {
	var out []Budget
	err := rows(ctx, q, args, func(scan func(...any) error) error {
		b, err := scanBudget(scan)
		out = append(out, b)
		return err
	})
	return out, err
}

// budgetStatus sums b's spend in the period containing at.
func budgetStatus(ctx context.Context, rows rowsFunc, b Budget, at time.Time) (BudgetStatus, error) {
	st := BudgetStatus{Budget: b}
	st.Start, st.ResetsAt = b.bounds(at)
	q, args := tenantSpend, []any{b.TenantID, st.Start.UnixMicro()}
	if b.KeyID != "" {
		q, args = keySpend, append(args, b.KeyID)
	}
	var debits, held Micros
	var oldest int64
	err := rows(ctx, q, args, func(scan func(...any) error) error { return scan(&debits, &oldest, &held) })
	if err != nil {
		return BudgetStatus{}, fmt.Errorf("budget %s: %w", b.ID, err)
	}
	st.Spent = debits + held
	if b.Period == PeriodRolling && oldest != 0 {
		st.ResetsAt = time.UnixMicro(oldest).UTC().Add(b.Duration)
	}
	return st, nil
}

// checkBudgets refuses h if it would take any budget of its tenant or key
// past its amount: exactly at the amount is allowed. It runs inside the
// reservation's transaction, after the tenant's account row is locked, so
// no other reservation or settlement of the tenant can change the sums
// between this check and the hold's insert. Of several budgets crossed it
// reports the one that resets last: a retry before then is refused again.
func checkBudgets(ctx context.Context, rows rowsFunc, h HoldRequest) error {
	bs, err := listBudgets(ctx, rows, budgetsOfRequest, h.TenantID, h.KeyID)
	if err != nil {
		return fmt.Errorf("budgets of tenant %s: %w", h.TenantID, err)
	}
	var worst *billing.BudgetError
	for _, b := range bs {
		st, err := budgetStatus(ctx, rows, b, h.Time)
		if err != nil {
			return err
		}
		if h.Amount > st.Amount-st.Spent {
			if e := budgetRefusal(st, h.Amount); worst == nil || e.ResetAt.After(worst.ResetAt) {
				worst = e
			}
		}
	}
	if worst != nil {
		return worst
	}
	return nil
}

func setBudget(ctx context.Context, rows rowsFunc, b Budget, now time.Time) (Budget, error) {
	b, err := b.Normalize()
	if err != nil {
		return Budget{}, err
	}
	b.ID = newBudgetID()
	var since int64
	err = rows(ctx, upsertBudget, []any{b.ID, b.TenantID, b.KeyID, int64(b.Amount), string(b.Period), b.TZ,
		b.Duration.Microseconds(), now.UnixMicro()}, func(scan func(...any) error) error { return scan(&b.ID, &since) })
	if err != nil {
		return Budget{}, fmt.Errorf("ledger: set budget: %w", err)
	}
	b.Created = time.UnixMicro(since).UTC()
	return b, nil
}

func budgetsWithSpend(ctx context.Context, rows rowsFunc, tenantID string, at time.Time) ([]BudgetStatus, error) {
	bs, err := listBudgets(ctx, rows, budgetsOfTenant, tenantID)
	if err != nil {
		return nil, fmt.Errorf("ledger: budgets of tenant %s: %w", tenantID, err)
	}
	out := make([]BudgetStatus, 0, len(bs))
	for _, b := range bs {
		st, err := budgetStatus(ctx, rows, b, at)
		if err != nil {
			return nil, fmt.Errorf("ledger: %w", err)
		}
		out = append(out, st)
	}
	return out, nil
}

func deleteBudgetRows(ctx context.Context, rows rowsFunc, tenantID, keyID, id string) (int, error) {
	n := 0
	err := rows(ctx, deleteBudgets, []any{tenantID, keyID, id}, func(scan func(...any) error) error {
		n++
		var got string
		return scan(&got)
	})
	if err != nil {
		return 0, fmt.Errorf("ledger: delete budgets: %w", err)
	}
	return n, nil
}

func (s *pgStore) SetBudget(ctx context.Context, b Budget) (Budget, error) {
	return setBudget(ctx, pgRows(s.pool), b, time.Now())
}

func (s *pgStore) Budgets(ctx context.Context, tenantID string, at time.Time) ([]BudgetStatus, error) {
	return budgetsWithSpend(ctx, pgRows(s.pool), tenantID, at)
}

func (s *pgStore) DeleteBudgets(ctx context.Context, tenantID, keyID, id string) (int, error) {
	return deleteBudgetRows(ctx, pgRows(s.pool), tenantID, keyID, id)
}

func (s *sqliteStore) SetBudget(ctx context.Context, b Budget) (Budget, error) {
	return setBudget(ctx, sqliteRows(s.db), b, time.Now())
}

func (s *sqliteStore) Budgets(ctx context.Context, tenantID string, at time.Time) ([]BudgetStatus, error) {
	return budgetsWithSpend(ctx, sqliteRows(s.db), tenantID, at)
}

func (s *sqliteStore) DeleteBudgets(ctx context.Context, tenantID, keyID, id string) (int, error) {
	return deleteBudgetRows(ctx, sqliteRows(s.db), tenantID, keyID, id)
}

// pgReserveHeld reserves for a tenant whose account row the transaction
// has locked and checked: one round trip for both writes.
const pgReserveHeld = `
WITH acct AS (
    UPDATE ledger_accounts SET reserved = reserved + $3 WHERE tenant_id = $1 RETURNING tenant_id)
INSERT INTO ledger_holds (hold_key, tenant_id, amount, created_at, key_id)
SELECT $2, tenant_id, $3, $4, $5 FROM acct`

// pgReserveLocked is the reservation when the one-statement path changed
// nothing: the tenant has a budget, no account yet, or too little balance.
// In one READ COMMITTED transaction it locks the tenant's account row, so
// every other reservation and settlement of the tenant (on any replica:
// each updates that row) waits, and each later statement reads what they
// committed; then it checks the balance, the budgets, and reserves.
func (s *pgStore) pgReserveLocked(ctx context.Context, h HoldRequest) error {
	tx, err := s.holds.Begin(ctx)
	if err != nil {
		return fmt.Errorf("ledger: reserve: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	// An overdraft may cover a tenant that never paid: it gets an account.
	if h.Overdraft >= h.Amount {
		if _, err := tx.Exec(ctx, `INSERT INTO ledger_accounts (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING`, h.TenantID); err != nil {
			return fmt.Errorf("ledger: reserve: %w", err)
		}
	}
	var balance, reserved Micros
	err = tx.QueryRow(ctx, `SELECT balance, reserved FROM ledger_accounts WHERE tenant_id = $1 FOR UPDATE`, h.TenantID).Scan(&balance, &reserved)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("ledger: reserve: %w", err)
	}
	if err != nil || balance-reserved-h.Amount < -h.Overdraft {
		return fmt.Errorf("%w: tenant %s cannot cover %s", billing.ErrInsufficientQuota, h.TenantID, h.Amount)
	}
	if err := checkBudgets(ctx, pgRows(tx), h); err != nil {
		return fmt.Errorf("ledger: reserve: %w", err)
	}
	if _, err := tx.Exec(ctx, pgReserveHeld, h.TenantID, h.Key, int64(h.Amount), h.Time.UnixMicro(), h.KeyID); err != nil {
		return fmt.Errorf("ledger: reserve: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("ledger: reserve: %w", err)
	}
	return nil
}
