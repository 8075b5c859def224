package ledger_test

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/ledger/ledgertest"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// migrate applies the billing migrations to db (temporary until store.Migrate lands).
func migrate(t testing.TB, dialect goose.Dialect, db *sql.DB, dir string) {
	t.Helper()
	p, err := goose.NewProvider(dialect, db, os.DirFS(filepath.Join("..", "store", "migrations", dir)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Up(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func pgDSN(t testing.TB) string {
	t.Helper()
	dsn := testenv.PG(t).NewDatabase(t)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	migrate(t, goose.DialectPostgres, db, "postgres")
	return dsn
}

func openPG(t testing.TB) ledger.Store {
	t.Helper()
	s, err := ledger.OpenPostgres(context.Background(), pgDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sqliteDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func openSQLite(t testing.TB) ledger.Store {
	t.Helper()
	db := sqliteDB(t, filepath.Join(t.TempDir(), "ledger.db"))
	migrate(t, goose.DialectSQLite3, db, "sqlite")
	return ledger.NewSQLite(db)
}

func TestConformanceSQLite(t *testing.T) {
	dbs := map[ledger.Store]*sql.DB{}
	ledgertest.Run(t, ledgertest.Harness{
		Open: func(t *testing.T) ledger.Store {
			db := sqliteDB(t, filepath.Join(t.TempDir(), "ledger.db"))
			migrate(t, goose.DialectSQLite3, db, "sqlite")
			s := ledger.NewSQLite(db)
			dbs[s] = db
			return s
		},
		Exec: func(t *testing.T, s ledger.Store, q string) error {
			_, err := dbs[s].Exec(q)
			return err
		},
	})
}

func TestConformancePostgres(t *testing.T) {
	dsns := map[ledger.Store]string{}
	ledgertest.Run(t, ledgertest.Harness{
		Open: func(t *testing.T) ledger.Store {
			dsn := pgDSN(t)
			s, err := ledger.OpenPostgres(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			dsns[s] = dsn
			return s
		},
		Exec: func(t *testing.T, s ledger.Store, q string) error {
			conn, err := pgx.Connect(context.Background(), dsns[s])
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			_, err = conn.Exec(context.Background(), q)
			return err
		},
	})
}
