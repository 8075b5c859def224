package serve

import (
	"context"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/llmctl/llmctl/internal/upstreamdouble"
)

// BenchmarkQueueSaturation measures a saturated backend with the admission
// queue against the old behaviour (queue off: a full backend answers 503 at
// once), in the same run: 32 clients (openai-go with its default retries:
// 2, backing off from 0.5 s) send requests back to back for 3 s to one
// backend with maxConcurrency 4 whose every answer takes 10 ms (so at most
// 400 answers/s). It reports answers per second, requests that failed after
// the client's retries, and the answered requests' p50/p99 latency. It
// ignores b.N (`make bench`, -benchtime 1x).
func BenchmarkQueueSaturation(b *testing.B) {
	const (
		clients = 32
		slots   = 4
		runFor  = 3 * time.Second
	)
	type result struct {
		ok, failed int64
		p50, p99   time.Duration
	}
	run := func(qo QueueOptions) result {
		d, err := upstreamdouble.New(upstreamdouble.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer d.Close()
		bill := &exitBilling{}
		g, err := New(Options{Auth: exitAuth{}, Admitter: bill, Reserver: bill, Queue: qo,
			Remotes: []RemoteConfig{{Name: d.Name(), URL: d.URL(), MaxConc: slots}}})
		if err != nil {
			b.Fatal(err)
		}
		g.CheckBackends(b.Context())
		srv := httptest.NewServer(g)
		defer srv.Close()
		c := openai.NewClient(option.WithBaseURL(srv.URL+"/v1/"), option.WithAPIKey("k"))
		params := openai.ChatCompletionNewParams{Model: "double-model",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("delay=10ms tokens=1")}}
		var (
			ok, failed atomic.Int64
			mu         sync.Mutex
			lat        []time.Duration
			wg         sync.WaitGroup
		)
		ctx, cancel := context.WithTimeout(context.Background(), runFor)
		defer cancel()
		for range clients {
			wg.Go(func() {
				for ctx.Err() == nil {
					start := time.Now()
					_, err := c.Chat.Completions.New(context.Background(), params)
					if ctx.Err() != nil {
						return // ended after the measured window
					}
					if err != nil {
						failed.Add(1)
						continue
					}
					ok.Add(1)
					mu.Lock()
					lat = append(lat, time.Since(start))
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		slices.Sort(lat)
		r := result{ok: ok.Load(), failed: failed.Load()}
		if len(lat) > 0 {
			r.p50, r.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
		}
		return r
	}
	queued := run(QueueOptions{})
	off := run(QueueOptions{MaxWait: -1})
	secs := runFor.Seconds()
	b.ReportMetric(float64(queued.ok)/secs, "answers/s-queue")
	b.ReportMetric(float64(off.ok)/secs, "answers/s-503")
	b.ReportMetric(float64(queued.failed), "failed-queue")
	b.ReportMetric(float64(off.failed), "failed-503")
	b.Logf("saturated (%d clients, %d slots, 10 ms answers, ≤ %d/s): queue %.0f answers/s, %d failed, p50 %v p99 %v; "+
		"503 (queue off) %.0f answers/s, %d failed after retries, p50 %v p99 %v; queue/503 throughput ×%.2f",
		clients, slots, int(slots/0.010), float64(queued.ok)/secs, queued.failed, queued.p50.Round(time.Millisecond), queued.p99.Round(time.Millisecond),
		float64(off.ok)/secs, off.failed, off.p50.Round(time.Millisecond), off.p99.Round(time.Millisecond),
		float64(queued.ok)/max(float64(off.ok), 1))
}
