package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
)

func TestPeriodBounds(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	utc := time.UTC
	at := func(loc *time.Location, y int, m time.Month, d, h, min int) time.Time {
		return time.Date(y, m, d, h, min, 0, 0, loc)
	}
	for _, c := range []struct {
		name        string
		p           ledger.Period
		loc         *time.Location
		now         time.Time
		start, next time.Time
		hours       float64 // length of the period
	}{
		{"day", ledger.PeriodDay, utc, at(utc, 2026, 5, 7, 13, 0), at(utc, 2026, 5, 7, 0, 0), at(utc, 2026, 5, 8, 0, 0), 24},
		{"day starts inclusive", ledger.PeriodDay, utc, at(utc, 2026, 5, 7, 0, 0), at(utc, 2026, 5, 7, 0, 0), at(utc, 2026, 5, 8, 0, 0), 24},
		{"Jan 31 → Feb", ledger.PeriodMonth, utc, at(utc, 2026, 1, 31, 23, 59), at(utc, 2026, 1, 1, 0, 0), at(utc, 2026, 2, 1, 0, 0), 31 * 24},
		{"Feb 28 of a common year", ledger.PeriodMonth, utc, at(utc, 2026, 2, 28, 12, 0), at(utc, 2026, 2, 1, 0, 0), at(utc, 2026, 3, 1, 0, 0), 28 * 24},
		{"leap day", ledger.PeriodMonth, utc, at(utc, 2028, 2, 29, 12, 0), at(utc, 2028, 2, 1, 0, 0), at(utc, 2028, 3, 1, 0, 0), 29 * 24},
		{"leap day's day", ledger.PeriodDay, utc, at(utc, 2028, 2, 29, 23, 59), at(utc, 2028, 2, 29, 0, 0), at(utc, 2028, 3, 1, 0, 0), 24},
		{"December → January", ledger.PeriodMonth, utc, at(utc, 2026, 12, 31, 23, 0), at(utc, 2026, 12, 1, 0, 0), at(utc, 2027, 1, 1, 0, 0), 31 * 24},
		// Spring forward: 29 March 2026 in Berlin has 23 hours.
		{"Berlin 23h day", ledger.PeriodDay, berlin, at(berlin, 2026, 3, 29, 12, 0), at(berlin, 2026, 3, 29, 0, 0), at(berlin, 2026, 3, 30, 0, 0), 23},
		// Fall back: 25 October 2026 has 25 hours.
		{"Berlin 25h day", ledger.PeriodDay, berlin, at(berlin, 2026, 10, 25, 2, 30), at(berlin, 2026, 10, 25, 0, 0), at(berlin, 2026, 10, 26, 0, 0), 25},
		{"Berlin month with the spring change", ledger.PeriodMonth, berlin, at(berlin, 2026, 3, 31, 23, 0), at(berlin, 2026, 3, 1, 0, 0), at(berlin, 2026, 4, 1, 0, 0), 31*24 - 1},
		// The instant is cut in the zone: 23:30 UTC on 31 Jan is February in Berlin.
		{"zone decides the month", ledger.PeriodMonth, berlin, at(utc, 2026, 1, 31, 23, 30), at(berlin, 2026, 2, 1, 0, 0), at(berlin, 2026, 3, 1, 0, 0), 28 * 24},
		// ISO weeks start on Monday; 1 January 2027 is a Friday.
		{"week across year end", ledger.PeriodWeek, utc, at(utc, 2027, 1, 1, 9, 0), at(utc, 2026, 12, 28, 0, 0), at(utc, 2027, 1, 4, 0, 0), 7 * 24},
		{"week on its Sunday", ledger.PeriodWeek, utc, at(utc, 2027, 1, 3, 23, 59), at(utc, 2026, 12, 28, 0, 0), at(utc, 2027, 1, 4, 0, 0), 7 * 24},
		{"week on its Monday", ledger.PeriodWeek, utc, at(utc, 2027, 1, 4, 0, 0), at(utc, 2027, 1, 4, 0, 0), at(utc, 2027, 1, 11, 0, 0), 7 * 24},
		{"Berlin week with the fall change", ledger.PeriodWeek, berlin, at(berlin, 2026, 10, 25, 12, 0), at(berlin, 2026, 10, 19, 0, 0), at(berlin, 2026, 10, 26, 0, 0), 7*24 + 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			start, next := ledger.PeriodBounds(c.p, c.loc, 0, c.now)
			if !start.Equal(c.start) || !next.Equal(c.next) {
				t.Fatalf("[%s, %s), want [%s, %s)", start, next, c.start, c.next)
			}
			if got := next.Sub(start).Hours(); got != c.hours {
				t.Fatalf("period lasts %vh, want %vh", got, c.hours)
			}
		})
	}
	now := at(utc, 2026, 3, 29, 1, 30)
	start, next := ledger.PeriodBounds(ledger.PeriodRolling, utc, 90*time.Minute, now)
	if !start.Equal(now.Add(-90*time.Minute)) || !next.Equal(now.Add(90*time.Minute)) {
		t.Fatalf("rolling: [%s, %s)", start, next)
	}
}

