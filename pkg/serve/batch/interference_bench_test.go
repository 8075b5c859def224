package batch_test

import (
	"context"
	"fmt"
	"math/rand/v2"
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
// Interactive requests arrive open-loop as a Poisson process (seeded, the
// same arrival times in every window) at 80 % of that capacity, through
// openai-go, for `window` after a warm-up of 5 answer times that is not
// counted; first alone, then, in the same run and gateway, with a large
// batch started at the warm-up's start (LLMCTL_BENCH_INTERFERENCE_LINES
// lines, default 1,000, more than can finish in the window, so it runs
// throughout; LLMCTL_BENCH_INTERFERENCE_LINE_SPREAD varies their length;
// LLMCTL_BENCH_INTERFERENCE_WINDOW sets the window, and
// LLMCTL_BENCH_INTERFERENCE_BACKENDS the slot counts and answer times;
// LLMCTL_BENCH_INTERFERENCE_STORE=postgres runs it on PostgreSQL). It
// reports the interactive p50/p99 with the batch against without, their
// mean wait in the admission queue (the slots alone, without the CPU
// the box spends), and the batch's share of the slot time the interactive
// requests left: lines finished in the window × service / (slots × window
// − interactive answers × service). Once per slot count and batch policy
// (queue.batchShare, queue.batchHeadroom). On SQLite by default; it
// ignores b.N (`make bench`, -benchtime 1x). BenchmarkBatchPolicySim (pkg/serve) is
// the same question without the gateway, as an event simulation.
func BenchmarkBatchInterference(b *testing.B) {
	const load = 0.8
	lines, window := 1000, 15*time.Second
	if v, err := strconv.Atoi(os.Getenv("LLMCTL_BENCH_INTERFERENCE_LINES")); err == nil && v > 0 {
		lines = v
	}
	if v, err := time.ParseDuration(os.Getenv("LLMCTL_BENCH_INTERFERENCE_WINDOW")); err == nil && v > 0 {
		window = v
	}
	type policy struct {
		name     string
		share    float64
		headroom int
	}
	type backendShape struct {
		slots   int
		service time.Duration
	}
	// Long answers: the box's CPU time and jitter small beside them.
	backends := []backendShape{{4, 250 * time.Millisecond}, {16, 500 * time.Millisecond}}
	if v := os.Getenv("LLMCTL_BENCH_INTERFERENCE_BACKENDS"); v != "" { // e.g. "64:1s,16:500ms"
		backends = nil
		for f := range strings.SplitSeq(v, ",") {
			n, d, _ := strings.Cut(strings.TrimSpace(f), ":")
			slots, err1 := strconv.Atoi(n)
			service, err2 := time.ParseDuration(d)
			if err1 != nil || err2 != nil || slots <= 0 || service <= 0 {
				b.Fatalf("LLMCTL_BENCH_INTERFERENCE_BACKENDS: %q is not SLOTS:ANSWER-TIME (like 64:1s)", f)
			}
			backends = append(backends, backendShape{slots, service})
		}
	}
	for _, backend := range backends {
		slots, service := backend.slots, backend.service
		rate := load * float64(slots) / service.Seconds()
		// The interactive arrivals: Poisson, the same in every window.
		rng := rand.New(rand.NewPCG(24, uint64(slots)))
		var arrivals []time.Duration
		for t := time.Duration(rng.ExpFloat64() / rate * float64(time.Second)); t < window; t += time.Duration(rng.ExpFloat64() / rate * float64(time.Second)) {
			arrivals = append(arrivals, t)
		}
		for _, pol := range []policy{
			{"share 0.50, no headroom", 0.5, serve.BatchHeadroomNone}, // before batchHeadroom
			{"share 1, headroom auto", 1, serve.BatchHeadroomAuto},
			{"share 1, headroom 1", 1, 1}, // on 4 slots auto's h is 1: the same policy, a gauge of noise
			{"share 1, headroom 2", 1, 2},
		} {
			b.Run(fmt.Sprintf("slots=%d/%s", slots, strings.ReplaceAll(pol.name, " ", "")), func(b *testing.B) {
				dsn := sqliteDSN
				if os.Getenv("LLMCTL_BENCH_INTERFERENCE_STORE") == "postgres" {
					dsn = pgDSN
				}
				e := newEnvGateway(b, dsn(b), batch.Limits{}, func(o *serve.Options) {
					o.Remotes[0].MaxConc = slots
					o.Queue.BatchShare = pol.share
					o.Queue.BatchHeadroom = pol.headroom
				}, func(o *batch.Options) { o.Concurrency = slots })
				interferenceRun(b, e, slots, service, rate, window, arrivals, lines, pol.name)
			})
		}
	}
}

// interferenceRun is one sub-benchmark of BenchmarkBatchInterference.
func interferenceRun(b *testing.B, e *env, slots int, service time.Duration, rate float64, window time.Duration, arrivals []time.Duration, lines int, policy string) {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	c := openai.NewClient(option.WithBaseURL(e.srv.URL+"/v1/"), option.WithAPIKey(e.keyA), option.WithMaxRetries(0), option.WithHTTPClient(hc))
	prompt := fmt.Sprintf("x delay=%s tokens=1", service)
	// Each measurement runs the arrivals of a warm-up (those of the first
	// `warm`) and then of the window; only the window's are counted. The
	// batch starts with the warm-up, under interactive load: started on
	// an idle backend it would take every free slot at once, and with
	// answers of one length its lines would stay in step, freeing and
	// retaking the slots together (a transient of the benchmark, not of
	// the policy). atWindow and atEnd run when the window opens and ends.
	warm := 5 * service
	interactive := func(atStart, atWindow, atEnd func()) (p50, p99 time.Duration, answered int) {
		params := openai.ChatCompletionNewParams{Model: "double-model", MaxTokens: openai.Int(20),
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)}}
		var (
			mu     sync.Mutex
			lat    []time.Duration
			failed int
			wg     sync.WaitGroup
		)
		var schedule []time.Duration
		for _, off := range arrivals {
			if off < warm {
				schedule = append(schedule, off)
			}
		}
		nWarm := len(schedule)
		for _, off := range arrivals {
			schedule = append(schedule, warm+off)
		}
		start := time.Now()
		if atStart != nil {
			atStart()
		}
		for i, off := range schedule {
			at := start.Add(off)
			time.Sleep(time.Until(at))
			if i == nWarm && atWindow != nil {
				atWindow()
			}
			counted := i >= nWarm
			wg.Go(func() {
				_, err := c.Chat.Completions.New(context.Background(), params)
				d := time.Since(at)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failed++
					return
				}
				if counted {
					lat = append(lat, d)
				}
			})
		}
		time.Sleep(time.Until(start.Add(warm + window)))
		if atEnd != nil {
			atEnd()
		}
		wg.Wait()
		if failed > 0 {
			b.Fatalf("%d interactive requests failed", failed)
		}
		slices.Sort(lat)
		return lat[len(lat)/2], lat[len(lat)*99/100], len(lat)
	}
	var w0, aloneWaits, batchWaits queueWaits
	p50, p99, aloneAnswered := interactive(nil, func() { w0 = interactiveWaits(b, e) }, nil)
	aloneWaits = interactiveWaits(b, e).minus(w0)

	var ls []string
	// LLMCTL_BENCH_INTERFERENCE_LINE_SPREAD=f gives the batch's answers
	// lengths spread uniformly over service × [1−f, 1+f] (same mean), as
	// a real batch's vary; 0 (the default): all the same length.
	spread, _ := strconv.ParseFloat(os.Getenv("LLMCTL_BENCH_INTERFERENCE_LINE_SPREAD"), 64)
	spread = min(max(spread, 0), 1)
	lrng := rand.New(rand.NewPCG(24, uint64(lines)))
	for i := range lines {
		d := time.Duration(float64(service) * (1 + spread*(2*lrng.Float64()-1))).Round(time.Millisecond)
		ls = append(ls, chatLine(fmt.Sprintf("l%05d", i), "double-model", fmt.Sprintf("x delay=%s tokens=1", d)))
	}
	bt := create(b, c, upload(b, c, strings.Join(ls, "\n")).ID)
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
	var before, after int64
	stop := func() {}
	defer func() { stop() }()
	bp50, bp99, answered := interactive(func() { stop = e.startWorker() },
		func() { before, w0 = done(), interactiveWaits(b, e) },
		func() { after = done() })
	batchWaits = interactiveWaits(b, e).minus(w0)
	if before == 0 {
		b.Fatal("the batch had not started when the window opened")
	}
	if after >= int64(lines) {
		b.Fatalf("the batch of %d lines finished within the window; raise LLMCTL_BENCH_INTERFERENCE_LINES", lines)
	}
	batchBusy := float64(after-before) * service.Seconds()
	left := float64(slots)*window.Seconds() - float64(answered)*service.Seconds()
	used := batchBusy / left
	b.ReportMetric(float64(bp50)/float64(p50), "p50-ratio")
	b.ReportMetric(float64(bp99)/float64(p99), "p99-ratio")
	b.ReportMetric(used, "batch-share-of-left")
	b.ReportMetric(batchWaits.mean(answered)*1000, "queue-wait-ms")
	fmt.Printf("batch interference (%s, %d slots, %s answers, interactive %.0f/s Poisson = %.0f%% of %.0f/s, %s windows): "+
		"interactive alone p50 %s p99 %s; with a %d-line batch p50 %s (×%.3f) p99 %s (×%.3f); batch ran %d lines in the window, "+
		"%.0f%% of the slot time interactive left (%.1f of %.1f slot-seconds); in the admission queue interactive requests "+
		"waited %.1f ms on average alone, %.1f ms with the batch, and %.0f%% / %.0f%% of them waited 1 ms or more\n",
		policy, slots, service, rate, rate*service.Seconds()/float64(slots)*100, float64(slots)/service.Seconds(), window, p50.Round(100*time.Microsecond), p99.Round(100*time.Microsecond),
		lines, bp50.Round(100*time.Microsecond), float64(bp50)/float64(p50), bp99.Round(100*time.Microsecond), float64(bp99)/float64(p99),
		after-before, used*100, batchBusy, left, aloneWaits.mean(aloneAnswered)*1000, batchWaits.mean(answered)*1000,
		aloneWaits.waitedShare(aloneAnswered)*100, batchWaits.waitedShare(answered)*100)
	if _, err := c.Batches.Cancel(ctx, bt.ID); err != nil {
		b.Fatal(err)
	}
}

