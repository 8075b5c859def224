package ledger

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pgStore is the PostgreSQL ledger. It writes on the two pools of a
// store.DB: holds with synchronous_commit off (a hold lost in a crash only
// frees a reservation early, and the reserve sits on the request's hot
// path), entries always synchronously.
type pgStore struct {
	pool   *pgxpool.Pool // entries, reads
	holds  *pgxpool.Pool // reservations
	alerts alertState    // outbox.go
	// release, when set, is what Close does instead of closing the pools:
	// they are a store.DB's (OnDB, Open).
	release func() error
}

func (s *pgStore) Close() error {
	if s.release != nil {
		return s.release()
	}
	s.pool.Close()
	s.holds.Close()
	return nil
}

func (s *pgStore) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// pgReserve is the one-statement reservation of a tenant and key without a
// budget; it changes nothing when they have one (pgReserveLocked checks it).
const pgReserve = `
WITH acct AS (
    UPDATE ledger_accounts SET reserved = reserved + $3::bigint
    WHERE tenant_id = $1::text AND balance - reserved - $3::bigint >= -($4::bigint)
        AND NOT EXISTS (SELECT 1 FROM ledger_budgets b WHERE b.tenant_id = $1::text AND b.key_id IN ('', $6::text))
    RETURNING tenant_id)
INSERT INTO ledger_holds (hold_key, tenant_id, amount, created_at, key_id)
SELECT $2::text, tenant_id, $3::bigint, $5::bigint, $6::text FROM acct`

