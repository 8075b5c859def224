package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

// Pool sizes and ages the connections a process keeps to the billing
// database. It is the one place they are set: every pool DB opens (the
// store's, the ledger's) follows it. Zero fields keep the drivers' defaults.
type Pool struct {
	// MaxConns bounds each PostgreSQL pool and the SQLite reader handle
	// (pgx's default: the larger of 4 and the CPUs). The ledger's SQLite
	// writer always has one: SQLite has one writer at a time.
	MaxConns        int32         `yaml:"maxConns"`
	MaxConnLifetime time.Duration `yaml:"maxConnLifetime"` // a connection is replaced after this
	MaxConnIdleTime time.Duration `yaml:"maxConnIdleTime"` // an idle connection is closed after this
}

// Validate refuses negative settings, naming them as serve's dbPool: does.
func (p Pool) Validate() error {
	if p.MaxConns < 0 || p.MaxConnLifetime < 0 || p.MaxConnIdleTime < 0 {
		return errors.New("dbPool: maxConns, maxConnLifetime and maxConnIdleTime must not be negative (0: the driver's default)")
	}
	return nil
}

// WithPool sets the pools' sizes and lifetimes (OpenDB, Open).
func WithPool(p Pool) Option { return func(o *options) { o.pool = p } }

// DB is the billing database as one process uses it: migrated once when it
// is opened, then shared by the store (tenants, keys, audit) and the ledger
// (entries, holds, budgets, alerts, vouchers), so serve and the CLI open one
// set of connections instead of one per part. Close it once, after every
// part built on it is done.
type DB struct {
	driver Driver
	// PostgreSQL: pg carries everything but holds, which go on pgAsync
	// (synchronous_commit off: a hold lost in a crash only frees a
	// reservation early, and it sits on the request's hot path).
	pg, pgAsync *pgxpool.Pool
	// SQLite: the store's handle, and the ledger's single-connection one
	// whose IMMEDIATE transactions serialise its writes.
	sqlite, sqliteWriter *sql.DB
}

// OpenDB migrates the database at dsn (postgres://… or sqlite:PATH) and
// opens its connection pools. Connections are made as they are needed.
func OpenDB(ctx context.Context, dsn string, opts ...Option) (*DB, error) {
	driver, target, err := ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	if err := Migrate(ctx, dsn, opts...); err != nil {
		return nil, err
	}
	o := newOptions(opts)
	d := &DB{driver: driver}
	if driver == Postgres {
		cfg, err := pgxpool.ParseConfig(target)
		if err != nil {
			return nil, fmt.Errorf("parse postgres DSN: %w", err)
		}
		o.pool.applyPG(cfg)
		if d.pg, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
			return nil, fmt.Errorf("connect postgres: %w", err)
		}
		acfg := cfg.Copy()
		acfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
		if d.pgAsync, err = pgxpool.NewWithConfig(ctx, acfg); err != nil {
			d.pg.Close()
			return nil, fmt.Errorf("connect postgres: %w", err)
		}
		return d, nil
	}
	if d.sqlite, err = OpenSQLite(target, opts...); err != nil {
		return nil, err
	}
	o.pool.applySQL(d.sqlite)
	if d.sqliteWriter, err = OpenSQLite(target, opts...); err != nil {
		_ = d.sqlite.Close()
		return nil, err
	}
	o.pool.applySQL(d.sqliteWriter)
	d.sqliteWriter.SetMaxOpenConns(1)
	return d, nil
}

func (p Pool) applyPG(cfg *pgxpool.Config) {
	if p.MaxConns > 0 {
		cfg.MaxConns = p.MaxConns
	}
	if p.MaxConnLifetime > 0 {
		cfg.MaxConnLifetime = p.MaxConnLifetime
	}
	if p.MaxConnIdleTime > 0 {
		cfg.MaxConnIdleTime = p.MaxConnIdleTime
	}
}

func (p Pool) applySQL(db *sql.DB) {
	if p.MaxConns > 0 {
		db.SetMaxOpenConns(int(p.MaxConns))
	}
	if p.MaxConnLifetime > 0 {
		db.SetConnMaxLifetime(p.MaxConnLifetime)
	}
	if p.MaxConnIdleTime > 0 {
		db.SetConnMaxIdleTime(p.MaxConnIdleTime)
	}
}

// Driver is the database's kind.
func (d *DB) Driver() Driver { return d.driver }

// Postgres returns the pools the ledger writes through: main for entries
// and reads, async (synchronous_commit off) for holds; nil on SQLite.
func (d *DB) Postgres() (main, async *pgxpool.Pool) { return d.pg, d.pgAsync }

// SQLiteWriter is the ledger's single-connection handle; nil on PostgreSQL.
func (d *DB) SQLiteWriter() *sql.DB { return d.sqliteWriter }

// Ping checks that the database answers.
func (d *DB) Ping(ctx context.Context) error {
	if d.pg != nil {
		return d.pg.Ping(ctx)
	}
	return d.sqlite.PingContext(ctx)
}

// Store is the tenants-and-keys store on d. Its Close does nothing: d's
// owner closes d.
func (d *DB) Store() Store { return &sqlStore{c: sharedConn{d.conn()}, now: time.Now} }

func (d *DB) conn() conn {
	if d.pg != nil {
		return pgConn{d.pg}
	}
	return sqlConn{d.sqlite}
}

// Close closes every pool.
func (d *DB) Close() error {
	var errs []error
	if d.pg != nil {
		d.pg.Close()
		d.pgAsync.Close()
	}
	for _, db := range []*sql.DB{d.sqlite, d.sqliteWriter} {
		if db != nil {
			errs = append(errs, db.Close())
		}
	}
	return errors.Join(errs...)
}

// sharedConn is a conn on a DB someone else closes.
type sharedConn struct{ conn }

func (sharedConn) close() {}

// ownedConn is a conn that closes its whole DB (Open's store owns it).
type ownedConn struct {
	conn
	db *DB
}

func (c ownedConn) close() { _ = c.db.Close() }

// SQL is a database/sql handle on d's main connections, for the parts that
// speak database/sql (the batch store). On PostgreSQL it borrows the main
// pool (closing it leaves the pool open); on SQLite it is the store's
// handle. d's owner still closes d.
func (d *DB) SQL() *sql.DB {
	if d.pg != nil {
		return stdlib.OpenDBFromPool(d.pg)
	}
	return d.sqlite
}
