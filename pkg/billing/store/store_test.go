package store_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/billing/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func TestSQLiteConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := store.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "db", "llmctl.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestPostgresConformance(t *testing.T) {
	pg := testenv.PG(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := store.Open(context.Background(), pg.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// Two stores on one database, as two gateway replicas have.
func TestSQLiteReplicasConformance(t *testing.T) {
	storetest.RunReplicas(t, func(t *testing.T) (store.Store, store.Store) {
		dsn := "sqlite:" + filepath.Join(t.TempDir(), "db", "llmctl.db")
		return openTwo(t, dsn)
	})
}

func TestPostgresReplicasConformance(t *testing.T) {
	pg := testenv.PG(t)
	storetest.RunReplicas(t, func(t *testing.T) (store.Store, store.Store) {
		return openTwo(t, pg.NewDatabase(t))
	})
}

func openTwo(t *testing.T, dsn string) (store.Store, store.Store) {
	var two [2]store.Store
	for i := range two {
		s, err := store.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		two[i] = s
	}
	return two[0], two[1]
}

// Several replicas starting at once must not fail their migrations.
func TestPostgresConcurrentMigrate(t *testing.T) {
	pg := testenv.PG(t)
	dsn := pg.NewDatabase(t)
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		go func() { errs <- store.Migrate(context.Background(), dsn) }()
	}
	for i := 0; i < 4; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestOpenBadDSN(t *testing.T) {
	for _, dsn := range []string{"", "mysql://x", "sqlite:", "sqlite:/tmp/a?b"} {
		if _, err := store.Open(context.Background(), dsn); err == nil {
			t.Errorf("Open(%q): want error", dsn)
		}
	}
}
