package ledger_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
)

// A charge records its end user and cached prompt tokens and is priced at
// cachedInput and perRequest, to the micro-unit, on both stores; the
// reservation includes perRequest and prices the whole prompt at input.
func TestChargeCachedTokensPerRequestEndUser(t *testing.T) {
	cached := ledger.Micros(250_000)
	prices := ledger.Prices{Models: map[string]ledger.Price{
		"m": {Input: 1_000_000, CachedInput: &cached, Output: 2_000_000, PerRequest: 3},
	}}
	for name, dsn := range map[string]func(testing.TB) string{"sqlite": sqliteDSN, "postgres": pgDSN} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := open(t, dsn(t))
			defer s.Close()
			l := newLedger(t, s, t.TempDir(), func(c *ledger.Config) { c.Prices = prices })
			defer l.Close(ctx)
			fund(t, s, "a", ledger.Unit)

			r := req("a", "r1", "m", 1001, 500)
			r.Principal.KeyID, r.EndUser = "key1", "user-42"
			h, err := l.Reserve(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			// 1001×1 + 500×2 = 2001 µ, + 3 per request.
			if got := account(t, s, "a"); got.Reserved != 2004 {
				t.Fatalf("reserved %d µ, want 2004", got.Reserved)
			}
			// 201 uncached×1 + 800 cached×0.25 + 10×2 = 201+200+20 = 421, + 3.
			h.Settle(ctx, billing.Usage{PromptTokens: 1001, CompletionTokens: 10, CachedPromptTokens: 800})
			// Nothing used: a release, no perRequest.
			r2 := req("a", "r2", "m", 1, 1)
			r2.EndUser = "user-43"
			h2, err := l.Reserve(ctx, r2)
			if err != nil {
				t.Fatal(err)
			}
			h2.Settle(ctx, billing.Usage{})
			// A cached count above the prompt is bounded to it: 3 cached × 0.25
			// = 0.75 → 1 µ (rounded up once), + 3.
			h3, err := l.Reserve(ctx, req("a", "r3", "m", 3, 0))
			if err != nil {
				t.Fatal(err)
			}
			h3.Settle(ctx, billing.Usage{PromptTokens: 3, CachedPromptTokens: 9})
			drained(t, l)
			if got := account(t, s, "a"); got.Balance != ledger.Unit-424-4 || got.Reserved != 0 {
				t.Fatalf("account %+v, want balance %d", got, ledger.Unit-424-4)
			}
			es, err := s.Entries(ctx, ledger.Filter{TenantID: "a"})
			if err != nil || len(es) != 4 {
				t.Fatalf("entries %+v %v", es, err)
			}
			if e := es[1]; e.Amount != -424 || e.EndUser != "user-42" || e.KeyID != "key1" || e.CachedPromptTokens != 800 || e.PromptTokens != 1001 {
				t.Fatalf("charge: %+v", e)
			}
			if e := es[2]; e.Kind != ledger.KindRelease || e.Amount != 0 || e.EndUser != "user-43" {
				t.Fatalf("release: %+v", e)
			}
			if e := es[3]; e.Amount != -4 || e.CachedPromptTokens != 3 {
				t.Fatalf("bounded cache: %+v", e)
			}
			clean(t, s)
		})
	}
}

// A refusal carries the numbers the gateway's 402 shows, and tells a tenant
// that was never credited from one that spent its credit.
func TestReserveRefusalNumbers(t *testing.T) {
	for name, dsn := range map[string]func(testing.TB) string{"sqlite": sqliteDSN, "postgres": pgDSN} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := open(t, dsn(t))
			defer s.Close()
			l := newLedger(t, s, t.TempDir(), func(c *ledger.Config) { c.Overdraft = 100 })
			defer l.Close(ctx)

			_, err := l.Reserve(ctx, req("new", "r", "m", 1000, 500))
			var qe *billing.QuotaError
			if !errors.As(err, &qe) || !errors.Is(err, billing.ErrInsufficientQuota) || !qe.New || qe.Cost != 2000 || qe.Available() != 100 {
				t.Fatalf("brand-new tenant: %#v", err)
			}
			fund(t, s, "a", 1999)
			h, err := l.Reserve(ctx, req("a", "r1", "m", 1000, 0)) // 1000 + 4096×2 = 9192 > 1999+100
			if !errors.As(err, &qe) || qe.New || qe.Balance != 1999 || qe.Reserved != 0 || qe.Overdraft != 100 || qe.Cost != 9192 {
				t.Fatalf("funded tenant: %#v %v", err, h)
			}
			h, err = l.Reserve(ctx, req("a", "r2", "m", 1000, 500))
			if err != nil {
				t.Fatal(err)
			}
			_, err = l.Reserve(ctx, req("a", "r3", "m", 100, 0))
			if !errors.As(err, &qe) || qe.Balance != 1999 || qe.Reserved != 2000 || qe.Available() != 99 || qe.Cost != 8292 {
				t.Fatalf("with a hold open: %#v", err)
			}
			if !strings.Contains(err.Error(), "insufficient quota") {
				t.Fatalf("message: %v", err)
			}
			h.Settle(ctx, billing.Usage{})
			drained(t, l)
			clean(t, s)
		})
	}
}

// A house tenant (the operator's own) is charged like any other but never
// refused for balance: its balance goes below zero by what it used.
func TestHouseTenantChargedNeverRefused(t *testing.T) {
	ctx := context.Background()
	s := open(t, sqliteDSN(t))
	defer s.Close()
	l := newLedger(t, s, t.TempDir(), func(c *ledger.Config) { c.HouseTenants = []string{"admin"} })
	defer l.Close(ctx)
	house := billing.ReserveRequest{Principal: billing.Principal{TenantID: "t-admin", TenantName: "admin"}, RequestID: "r", Model: "m",
		PromptTokens: 10, MaxTokens: math.MaxInt32}
	h, err := l.Reserve(ctx, house)
	if err != nil {
		t.Fatalf("house tenant refused: %v", err)
	}
	h.Settle(ctx, billing.Usage{PromptTokens: 10, CompletionTokens: 20}) // 10 + 40 µ
	other := house
	other.Principal = billing.Principal{TenantID: "t-acme", TenantName: "acme"}
	if _, err := l.Reserve(ctx, other); !errors.Is(err, billing.ErrInsufficientQuota) {
		t.Fatalf("another tenant: %v", err)
	}
	drained(t, l)
	if got := account(t, s, "t-admin"); got.Balance != -50 || got.Reserved != 0 {
		t.Fatalf("house account %+v", got)
	}
	clean(t, s)
}
