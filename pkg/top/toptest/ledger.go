package toptest

import (
	"context"
	"testing"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/store"
)

// Ledger creates tenants in the billing database at dsn (a real SQLite file
// or PostgreSQL database), then applies the entries entries(ids) returns,
// ids mapping tenant name to id. It returns ids.
func Ledger(t testing.TB, dsn string, tenants []string, entries func(ids map[string]string) []ledger.Entry) map[string]string {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ids := map[string]string{}
	for _, n := range tenants {
		tn, err := st.CreateTenant(ctx, n, billing.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		ids[n] = tn.ID
	}
	lg, err := ledger.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer lg.Close()
	if es := entries(ids); len(es) > 0 {
		if _, err := lg.Apply(ctx, es); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}
