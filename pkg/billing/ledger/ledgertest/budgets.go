package ledgertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
)

// runBudgets is the budgets' part of the suite: refusals to the micro-unit,
// holds counted, key and tenant budgets, periods cut in a time zone and
// across a DST change, rolling windows, and exactness under concurrency.
func runBudgets(t *testing.T, open func(t *testing.T) ledger.Store) {
	ctx := context.Background()
	const u = ledger.Unit
	// A tenant with far more balance than any budget, so refusals are the
	// budget's.
	funded := func(t *testing.T) ledger.Store {
		s := open(t)
		if _, err := s.Apply(ctx, []ledger.Entry{credit("pay", "a", 1000*u), credit("pay-b", "b", 1000*u)}); err != nil {
			t.Fatal(err)
		}
		return s
	}
	set := func(t *testing.T, s ledger.Store, b ledger.Budget) ledger.Budget {
		t.Helper()
		got, err := s.SetBudget(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	charge := func(t *testing.T, s ledger.Store, key, tenant, keyID string, amount ledger.Micros, at time.Time) {
		t.Helper()
		e := debit(key, tenant, amount)
		e.KeyID, e.Time = keyID, at
		if _, err := s.Apply(ctx, []ledger.Entry{e}); err != nil {
			t.Fatal(err)
		}
	}
	reserve := func(s ledger.Store, key, keyID string, amount ledger.Micros, at time.Time) error {
		return s.Reserve(ctx, ledger.HoldRequest{Key: key, TenantID: "a", KeyID: keyID, Amount: amount, Time: at})
	}
	refused := func(t *testing.T, err error) *billing.BudgetError {
		t.Helper()
		var be *billing.BudgetError
		if !errors.As(err, &be) || !errors.Is(err, billing.ErrBudgetExceeded) || errors.Is(err, billing.ErrInsufficientQuota) {
			t.Fatalf("want a budget refusal, got %v", err)
		}
		return be
	}

	t.Run("BudgetRefusesAtTheMicroUnit", func(t *testing.T) {
		s := funded(t)
		b := set(t, s, ledger.Budget{TenantID: "a", Amount: 10 * u, Period: ledger.PeriodMonth})
		charge(t, s, "d1", "a", "k1", 4*u, t0)
		// Exactly up to the budget is allowed; the open hold then counts.
		if err := reserve(s, "h1", "k1", 6*u, t0); err != nil {
			t.Fatal(err)
		}
		be := refused(t, reserve(s, "h2", "k1", 1, t0))
		want := billing.BudgetError{TenantID: "a", BudgetID: b.ID, Period: "month (UTC)", Budget: int64(10 * u),
			Spent: int64(10 * u), Cost: 1, ResetAt: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)}
		if *be != want {
			t.Fatalf("refusal %+v, want %+v", *be, want)
		}
		// Nothing was reserved by the refusal; the other tenant is free.
		wantAccount(t, s, "a", 996*u, 6*u)
		if err := s.Reserve(ctx, ledger.HoldRequest{Key: "hb", TenantID: "b", Amount: 100 * u, Time: t0}); err != nil {
			t.Fatal(err)
		}
		// Settling the hold for less frees the difference, to the micro-unit.
		charge(t, s, "h1", "a", "k1", 5*u, t0)
		if err := reserve(s, "h3", "k1", u+1, t0); !errors.Is(err, billing.ErrBudgetExceeded) {
			t.Fatalf("one micro-unit over: want refusal, got %v", err)
		}
		if err := reserve(s, "h4", "k1", u, t0); err != nil {
			t.Fatal(err)
		}
		wantClean(t, s)
	})

	t.Run("BalanceIsReportedBeforeBudget", func(t *testing.T) {
		s := open(t)
		if _, err := s.Apply(ctx, []ledger.Entry{credit("pay", "a", u)}); err != nil {
			t.Fatal(err)
		}
		set(t, s, ledger.Budget{TenantID: "a", Amount: u, Period: ledger.PeriodDay})
		// Waiting for the reset cannot help a tenant without the balance.
		if err := reserve(s, "h1", "", 2*u, t0); !errors.Is(err, billing.ErrInsufficientQuota) || errors.Is(err, billing.ErrBudgetExceeded) {
			t.Fatalf("want ErrInsufficientQuota, got %v", err)
		}
		if err := s.Reserve(ctx, ledger.HoldRequest{Key: "new", TenantID: "new", Amount: 5, Overdraft: 10, Time: t0}); err != nil {
			t.Fatalf("overdraft for a new tenant still works: %v", err)
		}
	})

	t.Run("KeyAndTenantBudgets", func(t *testing.T) {
		s := funded(t)
		kb := set(t, s, ledger.Budget{TenantID: "a", KeyID: "k1", Amount: 5 * u, Period: ledger.PeriodDay})
		tb := set(t, s, ledger.Budget{TenantID: "a", Amount: 8 * u, Period: ledger.PeriodDay})
		if err := reserve(s, "h1", "k1", 5*u, t0); err != nil {
			t.Fatal(err)
		}
		if be := refused(t, reserve(s, "h2", "k1", 1, t0)); be.KeyID != "k1" || be.BudgetID != kb.ID || be.Spent != int64(5*u) {
			t.Fatalf("want k1's budget refusing, got %+v", be)
		}
		// Another key is bound by the tenant's budget only, which counts k1.
		if err := reserve(s, "h3", "k2", 3*u, t0); err != nil {
			t.Fatal(err)
		}
		if be := refused(t, reserve(s, "h4", "k2", 1, t0)); be.KeyID != "" || be.BudgetID != tb.ID || be.Spent != int64(8*u) {
			t.Fatalf("want the tenant's budget refusing, got %+v", be)
		}
		st, err := s.Budgets(ctx, "a", t0)
		if err != nil {
			t.Fatal(err)
		}
		if len(st) != 2 || st[0].ID != tb.ID || st[0].Spent != 8*u || st[1].ID != kb.ID || st[1].Spent != 5*u || st[1].Remaining() != 0 {
			t.Fatalf("budgets: %+v", st)
		}
		// Deleting the key's budget lifts it; the tenant's still binds.
		if n, err := s.DeleteBudgets(ctx, "a", "k1", kb.ID); err != nil || n != 1 {
			t.Fatalf("delete: %d %v", n, err)
		}
		if err := reserve(s, "h5", "k1", 1, t0); !errors.Is(err, billing.ErrBudgetExceeded) {
			t.Fatalf("tenant budget: want refusal, got %v", err)
		}
		if n, err := s.DeleteBudgets(ctx, "a", "", ""); err != nil || n != 1 {
			t.Fatalf("delete all: %d %v", n, err)
		}
		if err := reserve(s, "h6", "k1", 100*u, t0); err != nil {
			t.Fatal(err)
		}
		wantClean(t, s)
	})

	// Berlin's day of 29 March 2026 lasts 23 hours (CET → CEST at 02:00):
	// it starts at 23:00 UTC the day before and ends at 22:00 UTC.
	t.Run("DayResetsAtMidnightInItsZoneAcrossDST", func(t *testing.T) {
		s := funded(t)
		set(t, s, ledger.Budget{TenantID: "a", Amount: u, Period: ledger.PeriodDay, TZ: "Europe/Berlin"})
		midnight := time.Date(2026, 3, 28, 23, 0, 0, 0, time.UTC)
		charge(t, s, "d1", "a", "", u, midnight.Add(-time.Microsecond))
		be := refused(t, reserve(s, "h1", "", 1, midnight.Add(-time.Microsecond)))
		if !be.ResetAt.Equal(midnight) {
			t.Fatalf("resets %s, want %s", be.ResetAt, midnight)
		}
		if err := reserve(s, "h2", "", u, midnight); err != nil {
			t.Fatalf("new day: %v", err)
		}
		be = refused(t, reserve(s, "h3", "", 1, midnight.Add(22*time.Hour+59*time.Minute)))
		if want := time.Date(2026, 3, 29, 22, 0, 0, 0, time.UTC); !be.ResetAt.Equal(want) {
			t.Fatalf("the 23-hour day resets %s, want %s", be.ResetAt, want)
		}
	})

	// A request reserved just before midnight settles as a debit of the
	// new day, so its open hold counts in the new day from the start.
	t.Run("HoldFromThePreviousPeriodCounts", func(t *testing.T) {
		s := funded(t)
		set(t, s, ledger.Budget{TenantID: "a", Amount: u, Period: ledger.PeriodDay})
		midnight := time.Date(2026, 6, 2, 0, 0, 0, 0, time.UTC)
		if err := reserve(s, "late", "", u, midnight.Add(-time.Second)); err != nil {
			t.Fatal(err)
		}
		if be := refused(t, reserve(s, "h1", "", 1, midnight.Add(time.Second))); be.Spent != int64(u) {
			t.Fatalf("the open hold was not counted: %+v", be)
		}
		charge(t, s, "late", "a", "", u/4, midnight.Add(2*time.Second))
		if err := reserve(s, "h2", "", u*3/4, midnight.Add(3*time.Second)); err != nil {
			t.Fatal(err)
		}
		wantClean(t, s)
	})

	t.Run("OldEntriesOutsideThePeriodIgnored", func(t *testing.T) {
		s := funded(t)
		set(t, s, ledger.Budget{TenantID: "a", KeyID: "k1", Amount: u, Period: ledger.PeriodMonth})
		set(t, s, ledger.Budget{TenantID: "a", Amount: u, Period: ledger.PeriodWeek})
		at := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC) // a Monday: first of a week and of a month
		charge(t, s, "old", "a", "k1", 500*u, at.Add(-time.Microsecond))
		if err := reserve(s, "h1", "k1", u, at); err != nil {
			t.Fatal(err)
		}
		st, err := s.Budgets(ctx, "a", at)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range st {
			if b.Spent != u {
				t.Fatalf("%s budget counted %s, want the hold only", b.Period, b.Spent)
			}
		}
	})

	t.Run("RollingWindow", func(t *testing.T) {
		s := funded(t)
		set(t, s, ledger.Budget{TenantID: "a", Amount: 2 * u, Period: ledger.PeriodRolling, Duration: time.Hour})
		charge(t, s, "d1", "a", "", 2*u, t0)
		be := refused(t, reserve(s, "h1", "", 1, t0.Add(30*time.Minute)))
		if want := t0.Add(time.Hour); !be.ResetAt.Equal(want) {
			t.Fatalf("resets %s, want %s (the debit leaves the window)", be.ResetAt, want)
		}
		// [now-1h, now] still holds the debit at exactly one hour…
		refused(t, reserve(s, "h2", "", 1, t0.Add(time.Hour)))
		// …and not a micro-second later.
		if err := reserve(s, "h3", "", 2*u, t0.Add(time.Hour+time.Microsecond)); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("SetUpsertsByOwnerAndWindow", func(t *testing.T) {
		s := open(t)
		a := set(t, s, ledger.Budget{TenantID: "a", Amount: 5 * u, Period: ledger.PeriodMonth})
		b := set(t, s, ledger.Budget{TenantID: "a", Amount: 7 * u, Period: ledger.PeriodMonth, TZ: "UTC"})
		c := set(t, s, ledger.Budget{TenantID: "a", Amount: 9 * u, Period: ledger.PeriodMonth, TZ: "Europe/Berlin"})
		d := set(t, s, ledger.Budget{TenantID: "a", Amount: 9 * u, Period: ledger.PeriodRolling, Duration: 24 * time.Hour})
		if a.ID != b.ID || b.Amount != 7*u || c.ID == a.ID || d.ID == a.ID || d.TZ != "UTC" {
			t.Fatalf("upsert: %+v %+v %+v %+v", a, b, c, d)
		}
		st, err := s.Budgets(ctx, "a", t0)
		if err != nil {
			t.Fatal(err)
		}
		if len(st) != 3 || st[0].Amount != 7*u || st[2].Duration != 24*time.Hour {
			t.Fatalf("budgets: %+v", st)
		}
		if n, err := s.DeleteBudgets(ctx, "a", "k1", c.ID); err != nil || n != 0 {
			t.Fatalf("another owner's id deleted %d (%v)", n, err)
		}
		for _, bad := range []ledger.Budget{
			{TenantID: "a", Amount: 0, Period: ledger.PeriodDay},
			{TenantID: "a", Amount: 1, Period: "year"},
			{TenantID: "a", Amount: 1, Period: ledger.PeriodDay, TZ: "Mars/Olympus"},
			{TenantID: "a", Amount: 1, Period: ledger.PeriodDay, TZ: "Local"},
			{TenantID: "a", Amount: 1, Period: ledger.PeriodRolling},
			{TenantID: "a", Amount: 1, Period: ledger.PeriodRolling, Duration: time.Hour, TZ: "Europe/Berlin"},
			{TenantID: "a", Amount: 1, Period: ledger.PeriodDay, Duration: time.Hour},
		} {
			if _, err := s.SetBudget(ctx, bad); !errors.Is(err, ledger.ErrInvalidBudget) {
				t.Errorf("%+v: want ErrInvalidBudget, got %v", bad, err)
			}
		}
	})

	t.Run("ConcurrentReservationsNeverExceedBudget", func(t *testing.T) {
		s := funded(t)
		set(t, s, ledger.Budget{TenantID: "a", Amount: 100, Period: ledger.PeriodDay})
		set(t, s, ledger.Budget{TenantID: "a", KeyID: "k0", Amount: 30, Period: ledger.PeriodDay})
		var ok, over atomic.Int64
		var k0 atomic.Int64
		var wg sync.WaitGroup
		for i := range 60 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				key := fmt.Sprint("k", i%3)
				err := reserve(s, fmt.Sprint("h", i), key, 3, t0)
				switch {
				case err == nil:
					ok.Add(1)
					if key == "k0" {
						k0.Add(1)
					}
				case errors.Is(err, billing.ErrBudgetExceeded):
					over.Add(1)
				default:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		// 33 holds of 3 fill 99 of the tenant's 100; k0 gets at most 10.
		if ok.Load() != 33 || over.Load() != 27 || k0.Load() > 10 {
			t.Fatalf("%d granted (%d to k0), %d refused; want 33 (≤ 10) and 27", ok.Load(), k0.Load(), over.Load())
		}
		wantAccount(t, s, "a", 1000*u, 99)
		wantClean(t, s)
	})
	t.Run("BudgetThresholdAlertsOncePerShare", func(t *testing.T) {
		s := funded(t)
		o, ok := ledger.OutboxOf(s)
		if !ok {
			t.Fatalf("%T has no outbox", s)
		}
		b := set(t, s, ledger.Budget{TenantID: "a", Amount: 10 * u, Period: ledger.PeriodMonth})
		percents := func() map[float64]int {
			t.Helper()
			evs, err := o.Events(ctx, ledger.EventBudgetThreshold)
			if err != nil {
				t.Fatal(err)
			}
			out := map[float64]int{}
			for _, ev := range evs {
				var p map[string]any
				if err := json.Unmarshal(ev.Payload, &p); err != nil || p["budgetId"] != b.ID || ev.TenantID != "a" {
					t.Fatalf("event %+v (%v)", ev, err)
				}
				out[p["percent"].(float64)]++
			}
			return out
		}
		// 4.999999 spent: below half, no alert.
		if err := reserve(s, "t1", "k1", 5*u-1, t0); err != nil {
			t.Fatal(err)
		}
		if got := percents(); len(got) != 0 {
			t.Fatalf("alerts below 50 %%: %v", got)
		}
		// One micro-unit more reaches half: the 50 % alert, once.
		if err := reserve(s, "t2", "k1", 1, t0); err != nil {
			t.Fatal(err)
		}
		if err := reserve(s, "t3", "k1", 1, t0); err != nil {
			t.Fatal(err)
		}
		if got := percents(); len(got) != 1 || got[50] != 1 {
			t.Fatalf("at 50 %%: %v", got)
		}
		// One request crossing 80 % and reaching 100 %: both, once each.
		if err := reserve(s, "t4", "k1", 5*u-1, t0); err != nil {
			t.Fatal(err)
		}
		// A refusal re-sends nothing already sent: the 100 % id is the same.
		refused(t, reserve(s, "t5", "k1", 1, t0))
		if got := percents(); len(got) != 3 || got[50] != 1 || got[80] != 1 || got[100] != 1 {
			t.Fatalf("after 100 %%: %v", got)
		}
		// The next month alerts again.
		next := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
		if err := reserve(s, "t6", "k1", 5*u, next); err == nil {
			t.Fatal("the open holds of January count in February (they settle then): want a refusal")
		}
		if got := percents(); got[100] != 2 {
			t.Fatalf("a refusal in a new period alerts again: %v", got)
		}
	})
}
