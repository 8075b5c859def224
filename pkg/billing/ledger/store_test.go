package ledger_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/ledger/ledgertest"
	"github.com/llmctl/llmctl/pkg/billing/store"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func open(t testing.TB, dsn string) ledger.Store {
	t.Helper()
	s, err := ledger.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func pgDSN(t testing.TB) string { return testenv.PG(t).NewDatabase(t) }

func sqliteDSN(t testing.TB) string { return "sqlite:" + filepath.Join(t.TempDir(), "llmctl.db") }

// exec runs raw SQL over a separate connection to dsn.
func execSQL(t testing.TB, dsn, q string) error {
	t.Helper()
	ctx := context.Background()
	driver, target, err := store.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if driver == store.Postgres {
		conn, err := pgx.Connect(ctx, target)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, q)
		return err
	}
	db, err := store.OpenSQLite(target)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, q)
	return err
}

func conformance(t *testing.T, newDSN func(testing.TB) string) {
	dsns := map[ledger.Store]string{}
	ledgertest.Run(t, ledgertest.Harness{
		Open: func(t *testing.T) ledger.Store {
			dsn := newDSN(t)
			s := open(t, dsn)
			dsns[s] = dsn
			return s
		},
		Exec: func(t *testing.T, s ledger.Store, q string) error { return execSQL(t, dsns[s], q) },
	})
}

func TestConformanceSQLite(t *testing.T)   { conformance(t, sqliteDSN) }
func TestConformancePostgres(t *testing.T) { conformance(t, pgDSN) }
