package ledger

import (
	"context"
	"fmt"
	"math"
	"time"
)

// Queries and helpers shared by both dialects.

const entryColumns = `seq, idem_key, tenant_id, kind, amount, model, key_id, prompt_tokens, completion_tokens, reason, created_at, end_user, cached_prompt_tokens, batch_id`

func scanEntry(r interface{ Scan(...any) error }) (Entry, error) {
	var (
		e    Entry
		kind string
		at   int64
	)
	if err := r.Scan(&e.Seq, &e.Key, &e.TenantID, &kind, &e.Amount, &e.Model, &e.KeyID, &e.PromptTokens, &e.CompletionTokens, &e.Reason, &at, &e.EndUser, &e.CachedPromptTokens, &e.BatchID); err != nil {
		return Entry{}, err
	}
	e.Kind = Kind(kind)
	e.Time = time.UnixMicro(at).UTC()
	return e, nil
}

func sinceMicros(t time.Time) int64 {
	if t.IsZero() {
		return math.MinInt64
	}
	return t.UnixMicro()
}

func untilMicros(t time.Time) int64 {
	if t.IsZero() {
		return math.MaxInt64
	}
	return t.UnixMicro()
}

func beforeOrAll(seq int64) int64 {
	if seq <= 0 {
		return math.MaxInt64
	}
	return seq
}

// entriesQuery is Store.Entries in a dialect: p(i) is the i-th placeholder
// (tenant, since, until, before, limit). The order is a fixed keyword, not
// an argument, as SQL cannot bind one.
func entriesQuery(f Filter, p func(i int, typ string) string) string {
	order := "seq"
	if f.NewestFirst {
		order = "seq DESC"
	}
	return `SELECT ` + entryColumns + ` FROM ledger_entries
        WHERE (` + p(1, "text") + ` = '' OR tenant_id = ` + p(1, "text") + `) AND created_at >= ` + p(2, "bigint") +
		` AND created_at <= ` + p(3, "bigint") + ` AND seq < ` + p(4, "bigint") + `
        ORDER BY ` + order + ` LIMIT ` + p(5, "bigint")
}

func entriesArgs(f Filter) []any {
	return []any{f.TenantID, sinceMicros(f.Since), untilMicros(f.Until), beforeOrAll(f.BeforeSeq), limitOrAll(f.Limit)}
}

func limitOrAll(n int) int64 {
	if n <= 0 {
		return math.MaxInt64
	}
	return int64(n)
}

// settledHold matches a hold (aliased h) whose key already has an entry: it
// can never be settled, because its reservation committed after the
// release that was meant for it (a reservation whose outcome the gateway
// could not know, released by key while its commit was still in flight).
const settledHold = `EXISTS (SELECT 1 FROM ledger_entries e WHERE e.idem_key = h.hold_key)`

const holdsQuery = `SELECT hold_key, tenant_id, amount, created_at FROM ledger_holds
    WHERE created_at < %s ORDER BY created_at, hold_key`

var (
	pgHolds     = fmt.Sprintf(holdsQuery, "$1::bigint")
	sqliteHolds = fmt.Sprintf(holdsQuery, "?")
)

func scanHold(r interface{ Scan(...any) error }) (OpenHold, error) {
	var (
		h  OpenHold
		at int64
	)
	if err := r.Scan(&h.Key, &h.TenantID, &h.Amount, &at); err != nil {
		return OpenHold{}, err
	}
	h.Created = time.UnixMicro(at).UTC()
	return h, nil
}

// verifyBalances lists, per tenant seen anywhere, the stored balance and
// reservation beside the sums they must equal.
const verifyBalances = `
SELECT t.tenant_id,
       COALESCE(a.balance, 0), COALESCE(e.s, 0), COALESCE(a.reserved, 0), COALESCE(h.s, 0)
FROM (SELECT tenant_id FROM ledger_accounts
      UNION SELECT tenant_id FROM ledger_entries
      UNION SELECT tenant_id FROM ledger_holds) t
LEFT JOIN ledger_accounts a ON a.tenant_id = t.tenant_id
LEFT JOIN (SELECT tenant_id, CAST(SUM(amount) AS BIGINT) AS s FROM ledger_entries GROUP BY tenant_id) e ON e.tenant_id = t.tenant_id
LEFT JOIN (SELECT tenant_id, CAST(SUM(amount) AS BIGINT) AS s FROM ledger_holds GROUP BY tenant_id) h ON h.tenant_id = t.tenant_id
ORDER BY t.tenant_id`

const verifyCounts = `
SELECT (SELECT COUNT(*) FROM ledger_entries),
       (SELECT COUNT(*) FROM ledger_holds),
       (SELECT COUNT(*) FROM ledger_entries
        WHERE (kind = 'credit' AND amount <= 0) OR (kind = 'debit' AND amount > 0)
           OR (kind = 'release' AND amount <> 0) OR kind = 'reservation')`

// eachRow calls each for every row of a pgx or database/sql result.
func eachRow(rows interface {
	Next() bool
	Scan(...any) error
	Err() error
}, each func(scan func(...any) error) error) error {
	for rows.Next() {
		if err := each(rows.Scan); err != nil {
			return err
		}
	}
	return rows.Err()
}

type querier interface {
	query(ctx context.Context, sql string, each func(scan func(...any) error) error) error
}

func verify(ctx context.Context, q querier) (Report, error) {
	var r Report
	err := q.query(ctx, verifyBalances, func(scan func(...any) error) error {
		var d Drift
		if err := scan(&d.TenantID, &d.Balance, &d.EntrySum, &d.Reserved, &d.HoldSum); err != nil {
			return err
		}
		r.Tenants++
		if d.Balance != d.EntrySum || d.Reserved != d.HoldSum {
			r.Drifts = append(r.Drifts, d)
		}
		return nil
	})
	if err != nil {
		return Report{}, fmt.Errorf("ledger: verify balances: %w", err)
	}
	err = q.query(ctx, verifyCounts, func(scan func(...any) error) error {
		return scan(&r.Entries, &r.Holds, &r.BadSigns)
	})
	if err != nil {
		return Report{}, fmt.Errorf("ledger: verify entries: %w", err)
	}
	return r, nil
}