func (s *pgStore) Reserve(ctx context.Context, h HoldRequest) error {
	if h.Amount < 0 || h.Key == "" || h.TenantID == "" {
		return fmt.Errorf("ledger: reserve: invalid hold %q", h.Key)
	}
	tag, err := s.holds.Exec(ctx, pgReserve, h.TenantID, h.Key, int64(h.Amount), int64(h.Overdraft), h.Time.UnixMicro(), h.KeyID)
	if err != nil {
		return fmt.Errorf("ledger: reserve: %w", err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	// No row: a budget applies, the tenant has no account yet, or too
	// little balance. The locking path tells them apart.
	return s.pgReserveLocked(ctx, h)
}

// pgApply inserts a batch, moves balances by what was new and releases the
// matching holds, in one statement. Accounts are locked in tenant order so
// that concurrent batches from several gateways cannot deadlock.
const pgApply = `
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::bigint[], $7::bigint[], $8::text[], $9::bigint[], $10::text[], $11::text[], $12::bigint[], $15::text[])
        AS t(idem_key, tenant_id, kind, amount, model, prompt_tokens, completion_tokens, reason, created_at, key_id, end_user, cached_prompt_tokens, batch_id)
), ins AS (
    INSERT INTO ledger_entries (idem_key, tenant_id, kind, amount, model, prompt_tokens, completion_tokens, reason, created_at, key_id, end_user, cached_prompt_tokens, batch_id)
    SELECT * FROM input
    ON CONFLICT (idem_key) DO NOTHING
    RETURNING idem_key, tenant_id, kind, amount, reason
), rel AS (
    DELETE FROM ledger_holds WHERE hold_key = ANY($1::text[])
    RETURNING tenant_id, amount
), delta AS (
    SELECT tenant_id, sum(b)::bigint AS b, sum(r)::bigint AS r FROM (
        SELECT tenant_id, amount AS b, 0::bigint AS r FROM ins
        UNION ALL
        SELECT tenant_id, 0::bigint, amount FROM rel) x
    GROUP BY tenant_id
), upd AS (
    INSERT INTO ledger_accounts AS a (tenant_id, balance, reserved)
    SELECT tenant_id, b, -r FROM delta ORDER BY tenant_id
    ON CONFLICT (tenant_id) DO UPDATE
        SET balance = a.balance + EXCLUDED.balance, reserved = a.reserved + EXCLUDED.reserved
    RETURNING a.tenant_id, a.balance
)` + pgApplyEvents + `
SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM upd)`

func (s *pgStore) Apply(ctx context.Context, entries []Entry) (int, error) {
	return pgApplyOn(ctx, s.pool, &s.alerts, entries)
}

// pgRower is a pool or a transaction: Apply runs alone, or inside
// RedeemVoucher's transaction.
type pgRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func pgApplyOn(ctx context.Context, q pgRower, al *alertState, entries []Entry) (int, error) {
	if len(entries) == 0 {
		return 0, nil
	}
	n := len(entries)
	var (
		keys, tenants, kinds, models, reasons = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		keyIDs, endUsers, batchIDs            = make([]string, n), make([]string, n), make([]string, n)
		cached                                = make([]int64, n)
		amounts, pt, ct, times                = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	)
	for i, e := range entries {
		if err := e.Validate(); err != nil {
			return 0, err
		}
		keys[i], tenants[i], kinds[i], models[i], reasons[i] = e.Key, e.TenantID, string(e.Kind), e.Model, e.Reason
		keyIDs[i], endUsers[i], cached[i], batchIDs[i] = e.KeyID, e.EndUser, e.CachedPromptTokens, e.BatchID
		amounts[i], pt[i], ct[i], times[i] = int64(e.Amount), e.PromptTokens, e.CompletionTokens, e.Time.UnixMicro()
	}
	var inserted, accounts int64
	err := q.QueryRow(ctx, pgApply, keys, tenants, kinds, amounts, models, pt, ct, reasons, times, keyIDs, endUsers, cached,
		int64(al.lowBalance()), time.Now().UnixMicro(), batchIDs).Scan(&inserted, &accounts)
	if err != nil {
		return 0, fmt.Errorf("ledger: apply %d entries: %w", n, err)
	}
	return int(inserted), nil
}

const pgExpire = `
WITH gone AS (
    DELETE FROM ledger_holds h WHERE h.created_at < $1 OR ` + settledHold + `
    RETURNING tenant_id, amount
), d AS (
    SELECT tenant_id, sum(amount)::bigint AS s FROM gone GROUP BY tenant_id
), upd AS (
    UPDATE ledger_accounts a SET reserved = a.reserved - d.s FROM d WHERE a.tenant_id = d.tenant_id RETURNING 1
)
SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM upd)`

func (s *pgStore) ExpireHolds(ctx context.Context, before time.Time) (int, error) {
	var n, accounts int64
	if err := s.pool.QueryRow(ctx, pgExpire, before.UnixMicro()).Scan(&n, &accounts); err != nil {
		return 0, fmt.Errorf("ledger: expire holds: %w", err)
	}
	return int(n), nil
}

func (s *pgStore) Holds(ctx context.Context, before time.Time) ([]OpenHold, error) {
	out, err := pgCollect(ctx, s.pool, scanHold, pgHolds, before.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("ledger: holds: %w", err)
	}
	return out, nil
}

func (s *pgStore) Account(ctx context.Context, tenantID string) (Account, error) {
	a := Account{TenantID: tenantID}
	err := s.pool.QueryRow(ctx, `SELECT balance, reserved FROM ledger_accounts WHERE tenant_id = $1`, tenantID).Scan(&a.Balance, &a.Reserved)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return Account{}, fmt.Errorf("ledger: account %s: %w", tenantID, err)
	}
	return a, nil
}

func (s *pgStore) Accounts(ctx context.Context) ([]Account, error) {
	rows, err := s.pool.Query(ctx, `SELECT tenant_id, balance, reserved FROM ledger_accounts ORDER BY tenant_id`)
	if err != nil {
		return nil, fmt.Errorf("ledger: accounts: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Account, error) {
		var a Account
		err := r.Scan(&a.TenantID, &a.Balance, &a.Reserved)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: accounts: %w", err)
	}
	return out, nil
}

func (s *pgStore) Entries(ctx context.Context, f Filter) ([]Entry, error) {
	q := entriesQuery(f, func(i int, typ string) string { return "$" + strconv.Itoa(i) + "::" + typ })
	out, err := pgCollect(ctx, s.pool, scanEntry, q, entriesArgs(f)...)
	if err != nil {
		return nil, fmt.Errorf("ledger: entries: %w", err)
	}
	return out, nil
}

// pgCollect runs query and scans every row with scan.
func pgCollect[T any](ctx context.Context, pool *pgxpool.Pool, scan func(interface{ Scan(...any) error }) (T, error), query string, args ...any) ([]T, error) {
	rows, err := pool.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (T, error) { return scan(r) })
}

func (s *pgStore) Verify(ctx context.Context) (Report, error) {
	return verify(ctx, pgxQuerier{s.pool})
}

type pgxQuerier struct{ p *pgxpool.Pool }

func (q pgxQuerier) query(ctx context.Context, sql string, each func(scan func(...any) error) error) error {
	rows, err := q.p.Query(ctx, sql)
	if err != nil {
		return err
	}
	defer rows.Close()
	return eachRow(rows, each)
}
