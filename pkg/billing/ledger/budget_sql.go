package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
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
	// One part per budget of the query that sums their periods' spend:
	// debits created since the period's start (their time is the
	// settlement's, so a request settled in the period counts in it) and
	// every open hold (any of them may settle in the period, even one
	// reserved before it began), with the oldest debit counted, which a
	// rolling window drops first. The literal kind = 'debit' (and
	// key_id <> '') match the partial indexes of migration 00204. %[1]d is
	// the budget's index, %[2]s its start's placeholder, %[3]s its key's.
	tenantSpendPart = `SELECT %[1]d, d.s, d.m, (SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM ledger_holds WHERE tenant_id = $1)
        FROM (SELECT CAST(COALESCE(-SUM(amount), 0) AS BIGINT) AS s, COALESCE(MIN(created_at), 0) AS m
              FROM ledger_entries WHERE tenant_id = $1 AND kind = 'debit' AND created_at >= %[2]s) d`
	keySpendPart = `SELECT %[1]d, d.s, d.m, (SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM ledger_holds WHERE tenant_id = $1 AND key_id = %[3]s)
        FROM (SELECT CAST(COALESCE(-SUM(amount), 0) AS BIGINT) AS s, COALESCE(MIN(created_at), 0) AS m
              FROM ledger_entries WHERE key_id = %[3]s AND key_id <> '' AND kind = 'debit' AND created_at >= %[2]s AND tenant_id = $1) d`
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

// budgetStatuses sums the spend of each budget (all of one tenant) in the
// period containing at, in one query: one round trip however many budgets.
func budgetStatuses(ctx context.Context, rows rowsFunc, bs []Budget, at time.Time) ([]BudgetStatus, error) {
	if len(bs) == 0 {
		return nil, nil
	}
	out := make([]BudgetStatus, len(bs))
	args := []any{bs[0].TenantID}
	param := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	parts := make([]string, len(bs))
	for i, b := range bs {
		st := BudgetStatus{Budget: b}
		st.Start, st.ResetsAt = b.bounds(at)
		out[i] = st
		if b.KeyID == "" {
			parts[i] = fmt.Sprintf(tenantSpendPart, i, param(st.Start.UnixMicro()))
		} else {
			parts[i] = fmt.Sprintf(keySpendPart, i, param(st.Start.UnixMicro()), param(b.KeyID))
		}
	}
	seen := 0
	err := rows(ctx, strings.Join(parts, "\nUNION ALL\n"), args, func(scan func(...any) error) error {
		var (
			i            int
			debits, held Micros
			oldest       int64
		)
		if err := scan(&i, &debits, &oldest, &held); err != nil {
			return err
		}
		if i < 0 || i >= len(out) {
			return fmt.Errorf("budget spend row %d of %d", i, len(out))
		}
		st := &out[i]
		st.Spent = debits + held
		if st.Period == PeriodRolling && oldest != 0 {
			st.ResetsAt = time.UnixMicro(oldest).UTC().Add(st.Duration)
		}
		seen++
		return nil
	})
	if err == nil && seen != len(out) {
		err = fmt.Errorf("%d spend rows for %d budgets", seen, len(out))
	}
	if err != nil {
		return nil, fmt.Errorf("budget spend of tenant %s: %w", bs[0].TenantID, err)
	}
	return out, nil
}

// checkBudgets refuses h if it would take any budget of its tenant or key
// past its amount: exactly at the amount is allowed. It runs inside the
// reservation's transaction, after the tenant's account row is locked, so
// no other reservation or settlement of the tenant can change the sums
// between this check and the hold's insert. Of several budgets crossed it
// reports the one that resets last: a retry before then is refused again.
//
// It also returns the budget.threshold events of the check: the shares the
// reservation crosses (the caller writes them in its transaction), or, with
// the refusal, the 100 % alert of each budget that refused it (written on
// their own, as the refused transaction writes nothing).
func checkBudgets(ctx context.Context, rows rowsFunc, h HoldRequest) ([]Event, error) {
	bs, err := listBudgets(ctx, rows, budgetsOfRequest, h.TenantID, h.KeyID)
	if err != nil {
		return nil, fmt.Errorf("budgets of tenant %s: %w", h.TenantID, err)
	}
	sts, err := budgetStatuses(ctx, rows, bs, h.Time)
	if err != nil {
		return nil, err
	}
	var (
		worst            *billing.BudgetError
		crossed, refused []Event
	)
	for _, st := range sts {
		if h.Amount > st.Amount-st.Spent {
			refused = append(refused, budgetEvents(st, h.Amount, true, h.Time)...)
			if e := budgetRefusal(st, h.Amount); worst == nil || e.ResetAt.After(worst.ResetAt) {
				worst = e
			}
			continue
		}
		crossed = append(crossed, budgetEvents(st, h.Amount, false, h.Time)...)
	}
	if worst != nil {
		return refused, worst
	}
	return crossed, nil
}

// emitEvents writes evs on db (in the caller's transaction, if db is one).
func emitEvents(ctx context.Context, db obDB, evs []Event) error {
	for _, ev := range evs {
		if _, err := emitEvent(ctx, db, ev); err != nil {
			return err
		}
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
	out, err := budgetStatuses(ctx, rows, bs, at)
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	if out == nil {
		out = []BudgetStatus{}
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
	evs, err := checkBudgets(ctx, pgRows(tx), h)
	if err != nil {
		// Best effort: a lost 100 % alert is written again by the next
		// refusal (its id is fixed), and the refusal stands either way.
		_ = tx.Rollback(ctx)
		_ = emitEvents(ctx, pgOB{s.pool}, evs)
		return fmt.Errorf("ledger: reserve: %w", err)
	}
	if err := emitEvents(ctx, pgOB{tx}, evs); err != nil {
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
