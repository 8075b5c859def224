package ledger

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/llmctl/llmctl/pkg/billing"
)

// sqliteStore is the embedded ledger. Every write is one IMMEDIATE
// transaction (the DSN sets _txlock), so reservations are atomic with the
// balance check; WAL keeps readers off the writer's back.
type sqliteStore struct {
	db     *sql.DB
	alerts alertState  // outbox.go
	stmts  sqliteStmts // sqlite_stmts.go
	// release, when set, is what Close does instead of closing db: it is a
	// store.DB's (OnDB, Open).
	release func() error
}

// NewSQLite wraps an opened, migrated SQLite database (see store.OpenSQLite
// for the shared settings). The ledger owns db from here on.
func NewSQLite(db *sql.DB) Store {
	// One writer at a time is SQLite's model; one connection avoids
	// busy-waiting between our own connections.
	db.SetMaxOpenConns(1)
	return &sqliteStore{db: db}
}

func (s *sqliteStore) Close() error {
	serr := s.stmts.close()
	if s.release != nil {
		return errors.Join(serr, s.release())
	}
	return errors.Join(serr, s.db.Close())
}
func (s *sqliteStore) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

func (s *sqliteStore) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	return runTx(ctx, s.db.BeginTx, fn)
}

// runTx runs fn in a transaction from begin, committing if fn succeeds.
func runTx(ctx context.Context, begin func(context.Context, *sql.TxOptions) (*sql.Tx, error), fn func(*sql.Tx) error) error {
	tx, err := begin(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// holdTx runs fn in a transaction that commits without an fsync
// (synchronous NORMAL in WAL mode), as PostgreSQL's holds commit with
// synchronous_commit off: a hold lost in a power cut only frees a
// reservation early (its settlement still charges by key, and the restart
// releases what the spool's intents name), and the reservation sits on the
// request's path. The WAL is sequential, so the next fsync'd commit (every
// entry's) makes the hold durable too. The connection goes back to FULL
// before anyone else uses it, or is discarded.
func (s *sqliteStore) holdTx(ctx context.Context, fn func(*sql.Tx) error) (err error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = NORMAL`); err != nil {
		return err
	}
	defer func() {
		if _, rerr := conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA synchronous = FULL`); rerr != nil {
			// Never leave a connection that skips fsyncs in the pool.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			if err == nil {
				err = rerr
			}
		}
	}()
	return runTx(ctx, conn.BeginTx, fn)
}

func (s *sqliteStore) Reserve(ctx context.Context, h HoldRequest) error {
	if h.Amount < 0 || h.Key == "" || h.TenantID == "" {
		return fmt.Errorf("ledger: reserve: invalid hold %q", h.Key)
	}
	short := false
	var refusedEvents []Event
	// Unprepared, the statements still run (and show any error themselves).
	_ = s.stmts.prepare(ctx, s.db)
	err := s.holdTx(ctx, func(sqltx *sql.Tx) error {
		tx := s.stmts.in(sqltx)
		if h.Overdraft >= h.Amount {
			if _, err := tx.ExecContext(ctx, sqliteOpenAccount, h.TenantID); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, sqliteHold, int64(h.Amount), h.TenantID, int64(h.Amount), int64(h.Overdraft))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			short = true
			return err
		}
		// The IMMEDIATE transaction already excludes every other writer.
		evs, err := checkBudgets(ctx, sqliteRows(tx), h)
		if err != nil {
			refusedEvents = evs
			return err
		}
		if err := emitEvents(ctx, sqlOB{tx}, evs); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, sqliteInsertHold, h.Key, h.TenantID, int64(h.Amount), h.Time.UnixMicro(), h.KeyID)
		return err
	})
	if len(refusedEvents) > 0 {
		// Best effort, as on PostgreSQL (budget_sql.go).
		_ = s.tx(ctx, func(tx *sql.Tx) error { return emitEvents(ctx, sqlOB{tx}, refusedEvents) })
	}
	if err != nil {
		return fmt.Errorf("ledger: reserve: %w", err)
	}
	if short {
		return fmt.Errorf("%w: tenant %s cannot cover %s", billing.ErrInsufficientQuota, h.TenantID, h.Amount)
	}
	return nil
}

func (s *sqliteStore) Apply(ctx context.Context, entries []Entry) (int, error) {
	for _, e := range entries {
		if err := e.Validate(); err != nil {
			return 0, err
		}
	}
	inserted := 0
	_ = s.stmts.prepare(ctx, s.db) // as in Reserve
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		inserted, err = sqliteApplyTx(ctx, s.stmts.in(tx), &s.alerts, entries)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("ledger: apply %d entries: %w", len(entries), err)
	}
	return inserted, nil
}