// queueWaits sums llmctl_queue_wait_seconds of the interactive tiers: the
// time requests spent waiting for a slot, apart from the CPU time the box
// spends on them (on a loaded box the latency holds both).
type queueWaits struct {
	sum          float64
	count, quick uint64 // quick: waited under 1 ms
}

func (w queueWaits) minus(o queueWaits) queueWaits {
	return queueWaits{sum: w.sum - o.sum, count: w.count - o.count, quick: w.quick - o.quick}
}

// mean and waitedShare are per request answered: one that found a free
// slot at once is not in the histogram.
func (w queueWaits) mean(answered int) float64 { return w.sum / float64(max(answered, 1)) }

func (w queueWaits) waitedShare(answered int) float64 {
	return float64(w.count-w.quick) / float64(max(answered, 1))
}

func interactiveWaits(b *testing.B, e *env) queueWaits {
	mfs, err := e.gw.Registry().Gather()
	if err != nil {
		b.Fatal(err)
	}
	var w queueWaits
	for _, mf := range mfs {
		if mf.GetName() != "llmctl_queue_wait_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			batchTier := false
			for _, lp := range m.GetLabel() {
				batchTier = batchTier || lp.GetName() == "priority" && lp.GetValue() == "batch"
			}
			if batchTier {
				continue
			}
			h := m.GetHistogram()
			w.sum += h.GetSampleSum()
			w.count += h.GetSampleCount()
			for _, bk := range h.GetBucket() {
				if bk.GetUpperBound() == 0.001 {
					w.quick += bk.GetCumulativeCount()
				}
			}
		}
	}
	return w
}
