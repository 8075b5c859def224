package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// conn is the little the SQL store needs from a database, so one store
// implementation runs on a pgx pool and on database/sql + SQLite alike. Query
// text uses $N placeholders; the SQLite side rewrites them to ?N.
type conn interface {
	exec(ctx context.Context, q string, args ...any) (int64, error)
	queryRow(ctx context.Context, q string, args ...any) scanner
	query(ctx context.Context, q string, args ...any) (rows, error)
	ping(ctx context.Context) error
	close()
}

type scanner interface{ Scan(dest ...any) error }

type rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// pgConn runs on a pgx/v5 pool.
type pgConn struct{ pool *pgxpool.Pool }

func (c pgConn) exec(ctx context.Context, q string, args ...any) (int64, error) {
	tag, err := c.pool.Exec(ctx, q, args...)
	if err != nil {
		return 0, mapPGErr(err)
	}
	return tag.RowsAffected(), nil
}

func (c pgConn) queryRow(ctx context.Context, q string, args ...any) scanner {
	return errScanner{c.pool.QueryRow(ctx, q, args...)}
}

func (c pgConn) query(ctx context.Context, q string, args ...any) (rows, error) {
	r, err := c.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, mapPGErr(err)
	}
	return r, nil
}

func (c pgConn) ping(ctx context.Context) error { return c.pool.Ping(ctx) }
func (c pgConn) close()                         { c.pool.Close() }

func mapPGErr(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" { // unique_violation
		return fmt.Errorf("%w: %s", ErrConflict, pgErr.ConstraintName)
	}
	return err
}

// sqlConn runs on database/sql with the pure-Go SQLite driver.
type sqlConn struct{ db *sql.DB }

func sqliteQuery(q string) string { return strings.ReplaceAll(q, "$", "?") }

func (c sqlConn) exec(ctx context.Context, q string, args ...any) (int64, error) {
	res, err := c.db.ExecContext(ctx, sqliteQuery(q), args...)
	if err != nil {
		return 0, mapSQLiteErr(err)
	}
	return res.RowsAffected()
}

func (c sqlConn) queryRow(ctx context.Context, q string, args ...any) scanner {
	return errScanner{c.db.QueryRowContext(ctx, sqliteQuery(q), args...)}
}

func (c sqlConn) query(ctx context.Context, q string, args ...any) (rows, error) {
	r, err := c.db.QueryContext(ctx, sqliteQuery(q), args...)
	if err != nil {
		return nil, mapSQLiteErr(err)
	}
	return sqlRows{r}, nil
}

func (c sqlConn) ping(ctx context.Context) error { return c.db.PingContext(ctx) }
func (c sqlConn) close()                         { _ = c.db.Close() }

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { _ = r.Rows.Close() }

func mapSQLiteErr(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) && (se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY) {
		return fmt.Errorf("%w: %v", ErrConflict, se)
	}
	return err
}

// errScanner maps "no rows" from either driver to ErrNotFound.
type errScanner struct{ s scanner }

func (e errScanner) Scan(dest ...any) error {
	err := e.s.Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) || errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}
