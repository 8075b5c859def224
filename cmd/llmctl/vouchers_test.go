package main

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/store"
)

func TestVouchersCLISQLite(t *testing.T) {
	testVouchersCLI(t, "sqlite:"+filepath.Join(t.TempDir(), "llmctl.db"))
}

func TestVouchersCLIPostgres(t *testing.T) {
	testVouchersCLI(t, testenv.PG(t).NewDatabase(t))
}

// `llmctl vouchers` on --db: codes printed once (-o json: objects with a
// code), listed with their state and never their code, revoked, audited
// without codes; a redemption in the store credits to the micro-unit.
func testVouchersCLI(t *testing.T, dsn string) {
	ctx := context.Background()
	must := func(args ...string) (string, string) {
		t.Helper()
		out, errOut, err := run(t, append(args, "--db", dsn)...)
		if err != nil {
			t.Fatalf("llmctl %s: %v\n%s", strings.Join(args, " "), err, errOut)
		}
		return out, errOut
	}
	must("tenants", "create", "acme")
	out, errOut := must("vouchers", "create", "--amount", "10.000001", "--count", "3", "--expires", "2160h", "-o", "json")
	if !strings.Contains(errOut, "shown only now") {
		t.Fatalf("no warning that codes are shown once: %q", errOut)
	}
	var vs []struct {
		ID, Code, Amount, State string
		ExpiresAt               *time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal([]byte(out), &vs); err != nil || len(vs) != 3 {
		t.Fatalf("create -o json: %v\n%s", err, out)
	}
	for _, v := range vs {
		if !strings.HasPrefix(v.Code, "LLMV-") || v.Amount != "10.000001" || v.State != "active" || v.ExpiresAt == nil ||
			v.ExpiresAt.Sub(time.Now()) < 2159*time.Hour {
			t.Fatalf("voucher %+v", v)
		}
	}
	out, _ = must("vouchers", "create", "--amount", "5", "--tenant", "acme")
	if !strings.Contains(out, "LLMV-") || !strings.Contains(out, "acme") {
		t.Fatalf("create table:\n%s", out)
	}

	// Redeem one the way the gateway does.
	ls, err := ledger.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	acme, err := st.GetTenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	r, err := ls.RedeemVoucher(ctx, ledger.RedeemRequest{CodeHash: ledger.VoucherCodeHash(vs[0].Code), TenantID: acme.ID, Time: time.Now()})
	if err != nil || r.Account.Balance != 10_000_001 {
		t.Fatalf("redeem: %+v %v", r, err)
	}

	must("vouchers", "revoke", vs[1].ID)
	if _, _, err := run(t, "vouchers", "revoke", vs[0].ID, "--db", dsn); err == nil || !errors.Is(err, ledger.ErrVoucherSpent) {
		t.Fatalf("revoking a redeemed voucher: %v", err)
	}
	if _, _, err := run(t, "vouchers", "create", "--amount", "0", "--db", dsn); err == nil {
		t.Fatal("a zero voucher was created")
	}
	if _, _, err := run(t, "vouchers", "create", "--amount", "1", "--tenant", "nobody", "--db", dsn); err == nil {
		t.Fatal("a voucher for an unknown tenant was created")
	}

	out, _ = must("vouchers", "list", "-o", "json")
	states := map[string]string{}
	var listed []struct{ ID, Code, State, RedeemedBy string }
	if err := json.Unmarshal([]byte(out), &listed); err != nil || len(listed) != 4 {
		t.Fatalf("list -o json: %v\n%s", err, out)
	}
	for _, v := range listed {
		if v.Code != "" {
			t.Fatal("list shows a code")
		}
		states[v.ID] = v.State
	}
	if states[vs[0].ID] != "redeemed" || states[vs[1].ID] != "revoked" || states[vs[2].ID] != "active" {
		t.Fatalf("states %v", states)
	}
	out, _ = must("vouchers", "list")
	if !strings.Contains(out, "redeemed") || !strings.Contains(out, "acme") || strings.Contains(out, "LLMV-") {
		t.Fatalf("list table:\n%s", out)
	}
	audit, _ := must("audit", "-o", "json")
	for _, v := range vs {
		if strings.Contains(audit, v.Code) {
			t.Fatal("the audit log holds a code")
		}
	}
	if !strings.Contains(audit, "voucher.create") || !strings.Contains(audit, "voucher.revoke") {
		t.Fatalf("audit:\n%s", audit)
	}
}
