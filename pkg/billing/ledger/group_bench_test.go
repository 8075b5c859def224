package ledger_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
)

// BenchmarkGroupCommit measures the journal's group commit: C goroutines
// each reserve and settle in a loop (PostgreSQL ledger, whose holds commit
// without an fsync, so the spool's is the one on the path), with GroupWait
// off (the baseline, same run: only what queues during an fsync shares it)
// and on (1 ms). Settle latency (the fsync wait), fsyncs per settlement and
// CPU per request are printed. It ignores b.N.
//
//	LLMCTL_TEST_REQUIRE_SERVICES=1 go test -run '^$' -bench GroupCommit -benchtime 1x ./pkg/billing/ledger
func BenchmarkGroupCommit(b *testing.B) {
	const perRound, rounds = 400, 4
	ctx := context.Background()
	s := open(b, pgDSN(b))
	defer s.Close()
	fund(b, s, "a", 1_000_000*ledger.Unit)
	type variant struct {
		name string
		wait time.Duration
		reg  *prometheus.Registry
		l    *ledger.Ledger
	}
	variants := []*variant{{name: "no wait (before)", wait: -1}, {name: "GroupWait 1ms", wait: time.Millisecond}}
	for _, v := range variants {
		v.reg = prometheus.NewRegistry()
		v.l = newLedger(b, s, b.TempDir(), func(c *ledger.Config) { c.GroupWait, c.Registerer = v.wait, v.reg })
		defer v.l.Close(ctx)
	}
	fmt.Printf("\ngroup commit: reserve+settle loops, %d settlements per variant and concurrency in %d interleaved rounds\n", perRound*rounds, rounds)
	fmt.Printf("%-12s %-18s %12s %12s %14s %12s\n", "concurrency", "variant", "settle p50", "settle p99", "fsyncs/settle", "CPU/request")
	n := 0
	for _, conc := range []int{1, 4, 16, 64} {
		lat := make([][]time.Duration, len(variants))
		cpu := make([]time.Duration, len(variants))
		groups0 := make([]uint64, len(variants))
		for i, v := range variants {
			groups0[i] = groupHistogram(b, v.reg).GetSampleCount()
		}
		for range rounds {
			for i, v := range variants {
				var mu sync.Mutex
				var wg sync.WaitGroup
				next := 0
				cpu0 := cpuTime()
				for range conc {
					wg.Go(func() {
						for {
							mu.Lock()
							if next >= perRound {
								mu.Unlock()
								return
							}
							next++
							n++
							id := n
							mu.Unlock()
							h, err := v.l.Reserve(ctx, req("a", fmt.Sprint("b", id), "m", 7, 5))
							if err != nil {
								b.Error(err)
								return
							}
							start := time.Now()
							h.Settle(ctx, groupUsage(id))
							d := time.Since(start)
							mu.Lock()
							lat[i] = append(lat[i], d)
							mu.Unlock()
						}
					})
				}
				wg.Wait()
				cpu[i] += cpuTime() - cpu0
			}
		}
		for i, v := range variants {
			l := lat[i]
			slices.Sort(l)
			groups := groupHistogram(b, v.reg).GetSampleCount() - groups0[i]
			fmt.Printf("%-12d %-18s %9.0f µs %9.0f µs %14.3f %9.0f µs\n", conc, v.name, us(l[len(l)/2]), us(l[len(l)*99/100]),
				float64(groups)/float64(len(l)), us(cpu[i]/time.Duration(len(l))))
		}
	}
	for _, v := range variants {
		drained(b, v.l)
	}
	clean(b, s)
}
