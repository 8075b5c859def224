package ledger_test

import (
	"context"
	"testing"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/ledger/ledgertest"
)

// Several ledger stores (as several replicas have) on one PostgreSQL
// database redeem the same codes at once: each is credited exactly once.
func TestVoucherRedeemAcrossReplicasPostgres(t *testing.T) {
	ctx := context.Background()
	dsn := pgDSN(t)
	const replicas, clients, codes = 3, 12, 30
	stores := make([]ledger.Store, replicas)
	for i := range stores {
		stores[i] = open(t, dsn)
		t.Cleanup(func() { stores[i].Close() })
	}
	var vs []ledger.Voucher
	var cs []string
	var want ledger.Micros
	for i := range codes {
		v, code := ledgertest.NewVoucher(t, ledger.Micros(i)*ledger.Unit+123_457, "", nil)
		vs, cs, want = append(vs, v), append(cs, code), want+v.Amount
	}
	if err := stores[0].CreateVouchers(ctx, vs); err != nil {
		t.Fatal(err)
	}
	won, refused := ledgertest.RedeemConcurrently(t, stores, cs, clients, func(int) string { return "acme" })
	if won != codes || refused != codes*(clients-1) {
		t.Fatalf("%d redeemed, %d refused; want %d and %d", won, refused, codes, codes*(clients-1))
	}
	a, err := stores[1].Account(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if a.Balance != want {
		t.Fatalf("balance %s, want %s", a.Balance, want)
	}
	es, err := stores[2].Entries(ctx, ledger.Filter{TenantID: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range es {
		seen[e.Key] = true
	}
	for _, v := range vs {
		if !seen["voucher:"+v.ID] {
			t.Fatalf("no credit entry for %s", v.ID)
		}
	}
	if len(es) != codes {
		t.Fatalf("%d entries, want %d", len(es), codes)
	}
	if r, err := stores[0].Verify(ctx); err != nil || !r.OK() {
		t.Fatalf("verify: %+v %v", r, err)
	}
}
