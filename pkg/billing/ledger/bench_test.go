package ledger_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
)

// BenchmarkSettledPerSecond measures settlements per second landing in
// PostgreSQL through the Ledger (fsync'd spool + batched writes), against a
// baseline measured in the same run: the same settlements written one
// transaction each, as a naive gateway would. Run with -benchtime 1x; the
// sizes are fixed so the numbers compare across runs.
func BenchmarkSettledPerSecond(b *testing.B) {
	const (
		tenants     = 50
		workers     = 64
		n           = 40000 // settlements through the ledger
		nBaseline   = 8000  // one transaction each: slow, so fewer
		nFullCycles = 20000 // reserve + settle, end to end
	)
	ctx := context.Background()
	for range b.N {
		s := open(b, pgDSN(b))
		for i := range tenants {
			fund(b, s, fmt.Sprint("t", i), 1000*ledger.Unit)
		}
		run := func(count int, f func(i int)) time.Duration {
			var next atomic.Int64
			var wg sync.WaitGroup
			start := time.Now()
			for range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := int(next.Add(1)) - 1
						if i >= count {
							return
						}
						f(i)
					}
				}()
			}
			wg.Wait()
			return time.Since(start)
		}

		// Baseline: one INSERT transaction per settlement.
		base := run(nBaseline, func(i int) {
			e := ledger.Entry{Key: fmt.Sprint("base-", i), TenantID: fmt.Sprint("t", i%tenants), Kind: ledger.KindDebit,
				Amount: -30, Model: "m", PromptTokens: 10, CompletionTokens: 10, Time: time.Now()}
			if _, err := s.Apply(ctx, []ledger.Entry{e}); err != nil {
				b.Error(err)
			}
		})
		baseRate := float64(nBaseline) / base.Seconds()

		// The ledger: holds reserved first (untimed), then settled by 64
		// goroutines; timed until the last entry is committed.
		l := newLedger(b, s, b.TempDir(), nil)
		holds := make([]billing.Hold, n)
		run(n, func(i int) {
			h, err := l.Reserve(ctx, req(fmt.Sprint("t", i%tenants), fmt.Sprint("s", i), "m", 10, 10))
			if err != nil {
				b.Error(err)
				return
			}
			holds[i] = h
		})
		start := time.Now()
		journaled := run(n, func(i int) {
			if holds[i] != nil { // a failed Reserve is reported above
				holds[i].Settle(ctx, billing.Usage{PromptTokens: 10, CompletionTokens: 10})
			}
		})
		depth := l.Depth()
		drained(b, l)
		settle := time.Since(start)
		settleRate := float64(n) / settle.Seconds()

		// End to end: reserve (a synchronous round trip) then settle,
		// timed until the last entry is committed.
		start = time.Now()
		run(nFullCycles, func(i int) {
			h, err := l.Reserve(ctx, req(fmt.Sprint("t", i%tenants), fmt.Sprint("f", i), "m", 10, 10))
			if err != nil {
				b.Error(err)
				return
			}
			h.Settle(ctx, billing.Usage{PromptTokens: 10, CompletionTokens: 10})
		})
		drained(b, l)
		full := time.Since(start)
		fullRate := float64(nFullCycles) / full.Seconds()
		if err := l.Close(ctx); err != nil {
			b.Fatal(err)
		}
		if r := clean(b, s); r.Entries != int64(tenants+nBaseline+n+nFullCycles) {
			b.Fatalf("%d entries, want %d", r.Entries, tenants+nBaseline+n+nFullCycles)
		}
		s.Close()

		b.ReportMetric(settleRate, "settled/s")
		b.ReportMetric(baseRate, "baseline/s")
		b.ReportMetric(fullRate, "reserve+settle/s")
		b.Logf("settle calls returned after %s with %d entries still to write", journaled.Round(time.Millisecond), depth)
		b.Logf("settle → PostgreSQL: %.0f/s (%d in %s); baseline one tx per entry: %.0f/s (%d in %s); ratio %.1fx; reserve+settle end to end: %.0f/s",
			settleRate, n, settle.Round(time.Millisecond), baseRate, nBaseline, base.Round(time.Millisecond), settleRate/baseRate, fullRate)
	}
}
