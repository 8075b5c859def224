package ledgersource

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
)

// BenchmarkDaySpend: what one ledger-pane refresh costs on a day of 100,000
// settled requests over 50 tenants in PostgreSQL. Baseline, same run: reading
// the day's entries and summing them in Go (what the pane did before the
// ledger had an aggregate).
func BenchmarkDaySpend(b *testing.B) {
	ctx := context.Background()
	dsn := testenv.PG(b).NewDatabase(b)
	lg, err := ledger.Open(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer lg.Close()
	now := time.Now().UTC()
	const n, tenants, batch = 100_000, 50, 1000
	for i := 0; i < n; i += batch {
		es := make([]ledger.Entry, 0, batch)
		for j := i; j < i+batch; j++ {
			es = append(es, ledger.Entry{
				Key: fmt.Sprintf("req:%d", j), TenantID: fmt.Sprintf("t%02d", j%tenants), Kind: ledger.KindDebit,
				Amount: -ledger.Micros(1 + j%97), Model: "m", Time: now.Add(-time.Duration(j%86_000) * time.Second),
			})
		}
		if _, err := lg.Apply(ctx, es); err != nil {
			b.Fatal(err)
		}
	}
	w := ledger.SpendWindow{Since: now.Add(-24 * time.Hour), Recent: now.Add(-time.Hour), Until: now}
	timeIt := func(f func() (int64, error)) (time.Duration, int64) {
		var best time.Duration
		var sum int64
		for r := 0; r < 5; r++ {
			start := time.Now()
			s, err := f()
			if err != nil {
				b.Fatal(err)
			}
			if d := time.Since(start); r == 0 || d < best {
				best = d
			}
			sum = s
		}
		return best, sum
	}
	for b.Loop() {
		inGo, goSum := timeIt(func() (int64, error) {
			es, err := lg.Entries(ctx, ledger.Filter{Since: w.Since})
			var s int64
			for _, e := range es {
				if !e.Time.After(now) && (e.Kind == ledger.KindDebit || e.Kind == ledger.KindRelease) {
					s -= int64(e.Amount)
				}
			}
			return s, err
		})
		inDB, dbSum := timeIt(func() (int64, error) {
			sp, err := lg.Spend(ctx, w)
			var s int64
			for _, x := range sp {
				s += int64(x.Amount)
			}
			return s, err
		})
		if goSum != dbSum {
			b.Fatalf("the aggregate disagrees with the entries: %d vs %d", dbSum, goSum)
		}
		b.Logf("day spend over %d entries, best of 5: entries summed in Go %v (baseline), SQL aggregate %v: %.1fx faster",
			n, inGo.Round(time.Microsecond), inDB.Round(time.Microsecond), float64(inGo)/float64(inDB))
	}
}
