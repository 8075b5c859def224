package ledger

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
)

// The SQLite statements of every reservation and settlement. modernc's
// driver parses a statement on every call made with a query string (the
// full-path profile put 14 % of the CPU in SQLite's parser), so the store
// prepares these once and runs them through them (sqliteStmts).
const (
	sqliteOpenAccount = `INSERT INTO ledger_accounts (tenant_id) VALUES (?) ON CONFLICT DO NOTHING`
	sqliteHold        = `UPDATE ledger_accounts SET reserved = reserved + ?
            WHERE tenant_id = ? AND balance - reserved - ? >= -?`
	sqliteInsertHold  = `INSERT INTO ledger_holds (hold_key, tenant_id, amount, created_at, key_id) VALUES (?, ?, ?, ?, ?)`
	sqliteInsertEntry = `INSERT INTO ledger_entries
                (idem_key, tenant_id, kind, amount, model, key_id, prompt_tokens, completion_tokens, reason, created_at, end_user, cached_prompt_tokens, batch_id)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (idem_key) DO NOTHING`
	sqliteTakeHold    = `DELETE FROM ledger_holds WHERE hold_key = ? RETURNING amount`
	sqliteMoveBalance = `INSERT INTO ledger_accounts (tenant_id, balance, reserved) VALUES (?, ?, ?)
                ON CONFLICT (tenant_id) DO UPDATE SET balance = balance + excluded.balance, reserved = reserved + excluded.reserved
                RETURNING typeof(balance) = 'integer' AND typeof(reserved) = 'integer', CAST(balance AS INTEGER)`
	tenantLowBalanceQuery = `SELECT low_balance FROM alert_thresholds WHERE tenant_id = $1`
)

// sqliteHotQueries are prepared once per store, each exactly as the code
// that runs it passes it to the driver (the shared $N queries as ?N).
var sqliteHotQueries = [...]string{
	sqliteOpenAccount, sqliteHold, sqliteInsertHold, sqliteInsertEntry, sqliteTakeHold, sqliteMoveBalance,
	strings.ReplaceAll(budgetsOfRequest, "$", "?"),
	strings.ReplaceAll(tenantLowBalanceQuery, "$", "?"),
}

// sqliteStmts holds a store's prepared statements: prepared on first use,
// before any transaction takes the one connection (preparing inside one
// would wait for that connection), closed by Close. database/sql prepares
// a statement again on a new connection by itself if the old one is
// dropped.
type sqliteStmts struct {
	ready atomic.Pointer[map[string]*sql.Stmt]
	mu    sync.Mutex // serializes preparing and closing
	shut  bool
}

// prepare makes sure the statements are ready; an error leaves them for the
// next call (the queries then run unprepared, as before).
func (p *sqliteStmts) prepare(ctx context.Context, db *sql.DB) error {
	if p.ready.Load() != nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ready.Load() != nil || p.shut {
		return nil
	}
	m := make(map[string]*sql.Stmt, len(sqliteHotQueries))
	for _, q := range sqliteHotQueries {
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			for _, st := range m {
				_ = st.Close()
			}
			return err
		}
		m[q] = st
	}
	p.ready.Store(&m)
	return nil
}

// in wraps tx so that the prepared queries run as prepared statements.
func (p *sqliteStmts) in(tx *sql.Tx) sqliteTx {
	m := p.ready.Load()
	if m == nil {
		return tx
	}
	return &stmtTx{tx: tx, stmts: *m}
}

func (p *sqliteStmts) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.shut = true
	m := p.ready.Swap(nil)
	if m == nil {
		return nil
	}
	var errs []error
	for _, st := range *m {
		errs = append(errs, st.Close())
	}
	return errors.Join(errs...)
}

// sqliteTx is what the ledger's SQLite code runs its queries on: a *sql.Tx,
// or one wrapped by stmtTx.
type sqliteTx interface {
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

// stmtTx runs the store's prepared statements in tx (each bound to tx
// once, however many entries use it), any other query as given.
type stmtTx struct {
	tx    *sql.Tx
	stmts map[string]*sql.Stmt
	bound map[string]*sql.Stmt
}

func (t *stmtTx) stmt(ctx context.Context, q string) *sql.Stmt {
	if st := t.bound[q]; st != nil {
		return st
	}
	st := t.stmts[q]
	if st == nil {
		return nil
	}
	st = t.tx.StmtContext(ctx, st) // closed with the transaction
	if t.bound == nil {
		t.bound = make(map[string]*sql.Stmt, 4)
	}
	t.bound[q] = st
	return st
}

func (t *stmtTx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if st := t.stmt(ctx, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, q, args...)
}

func (t *stmtTx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := t.stmt(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, q, args...)
}

func (t *stmtTx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	if st := t.stmt(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, q, args...)
}
