package ledgertest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
)

// NewVoucher makes a voucher (created at the suite's time) and its code.
func NewVoucher(t *testing.T, amount ledger.Micros, tenant string, expires *time.Time) (ledger.Voucher, string) {
	t.Helper()
	code, hash, err := ledger.NewVoucherCode()
	if err != nil {
		t.Fatal(err)
	}
	id, err := ledger.NewVoucherID()
	if err != nil {
		t.Fatal(err)
	}
	return ledger.Voucher{ID: id, CodeHash: hash, Amount: amount, TenantID: tenant, Created: t0, Expires: expires}, code
}

func redeem(s ledger.Store, code, tenant string, at time.Time) (ledger.Redemption, error) {
	return s.RedeemVoucher(context.Background(), ledger.RedeemRequest{CodeHash: ledger.VoucherCodeHash(code), TenantID: tenant, Time: at})
}

// runVouchers checks vouchers: one redemption each, whatever the reason for
// a refusal the same error, and the credit to the micro-unit.
func runVouchers(t *testing.T, open func(t *testing.T) ledger.Store) {
	ctx := context.Background()

	t.Run("VoucherRedeemedOnce", func(t *testing.T) {
		s := open(t)
		exp := t0.Add(time.Hour)
		v, code := NewVoucher(t, 10*ledger.Unit+1, "", &exp)
		if err := s.CreateVouchers(ctx, []ledger.Voucher{v}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Apply(ctx, []ledger.Entry{credit("pay", "a", 5)}); err != nil {
			t.Fatal(err)
		}
		// Typed in lower case with spaces: the same code.
		r, err := redeem(s, " "+strings.ToLower(code)+" ", "a", t0.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if r.Voucher.ID != v.ID || r.Voucher.Amount != 10*ledger.Unit+1 || r.Account.Balance != 10*ledger.Unit+6 {
			t.Fatalf("redemption %+v, want %s credited onto 0.000005", r, v.Amount)
		}
		if r.Voucher.RedeemedBy != "a" || r.Voucher.Redeemed == nil || !r.Voucher.Redeemed.Equal(t0.Add(time.Minute)) {
			t.Fatalf("redeemed voucher %+v", r.Voucher)
		}
		for _, tenant := range []string{"a", "b"} {
			if _, err := redeem(s, code, tenant, t0.Add(2*time.Minute)); !errors.Is(err, ledger.ErrInvalidVoucher) {
				t.Fatalf("second redemption by %s: %v, want ErrInvalidVoucher", tenant, err)
			}
		}
		wantAccount(t, s, "a", 10*ledger.Unit+6, 0)
		wantAccount(t, s, "b", 0, 0)
		es, err := s.Entries(ctx, ledger.Filter{TenantID: "a"})
		if err != nil {
			t.Fatal(err)
		}
		if len(es) != 2 || es[1].Key != "voucher:"+v.ID || es[1].Kind != ledger.KindCredit || es[1].Amount != v.Amount {
			t.Fatalf("entries %+v", es)
		}
		wantClean(t, s)
	})

	t.Run("VoucherRefusals", func(t *testing.T) {
		s := open(t)
		past, future := t0.Add(-time.Second), t0.Add(time.Hour)
		expired, expiredCode := NewVoucher(t, ledger.Unit, "", &past)
		revoked, revokedCode := NewVoucher(t, ledger.Unit, "", nil)
		mine, mineCode := NewVoucher(t, 3*ledger.Unit, "b", &future)
		_, unknownCode := NewVoucher(t, ledger.Unit, "", nil)
		edge, edgeCode := NewVoucher(t, ledger.Unit, "", &t0) // expires at t0: gone at t0
		if err := s.CreateVouchers(ctx, []ledger.Voucher{expired, revoked, mine, edge}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RevokeVoucher(ctx, revoked.ID, t0); err != nil {
			t.Fatal(err)
		}
		for name, code := range map[string]string{"expired": expiredCode, "revoked": revokedCode, "another tenant's": mineCode,
			"unknown": unknownCode, "expiring now": edgeCode, "empty": "", "garbage": "LLMV-nope"} {
			if _, err := redeem(s, code, "a", t0); !errors.Is(err, ledger.ErrInvalidVoucher) || err.Error() != ledger.ErrInvalidVoucher.Error() {
				t.Errorf("%s voucher: %v, want exactly ErrInvalidVoucher", name, err)
			}
		}
		wantAccount(t, s, "a", 0, 0)
		// The tenant it is restricted to may redeem it.
		r, err := redeem(s, mineCode, "b", t0)
		if err != nil || r.Account.Balance != 3*ledger.Unit {
			t.Fatalf("restricted voucher by its tenant: %+v %v", r, err)
		}
		// Revoking: a used or revoked one is spent, an unknown id not found.
		if _, err := s.RevokeVoucher(ctx, mine.ID, t0); !errors.Is(err, ledger.ErrVoucherSpent) {
			t.Fatalf("revoke redeemed: %v", err)
		}
		if _, err := s.RevokeVoucher(ctx, revoked.ID, t0); !errors.Is(err, ledger.ErrVoucherSpent) {
			t.Fatalf("revoke twice: %v", err)
		}
		if _, err := s.RevokeVoucher(ctx, "vch_nope", t0); !errors.Is(err, ledger.ErrVoucherNotFound) {
			t.Fatalf("revoke unknown: %v", err)
		}
		vs, err := s.Vouchers(ctx, ledger.VoucherFilter{})
		if err != nil || len(vs) != 4 {
			t.Fatalf("vouchers %+v %v", vs, err)
		}
		states := map[string]string{}
		for _, v := range vs {
			states[v.ID] = v.State(t0)
		}
		want := map[string]string{expired.ID: "expired", revoked.ID: "revoked", mine.ID: "redeemed", edge.ID: "expired"}
		for id, st := range want {
			if states[id] != st {
				t.Errorf("voucher %s is %q, want %q", id, states[id], st)
			}
		}
		wantClean(t, s)
	})

	t.Run("VoucherCreateIsAllOrNone", func(t *testing.T) {
		s := open(t)
		a, _ := NewVoucher(t, ledger.Unit, "", nil)
		b, _ := NewVoucher(t, ledger.Unit, "", nil)
		b.CodeHash = a.CodeHash // a duplicate code hash fails the batch
		if err := s.CreateVouchers(ctx, []ledger.Voucher{a, b}); err == nil {
			t.Fatal("duplicate code hash accepted")
		}
		if vs, err := s.Vouchers(ctx, ledger.VoucherFilter{}); err != nil || len(vs) != 0 {
			t.Fatalf("after a failed batch: %d vouchers, %v", len(vs), err)
		}
		bad, _ := NewVoucher(t, 0, "", nil)
		if err := s.CreateVouchers(ctx, []ledger.Voucher{bad}); err == nil {
			t.Fatal("zero-amount voucher accepted")
		}
	})

	// 20 goroutines redeem the same 10 codes for different tenants: each
	// code is credited once, to one tenant, and the sum is exact.
	t.Run("ConcurrentRedemptionsOnce", func(t *testing.T) {
		s := open(t)
		const codes, clients = 10, 20
		var vs []ledger.Voucher
		var cs []string
		for i := range codes {
			v, c := NewVoucher(t, ledger.Micros(i+1)*ledger.Unit+7, "", nil)
			vs, cs = append(vs, v), append(cs, c)
		}
		if err := s.CreateVouchers(ctx, vs); err != nil {
			t.Fatal(err)
		}
		won, refused := RedeemConcurrently(t, []ledger.Store{s}, cs, clients, func(c int) string { return fmt.Sprint("t", c%4) })
		if won != codes || refused != codes*(clients-1) {
			t.Fatalf("%d redeemed, %d refused; want %d and %d", won, refused, codes, codes*(clients-1))
		}
		var want, got ledger.Micros
		for _, v := range vs {
			want += v.Amount
		}
		accts, err := s.Accounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range accts {
			got += a.Balance
		}
		if got != want {
			t.Fatalf("total balance %s, want %s", got, want)
		}
		wantClean(t, s)
	})
}

// RedeemConcurrently has clients goroutines, client c on stores[c%len] as
// tenant(c), each redeem every code (starting at a different one), and
// counts the redemptions that succeeded and those refused as invalid.
func RedeemConcurrently(t *testing.T, stores []ledger.Store, codes []string, clients int, tenant func(c int) string) (won, refused int) {
	var w, r atomic.Int64
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			s := stores[c%len(stores)]
			for i := range codes {
				_, err := redeem(s, codes[(i+c)%len(codes)], tenant(c), time.Now())
				switch {
				case err == nil:
					w.Add(1)
				case errors.Is(err, ledger.ErrInvalidVoucher):
					r.Add(1)
				default:
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	return int(w.Load()), int(r.Load())
}
