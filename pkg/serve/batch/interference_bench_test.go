package batch_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/llmctl/llmctl/pkg/serve"
	"github.com/llmctl/llmctl/pkg/serve/batch"
)

// BenchmarkBatchInterference: one backend of `slots` slots (the gateway's
// maxConcurrency) whose every answer takes `service` (the upstream
// double's delay), so its capacity alone is slots/service answers/s.
// Interactive requests arrive open-loop (one every 1/rate, not waiting for
// earlier answers) at 80 % of that capacity, through openai-go, for
// `window`; first alone, then, in the same run and gateway, with a large
// batch running (LLMCTL_BENCH_INTERFERENCE_LINES lines, default 1,000,
// more than can finish in the window, so it runs throughout). It reports
// the interactive p50/p99 with the batch against without, and the batch's
// share of the slot time the interactive requests left: lines finished in
// the window × service / (slots × window − interactive answers × service).
// Once per batch share (the cap on the slots batch lines may hold). On
// SQLite; it ignores b.N (`make bench`, -benchtime 1x).
func BenchmarkBatchInterference(b *testing.B) {
	const (
		slots   = 4
		service = 100 * time.Millisecond
		load    = 0.8
		window  = 15 * time.Second
	)
	lines := 1000
	if v, err := strconv.Atoi(os.Getenv("LLMCTL_BENCH_INTERFERENCE_LINES")); err == nil && v > 0 {
		lines = v
	}
	rate := load * slots / service.Seconds()
	for _, share := range []float64{0.5, 0.25} {
		b.Run(fmt.Sprintf("share=%.2f", share), func(b *testing.B) {
			e := newEnvGateway(b, sqliteDSN(b), batch.Limits{}, func(o *serve.Options) {
				o.Remotes[0].MaxConc = slots
				o.Queue.BatchShare = share
			}, func(o *batch.Options) { o.Concurrency = slots })
			hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
			c := openai.NewClient(option.WithBaseURL(e.srv.URL+"/v1/"), option.WithAPIKey(e.keyA), option.WithMaxRetries(0), option.WithHTTPClient(hc))
			prompt := fmt.Sprintf("x delay=%s tokens=1", service)
			interactive := func() (p50, p99 time.Duration, answered int) {
				params := openai.ChatCompletionNewParams{Model: "double-model", MaxTokens: openai.Int(20),
					Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)}}
				var (
					mu     sync.Mutex
					lat    []time.Duration
					failed int
					wg     sync.WaitGroup
				)
				interval := time.Duration(float64(time.Second) / rate)
				start := time.Now()
				for i := 0; ; i++ {
					at := start.Add(time.Duration(i) * interval)
					if at.Sub(start) >= window {
						break
					}
					time.Sleep(time.Until(at))
					wg.Go(func() {
						_, err := c.Chat.Completions.New(context.Background(), params)
						d := time.Since(at)
						mu.Lock()
						defer mu.Unlock()
						if err != nil {
							failed++
							return
						}
						lat = append(lat, d)
					})
				}
				wg.Wait()
				if failed > 0 {
					b.Fatalf("%d interactive requests failed", failed)
				}
				slices.Sort(lat)
				return lat[len(lat)/2], lat[len(lat)*99/100], len(lat)
			}
			interactive() // warm-up: connections, caches
			p50, p99, _ := interactive()

			var ls []string
			for i := range lines {
				ls = append(ls, chatLine(fmt.Sprintf("l%05d", i), "double-model", prompt))
			}
			bt := create(b, c, upload(b, c, strings.Join(ls, "\n")).ID)
			stop := e.startWorker()
			defer stop()
			ctx := context.Background()
			done := func() int64 {
				cur, err := e.bs.Batch(ctx, e.tenantA, bt.ID)
				if err != nil {
					b.Fatal(err)
				}
				if cur.Status.Terminal() || cur.Failed > 0 {
					b.Fatalf("batch %s, %d lines failed", cur.Status, cur.Failed)
				}
				return cur.Completed
			}
			for done() < 2*slots { // the batch is running
				time.Sleep(20 * time.Millisecond)
			}
			before := done()
			bp50, bp99, answered := interactive()
			after := done()
			if after >= int64(lines) {
				b.Fatalf("the batch of %d lines finished within the window; raise LLMCTL_BENCH_INTERFERENCE_LINES", lines)
			}
			batchBusy := float64(after-before) * service.Seconds()
			left := slots*window.Seconds() - float64(answered)*service.Seconds()
			used := batchBusy / left
			b.ReportMetric(float64(bp50)/float64(p50), "p50-ratio")
			b.ReportMetric(float64(bp99)/float64(p99), "p99-ratio")
			b.ReportMetric(used, "batch-share-of-left")
			fmt.Printf("batch interference (batchShare %.2f, %d slots, %s answers, interactive %.0f/s = %.0f%% of %.0f/s, %s windows): "+
				"interactive alone p50 %s p99 %s; with a %d-line batch p50 %s (×%.3f) p99 %s (×%.3f); batch ran %d lines in the window, "+
				"%.0f%% of the slot time interactive left (%.1f of %.1f slot-seconds)\n",
				share, slots, service, rate, load*100, slots/service.Seconds(), window, p50.Round(100*time.Microsecond), p99.Round(100*time.Microsecond),
				lines, bp50.Round(100*time.Microsecond), float64(bp50)/float64(p50), bp99.Round(100*time.Microsecond), float64(bp99)/float64(p99),
				after-before, used*100, batchBusy, left)
			if _, err := c.Batches.Cancel(ctx, bt.ID); err != nil {
				b.Fatal(err)
			}
		})
	}
}
