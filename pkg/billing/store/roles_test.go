package store

import (
	"context"
	"database/sql"
	"io/fs"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/llmctl/llmctl/pkg/billing"
)

// An existing store upgraded past 00200: the admin tenant's keys (the
// bootstrap key) become admin, every other key stays user. The 002xx
// migrations also go down and up again.
func TestMigrateRolesUpgrade(t *testing.T) {
	for _, rs := range realStores() {
		t.Run(rs.name, func(t *testing.T) {
			ctx := context.Background()
			dsn := rs.dsn(t)
			db, p := provider(t, dsn)
			if _, err := p.UpTo(ctx, 101); err != nil { // the schema before roles
				t.Fatal(err)
			}
			// Rows as the store wrote them before 00200 (no role column).
			for _, q := range []string{
				`INSERT INTO tenants (id, name, created_at) VALUES ('ten_a', 'admin', 1), ('ten_b', 'acme', 1)`,
				`INSERT INTO api_keys (id, tenant_id, secret_hash, created_at) VALUES
					('aaaaaaaaaaaa', 'ten_a', 'x', 1), ('bbbbbbbbbbbb', 'ten_b', 'x', 1)`,
			} {
				if _, err := db.ExecContext(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			st := openReal(t, dsn) // migrates the rest
			for id, want := range map[string]billing.Role{"aaaaaaaaaaaa": billing.RoleAdmin, "bbbbbbbbbbbb": billing.RoleUser} {
				k, err := st.GetKey(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if k.Role != want {
					t.Errorf("key %s of tenant %s: role %q after upgrade, want %q", id, k.TenantName, k.Role, want)
				}
			}
			// The 002xx migrations go down and up again cleanly.
			if _, err := p.DownTo(ctx, 101); err != nil {
				t.Fatalf("down to 101: %v", err)
			}
			if _, err := p.Up(ctx); err != nil {
				t.Fatalf("up again: %v", err)
			}
			if k, err := st.GetKey(ctx, "aaaaaaaaaaaa"); err != nil || k.Role != billing.RoleAdmin {
				t.Fatalf("after down and up: %+v, %v", k, err)
			}
		})
	}
}

// provider is a goose provider on dsn's database, for stepping migrations.
func provider(t *testing.T, dsn string) (*sql.DB, *goose.Provider) {
	t.Helper()
	driver, target, err := ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	var db *sql.DB
	dialect := goose.DialectSQLite3
	if driver == Postgres {
		cfg, err := pgx.ParseConfig(target)
		if err != nil {
			t.Fatal(err)
		}
		db, dialect = stdlib.OpenDB(*cfg), goose.DialectPostgres
	} else if db, err = OpenSQLite(target); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	sub, err := fs.Sub(migrations, "migrations/"+string(driver))
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(dialect, db, sub)
	if err != nil {
		t.Fatal(err)
	}
	return db, p
}
