package ledger

import (
	"context"
	"fmt"
	"time"
)

// Spend is one tenant's usage over a window, summed by the database: the
// charged amount (positive) and the number of settled requests (debits and
// releases: each settles one request), over the whole window and over its
// most recent part.
type Spend struct {
	TenantID string `json:"tenantID"`
	// Model is set when the window asked ByModel: one row per model.
	Model string `json:"model,omitempty"`
	// KeyID is set when the window asked ByKey: one row per API key id,
	// "" for entries that record none (written before keys were recorded).
	KeyID string `json:"keyID,omitempty"`
	// EndUser is set when the window asked ByUser: one row per OpenAI
	// `user` value, "" for requests that named none.
	EndUser string `json:"endUser,omitempty"`
	// BatchID is set when the window asked ByBatch: one row per batch,
	// "" for interactive requests.
	BatchID        string `json:"batchId,omitempty"`
	Amount         Micros `json:"amount"`
	Requests       int64  `json:"requests"`
	RecentAmount   Micros `json:"recentAmount"`
	RecentRequests int64  `json:"recentRequests"`
}

// Add adds o's amounts and requests to s (rows of a split, summed).
func (s *Spend) Add(o Spend) {
	s.Amount += o.Amount
	s.Requests += o.Requests
	s.RecentAmount += o.RecentAmount
	s.RecentRequests += o.RecentRequests
}

// SpendWindow bounds a Spend query: entries created in [Since, Until], of
// which those at or after Recent also count as recent.
type SpendWindow struct {
	Since, Recent, Until time.Time
	// TenantID, if set, sums that tenant only.
	TenantID string
	// ByModel splits each tenant's row by the entries' model.
	ByModel bool
	// ByKey splits each tenant's row by the entries' API key id.
	ByKey bool
	// ByUser splits each tenant's row by the entries' end user.
	ByUser bool
	// ByBatch splits each tenant's row by the entries' batch ("" for
	// interactive requests).
	ByBatch bool
}

// The aggregate runs in the database so `llmctl top` reads one row per
// tenant each refresh rather than every entry of the day.
const spendQuery = `SELECT tenant_id,
        COALESCE(-SUM(amount), 0),
        COUNT(*),
        COALESCE(-SUM(CASE WHEN created_at >= %[2]s THEN amount ELSE 0 END), 0),
        COALESCE(SUM(CASE WHEN created_at >= %[2]s THEN 1 ELSE 0 END), 0),
        CASE WHEN %[5]s = 1 THEN model ELSE '' END,
        CASE WHEN %[6]s = 1 THEN key_id ELSE '' END,
        CASE WHEN %[7]s = 1 THEN end_user ELSE '' END,
        CASE WHEN %[8]s = 1 THEN batch_id ELSE '' END
    FROM ledger_entries
    WHERE kind IN ('debit', 'release') AND created_at >= %[1]s AND created_at <= %[3]s
        AND (%[4]s = '' OR tenant_id = %[4]s)
    GROUP BY 1, 6, 7, 8, 9 ORDER BY 1, 6, 7, 8, 9`

var (
	pgSpend     = fmt.Sprintf(spendQuery, "$1::bigint", "$2::bigint", "$3::bigint", "$4::text", "$5::int", "$6::int", "$7::int", "$8::int")
	sqliteSpend = fmt.Sprintf(spendQuery, "?1", "?2", "?3", "?4", "?5", "?6", "?7", "?8")
)

func spendArgs(w SpendWindow) []any {
	flag := func(b bool) int {
		if b {
			return 1
		}
		return 0
	}
	return []any{sinceMicros(w.Since), sinceMicros(w.Recent), w.Until.UnixMicro(), w.TenantID, flag(w.ByModel), flag(w.ByKey), flag(w.ByUser), flag(w.ByBatch)}
}

func (s *pgStore) Spend(ctx context.Context, w SpendWindow) ([]Spend, error) {
	rows, err := s.pool.Query(ctx, pgSpend, spendArgs(w)...)
	if err != nil {
		return nil, fmt.Errorf("ledger: spend: %w", err)
	}
	defer rows.Close()
	return collectSpend(rows)
}

func (s *sqliteStore) Spend(ctx context.Context, w SpendWindow) ([]Spend, error) {
	rows, err := s.db.QueryContext(ctx, sqliteSpend, spendArgs(w)...)
	if err != nil {
		return nil, fmt.Errorf("ledger: spend: %w", err)
	}
	defer rows.Close()
	return collectSpend(rows)
}

// collectSpend reads either driver's rows (pgx.Rows, *sql.Rows).
func collectSpend(rows interface {
	Next() bool
	Scan(...any) error
	Err() error
}) ([]Spend, error) {
	var out []Spend
	for rows.Next() {
		var sp Spend
		if err := rows.Scan(&sp.TenantID, &sp.Amount, &sp.Requests, &sp.RecentAmount, &sp.RecentRequests, &sp.Model, &sp.KeyID, &sp.EndUser, &sp.BatchID); err != nil {
			return nil, fmt.Errorf("ledger: spend: %w", err)
		}
		out = append(out, sp)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: spend: %w", err)
	}
	return out, nil
}
