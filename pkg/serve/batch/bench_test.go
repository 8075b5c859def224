package batch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/serve/batch"
)

// BenchmarkBatchLines runs a batch of LLMCTL_BENCH_BATCH_LINES lines
// (default 10,000) through the worker, 4 lines at a time (serve's default),
// against the upstream double, on SQLite and PostgreSQL; and, in the same
// run as the baseline, the same lines as the same key through the
// gateway's RunLine directly, 4 at a time, with no worker, lease or line
// store. Both charge every line in the ledger. The ratio is what the
// worker's bookkeeping (the stored lines, grouped in commits: linegroup.go;
// the look for a cancel; the lease) costs in throughput.
func BenchmarkBatchLines(b *testing.B) {
	n := 10_000
	if v, err := strconv.Atoi(os.Getenv("LLMCTL_BENCH_BATCH_LINES")); err == nil && v > 0 {
		n = v
	}
	const concurrency = 4
	for _, store := range []struct {
		name string
		dsn  func(testing.TB) string
	}{{"SQLite", sqliteDSN}, {"PostgreSQL", pgDSN}} {
		b.Run(store.name, func(b *testing.B) {
			for range b.N {
				e := newEnv(b, store.dsn(b), batch.Limits{}, func(o *batch.Options) { o.Concurrency = concurrency })
				c := e.client(e.keyA)
				lines := make([]string, n)
				for i := range n {
					lines[i] = chatLine(fmt.Sprintf("c%05d", i), "double-model", "x tokens=8")
				}
				bt := create(b, c, upload(b, c, strings.Join(lines, "\n")).ID)

				start := time.Now()
				stop := e.startWorker()
				ctx := context.Background()
				for {
					cur, err := e.bs.Batch(ctx, e.tenantA, bt.ID)
					if err != nil {
						b.Fatal(err)
					}
					if cur.Status == batch.StatusCompleted {
						if cur.Completed != int64(n) {
							b.Fatalf("%d of %d lines completed", cur.Completed, n)
						}
						break
					}
					if cur.Status.Terminal() {
						b.Fatalf("batch %s", cur.Status)
					}
					time.Sleep(10 * time.Millisecond)
				}
				worker := time.Since(start)
				stop()

				cur, err := e.bs.Batch(ctx, e.tenantA, bt.ID)
				if err != nil {
					b.Fatal(err)
				}
				var p billing.Principal
				if err := json.Unmarshal([]byte(cur.Principal), &p); err != nil {
					b.Fatal(err)
				}
				body := []byte(`{"model":"double-model","max_tokens":20,"messages":[{"role":"user","content":"x tokens=8"}]}`)
				var next, failed atomic.Int64
				var wg sync.WaitGroup
				start = time.Now()
				for range concurrency {
					wg.Go(func() {
						for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
							if st, _ := e.gw.RunLine(ctx, p, "bench-direct", "/v1/chat/completions", body, fmt.Sprintf("direct-%d", i)); st != 200 {
								failed.Add(1)
							}
						}
					})
				}
				wg.Wait()
				direct := time.Since(start)
				if failed.Load() != 0 {
					b.Fatalf("%d direct lines failed", failed.Load())
				}
				if d := e.debits(b); len(d) != 2*n {
					b.Fatalf("%d debits for %d lines", len(d), 2*n)
				}
				wr, dr := float64(n)/worker.Seconds(), float64(n)/direct.Seconds()
				b.ReportMetric(wr, "worker-lines/s")
				b.ReportMetric(dr, "direct-lines/s")
				fmt.Printf("batch lines %s: %d lines, %d at a time: worker %s (%.0f lines/s), direct RunLine %s (%.0f lines/s), ratio %.2f\n",
					store.name, n, concurrency, worker.Round(time.Millisecond), wr, direct.Round(time.Millisecond), dr, wr/dr)
			}
		})
	}
}
