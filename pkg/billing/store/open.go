package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

//go:embed migrations
var migrations embed.FS

// Open migrates dsn and returns a Store with its own DB, closed by the
// Store's Close: for a command that needs only the store. A process that
// also needs the ledger opens one DB (OpenDB) and shares it.
func Open(ctx context.Context, dsn string, opts ...Option) (Store, error) {
	d, err := OpenDB(ctx, dsn, opts...)
	if err != nil {
		return nil, err
	}
	return &sqlStore{c: ownedConn{conn: d.conn(), db: d}, now: time.Now}, nil
}

// OpenSQLite opens a SQLite file with the settings every llmctl writer
// shares: WAL so readers never block the writer, a busy timeout so
// concurrent writers wait instead of failing, and foreign keys on. The file
// and its directory are made private first (0600, 0700; see secureSQLite).
func OpenSQLite(path string, opts ...Option) (*sql.DB, error) {
	if err := secureSQLite(path, newOptions(opts).log); err != nil {
		return nil, err
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return db, nil
}

// Migrate applies every pending migration of the billing schema (store,
// ledger, limits) to dsn. It is idempotent and safe to run from several
// replicas at once (PostgreSQL: an advisory-lock session locker).
func Migrate(ctx context.Context, dsn string, opts ...Option) error {
	driver, target, err := ParseDSN(dsn)
	if err != nil {
		return err
	}
	var (
		db      *sql.DB
		dialect goose.Dialect
		gopts   []goose.ProviderOption
	)
	switch driver {
	case Postgres:
		cfg, err := pgx.ParseConfig(target)
		if err != nil {
			return fmt.Errorf("parse postgres DSN: %w", err)
		}
		db = stdlib.OpenDB(*cfg)
		dialect = goose.DialectPostgres
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return fmt.Errorf("migration lock: %w", err)
		}
		gopts = append(gopts, goose.WithSessionLocker(locker))
	default:
		if db, err = OpenSQLite(target, opts...); err != nil {
			return err
		}
		db.SetMaxOpenConns(1)
		dialect = goose.DialectSQLite3
	}
	defer db.Close()
	sub, err := fs.Sub(migrations, "migrations/"+string(driver))
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(dialect, db, sub, gopts...)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate %s database: %w", driver, err)
	}
	return nil
}