// TestBudgetExactAcrossReplicas runs three Ledgers, each with its own
// connection pools and spool (three gateways), on one PostgreSQL, reserving
// and settling concurrently under a tenant budget and a key budget: the
// settled spend never passes either by a single micro-unit.
func TestBudgetExactAcrossReplicas(t *testing.T) {
	dsn := pgDSN(t)
	ctx := context.Background()
	const (
		replicas = 3
		workers  = 8
		tries    = 40
		budget   = 5000 // µ; a request holds at most 10 + 2·20 = 50
		keyCap   = 1500
	)
	admin := open(t, dsn)
	defer admin.Close()
	fund(t, admin, "t", 1000*ledger.Unit)
	for _, b := range []ledger.Budget{
		{TenantID: "t", Amount: budget, Period: ledger.PeriodRolling, Duration: 24 * time.Hour},
		{TenantID: "t", KeyID: "k0", Amount: keyCap, Period: ledger.PeriodRolling, Duration: 24 * time.Hour},
	} {
		if _, err := admin.SetBudget(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	var refused atomic.Int64
	var wg sync.WaitGroup
	for r := range replicas {
		s := open(t, dsn)
		l := newLedger(t, s, t.TempDir(), nil)
		var rwg sync.WaitGroup
		for w := range workers {
			rwg.Add(1)
			go func() {
				defer rwg.Done()
				for i := range tries {
					rq := req("t", fmt.Sprintf("r%d-w%d-%d", r, w, i), "m", 10, 20)
					rq.Principal.KeyID = fmt.Sprint("k", w%3)
					h, err := l.Reserve(ctx, rq)
					if errors.Is(err, billing.ErrBudgetExceeded) {
						refused.Add(1)
						continue
					}
					if err != nil {
						t.Error(err)
						return
					}
					time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
					h.Settle(ctx, billing.Usage{PromptTokens: 10, CompletionTokens: rand.Int64N(21)})
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rwg.Wait()
			drained(t, l)
			if err := l.Close(ctx); err != nil {
				t.Error(err)
			}
			s.Close()
		}()
	}
	wg.Wait()
	st, err := admin.Budgets(ctx, "t", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 2 {
		t.Fatalf("budgets: %+v", st)
	}
	for _, b := range st {
		t.Logf("%s budget %d µ: spent %d µ", map[bool]string{true: "key " + b.KeyID, false: "tenant"}[b.KeyID != ""], b.Amount, b.Spent)
		if b.Spent > b.Amount {
			t.Errorf("budget %s exceeded: spent %d µ of %d µ", b.ID, b.Spent, b.Amount)
		}
	}
	if refused.Load() == 0 {
		t.Fatal("no request was refused: the load never reached the budget")
	}
	if st[0].Spent < budget-50*replicas*workers {
		t.Errorf("spent %d µ: the budget was not used up to the open holds' worth", st[0].Spent)
	}
	clean(t, admin)
}

// BenchmarkReserveBudget measures Store.Reserve on PostgreSQL for a tenant
// without a budget (the one-statement path) and for one with a monthly
// tenant budget in Europe/Berlin and a rolling key budget (the locking path
// that sums both periods), in the same run, each tenant with the same 2000
// debits in the period: the median of serial reservations, then the mean
// under 8 concurrent workers of one tenant (each reservation then also
// waits for the others' and the releases' turn on the tenant's row).
// Run: go test ./pkg/billing/ledger -run '^$' -bench BenchmarkReserveBudget -benchtime 1x
func BenchmarkReserveBudget(b *testing.B) {
	const (
		serial     = 1000
		concurrent = 4000
		workers    = 8
		debits     = 2000
	)
	ctx := context.Background()
	for range b.N {
		s := open(b, pgDSN(b))
		now := time.Now()
		for _, tenant := range []string{"free", "capped"} {
			fund(b, s, tenant, 1000*ledger.Unit)
			es := make([]ledger.Entry, debits)
			for i := range es {
				es[i] = ledger.Entry{Key: fmt.Sprint(tenant, "-d", i), TenantID: tenant, KeyID: "k-" + tenant, Kind: ledger.KindDebit,
					Amount: -1, Model: "m", Time: now.Add(-time.Duration(i) * time.Second)}
			}
			if _, err := s.Apply(ctx, es); err != nil {
				b.Fatal(err)
			}
		}
		for _, bu := range []ledger.Budget{
			{TenantID: "capped", Amount: 900 * ledger.Unit, Period: ledger.PeriodMonth, TZ: "Europe/Berlin"},
			{TenantID: "capped", KeyID: "k-capped", Amount: 900 * ledger.Unit, Period: ledger.PeriodRolling, Duration: 24 * time.Hour},
		} {
			if _, err := s.SetBudget(ctx, bu); err != nil {
				b.Fatal(err)
			}
		}
		// Each worker reserves and releases; only the Reserve is timed.
		var seq atomic.Int64
		run := func(tenant string, n, workers int) []time.Duration {
			var next atomic.Int64
			var mu sync.Mutex
			var took []time.Duration
			var wg sync.WaitGroup
			for range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(n) {
						key := fmt.Sprint(tenant, "-h", seq.Add(1))
						start := time.Now()
						err := s.Reserve(ctx, ledger.HoldRequest{Key: key, TenantID: tenant, KeyID: "k-" + tenant, Amount: 10, Time: time.Now()})
						d := time.Since(start)
						if err != nil {
							b.Error(err)
							return
						}
						mu.Lock()
						took = append(took, d)
						mu.Unlock()
						rel := ledger.Entry{Key: key, TenantID: tenant, Kind: ledger.KindRelease, Time: time.Now()}
						if _, err := s.Apply(ctx, []ledger.Entry{rel}); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			return took
		}
		median := func(ds []time.Duration) time.Duration {
			slices.Sort(ds)
			return ds[len(ds)/2]
		}
		mean := func(ds []time.Duration) time.Duration {
			var sum time.Duration
			for _, d := range ds {
				sum += d
			}
			return sum / time.Duration(len(ds))
		}
		freeP50, cappedP50 := median(run("free", serial, 1)), median(run("capped", serial, 1))
		freeMean, cappedMean := mean(run("free", concurrent, workers)), mean(run("capped", concurrent, workers))
		b.ReportMetric(float64(freeP50.Microseconds()), "µs-p50-serial-no-budget")
		b.ReportMetric(float64(cappedP50.Microseconds()), "µs-p50-serial-budget")
		b.ReportMetric(float64(cappedP50)/float64(freeP50), "ratio-serial")
		b.ReportMetric(float64(freeMean.Microseconds()), "µs-mean-8way-no-budget")
		b.ReportMetric(float64(cappedMean.Microseconds()), "µs-mean-8way-budget")
		b.ReportMetric(float64(cappedMean)/float64(freeMean), "ratio-8way")
		s.Close()
	}
}
