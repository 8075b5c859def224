package batch_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/pkg/serve/batch"
	"github.com/llmctl/llmctl/pkg/serve/batch/batchtest"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func openStore(t testing.TB, dsn string) batch.Store {
	t.Helper()
	s, err := batch.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func sqliteDSN(t testing.TB) string { return "sqlite:" + filepath.Join(t.TempDir(), "llmctl.db") }

func TestStoreSQLite(t *testing.T) {
	batchtest.Run(t, func(t *testing.T) batch.Store { return openStore(t, sqliteDSN(t)) })
}

func TestStorePostgres(t *testing.T) {
	batchtest.Run(t, func(t *testing.T) batch.Store { return openStore(t, pgDSN(t)) })
}

func pgDSN(t testing.TB) string { return testenv.PG(t).NewDatabase(t) }
