package store_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/store"
)

func TestSharedDBSQLite(t *testing.T) {
	testSharedDB(t, "sqlite:"+filepath.Join(t.TempDir(), "db", "llmctl.db"))
}

func TestSharedDBPostgres(t *testing.T) {
	testSharedDB(t, testenv.PG(t).NewDatabase(t))
}

// testSharedDB: the store and the ledger on one DB, opened and migrated
// once, see each other's writes; closing either leaves the DB open for the
// other, and the DB's Close ends it. Money is exact to the micro-unit.
func testSharedDB(t *testing.T, dsn string) {
	ctx := context.Background()
	d, err := store.OpenDB(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	st := d.Store()
	tn, err := st.CreateTenant(ctx, "acme", billing.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	lg := ledger.OnDB(d)
	now := time.Now()
	if _, err := lg.Apply(ctx, []ledger.Entry{
		{Key: "pay:1", TenantID: tn.ID, Kind: ledger.KindCredit, Amount: 12_345_678, Time: now},
		{Key: "req:1", TenantID: tn.ID, Kind: ledger.KindDebit, Amount: -1, Model: "m", Time: now},
	}); err != nil {
		t.Fatal(err)
	}
	if err := lg.Reserve(ctx, ledger.HoldRequest{Key: "req:2", TenantID: tn.ID, Amount: 345_677, Time: now}); err != nil {
		t.Fatal(err)
	}
	a, err := lg.Account(ctx, tn.ID)
	if err != nil || a.Balance != 12_345_677 || a.Reserved != 345_677 || a.Available() != 12_000_000 {
		t.Fatalf("account %+v, %v", a, err)
	}

	// The parts' Close leaves the shared handle alone.
	if err := lg.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Store().GetTenant(ctx, "acme"); err != nil {
		t.Fatalf("store after the parts closed: %v", err)
	}
	if _, err := ledger.OnDB(d).Account(ctx, tn.ID); err != nil {
		t.Fatalf("ledger after the parts closed: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Ping(ctx); err == nil {
		t.Fatal("ping after Close succeeded")
	}

	// A second open finds the schema migrated: nothing to do, same data.
	d2, err := store.OpenDB(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if a, err := ledger.OnDB(d2).Account(ctx, tn.ID); err != nil || a.Balance != 12_345_677 {
		t.Fatalf("reopened: %+v %v", a, err)
	}
}

// TestPoolSettings: WithPool sizes and ages every pool the DB opens; the
// ledger's SQLite writer keeps its one connection and the PostgreSQL hold
// pool its asynchronous commit.
func TestPoolSettings(t *testing.T) {
	ctx := context.Background()
	p := store.Pool{MaxConns: 3, MaxConnLifetime: time.Minute, MaxConnIdleTime: 10 * time.Second}
	d, err := store.OpenDB(ctx, "sqlite:"+filepath.Join(t.TempDir(), "llmctl.db"), store.WithPool(p))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if n := d.StoreHandleForTest().Stats().MaxOpenConnections; n != 3 {
		t.Errorf("sqlite store handle: %d connections, want 3", n)
	}
	if n := d.SQLiteWriter().Stats().MaxOpenConnections; n != 1 {
		t.Errorf("sqlite ledger writer: %d connections, want 1", n)
	}

	pg, err := store.OpenDB(ctx, testenv.PG(t).NewDatabase(t), store.WithPool(p))
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	main, async := pg.Postgres()
	for _, c := range []struct {
		name string
		cfg  *pgxpool.Config
	}{{"main", main.Config()}, {"async", async.Config()}} {
		if c.cfg.MaxConns != 3 || c.cfg.MaxConnLifetime != time.Minute || c.cfg.MaxConnIdleTime != 10*time.Second {
			t.Errorf("%s pool: %d conns, lifetime %s, idle %s", c.name, c.cfg.MaxConns, c.cfg.MaxConnLifetime, c.cfg.MaxConnIdleTime)
		}
	}
	if v := async.Config().ConnConfig.RuntimeParams["synchronous_commit"]; v != "off" {
		t.Errorf("hold pool synchronous_commit %q", v)
	}
	if _, ok := main.Config().ConnConfig.RuntimeParams["synchronous_commit"]; ok {
		t.Error("main pool commits asynchronously")
	}
}