// sqliteApplyTx is Apply's work inside tx (its own, or RedeemVoucher's); the
// entries are already validated.
func sqliteApplyTx(ctx context.Context, tx sqliteTx, al *alertState, entries []Entry) (int, error) {
	inserted := 0
	for _, e := range entries {
		res, err := tx.ExecContext(ctx, sqliteInsertEntry, e.Key, e.TenantID, string(e.Kind), int64(e.Amount), e.Model, e.KeyID, e.PromptTokens, e.CompletionTokens, e.Reason, e.Time.UnixMicro(),
			e.EndUser, e.CachedPromptTokens, e.BatchID)
		if err != nil {
			return 0, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, err
		}
		var held int64
		err = tx.QueryRowContext(ctx, sqliteTakeHold, e.Key).Scan(&held)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return 0, err
		}
		if n == 0 && held == 0 {
			continue
		}
		moved := int64(0)
		if n == 1 {
			inserted++
			moved = int64(e.Amount)
		}
		// SQLite turns an integer sum past int64 into a float instead of
		// failing; refuse it as PostgreSQL's bigint does.
		var (
			exact   bool
			balance int64
		)
		if err := tx.QueryRowContext(ctx, sqliteMoveBalance, e.TenantID, moved, -held).Scan(&exact, &balance); err != nil {
			return 0, err
		}
		if !exact {
			return 0, fmt.Errorf("tenant %s: entry %s would take the balance past the largest amount a ledger holds", e.TenantID, e.Key)
		}
		if n == 1 {
			// Its alerts, in the same transaction (outbox.go).
			if err := applyEntryEvents(ctx, sqlOB{tx}, al, e, Micros(balance)); err != nil {
				return 0, err
			}
		}
	}
	return inserted, nil
}

func (s *sqliteStore) ExpireHolds(ctx context.Context, before time.Time) (int, error) {
	n := 0
	err := s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `DELETE FROM ledger_holds AS h WHERE h.created_at < ? OR `+settledHold+` RETURNING tenant_id, amount`, before.UnixMicro())
		if err != nil {
			return err
		}
		sums := map[string]int64{}
		for rows.Next() {
			var t string
			var a int64
			if err := rows.Scan(&t, &a); err != nil {
				rows.Close()
				return err
			}
			sums[t] += a
			n++
		}
		if err := rows.Close(); err != nil {
			return err
		}
		for t, a := range sums {
			if _, err := tx.ExecContext(ctx, `UPDATE ledger_accounts SET reserved = reserved - ? WHERE tenant_id = ?`, a, t); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("ledger: expire holds: %w", err)
	}
	return n, nil
}

func (s *sqliteStore) Holds(ctx context.Context, before time.Time) ([]OpenHold, error) {
	out, err := sqlCollect(ctx, s.db, scanHold, sqliteHolds, before.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("ledger: holds: %w", err)
	}
	return out, nil
}

func (s *sqliteStore) Account(ctx context.Context, tenantID string) (Account, error) {
	a := Account{TenantID: tenantID}
	err := s.db.QueryRowContext(ctx, `SELECT balance, reserved FROM ledger_accounts WHERE tenant_id = ?`, tenantID).Scan(&a.Balance, &a.Reserved)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Account{}, fmt.Errorf("ledger: account %s: %w", tenantID, err)
	}
	return a, nil
}

func (s *sqliteStore) Accounts(ctx context.Context) ([]Account, error) {
	var out []Account
	err := sqlQuerier{s.db}.query(ctx, `SELECT tenant_id, balance, reserved FROM ledger_accounts ORDER BY tenant_id`,
		func(scan func(...any) error) error {
			var a Account
			if err := scan(&a.TenantID, &a.Balance, &a.Reserved); err != nil {
				return err
			}
			out = append(out, a)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("ledger: accounts: %w", err)
	}
	return out, nil
}

func (s *sqliteStore) Entries(ctx context.Context, f Filter) ([]Entry, error) {
	q := entriesQuery(f, func(i int, _ string) string { return "?" + strconv.Itoa(i) })
	out, err := sqlCollect(ctx, s.db, scanEntry, q, entriesArgs(f)...)
	if err != nil {
		return nil, fmt.Errorf("ledger: entries: %w", err)
	}
	return out, nil
}

// sqlCollect runs query and scans every row with scan.
func sqlCollect[T any](ctx context.Context, db *sql.DB, scan func(interface{ Scan(...any) error }) (T, error), query string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func (s *sqliteStore) Verify(ctx context.Context) (Report, error) {
	return verify(ctx, sqlQuerier{s.db})
}

type sqlQuerier struct{ db *sql.DB }

func (q sqlQuerier) query(ctx context.Context, query string, each func(scan func(...any) error) error) error {
	rows, err := q.db.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	return eachRow(rows, each)
}
