package limits

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llmctl/llmctl/internal/cputime"
	"github.com/llmctl/llmctl/pkg/billing"
)

// BenchmarkLimiterCost measures what the limiter adds to one request
// (Admit + Done with key and tenant limits on RPM, TPM and concurrency;
// on Redis, Done's settle rides in the next Admit's pipeline or the
// flusher's, so a serial caller pays one round trip a request),
// next to baselines measured in the same run: one bare Redis round trip
// (PING, the floor for any shared limiter) and an unlimited caller (the
// limiter's own bookkeeping with no store call). It runs a fixed number of
// requests whatever b.N is, so `make bench` (-benchtime 1x) gets real numbers.
//
//	go test -run '^$' -bench LimiterCost -benchtime 1x ./pkg/billing/limits
func BenchmarkLimiterCost(b *testing.B) {
	const n = 20000
	ctx := context.Background()
	c := redisClient(b)
	lim := Config{Window: time.Hour, Key: billing.Limits{RPM: 1e9, TPM: 1e9, MaxConcurrency: 1e6},
		Tenant: billing.Limits{RPM: 1e9, TPM: 1e9, MaxConcurrency: 1e6}}
	mem, err := NewMemory(lim)
	if err != nil {
		b.Fatal(err)
	}
	defer mem.Close()
	red, err := NewRedis(c, lim)
	if err != nil {
		b.Fatal(err)
	}
	defer red.Close()
	// The same limiter with a synchronous Done (two round trips a request):
	// the client without Pipeline() takes that path. Same-run baseline.
	redSync, err := NewRedis(struct{ redis.Scripter }{c}, lim)
	if err != nil {
		b.Fatal(err)
	}
	defer redSync.Close()
	none, err := NewMemory(Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer none.Close()

	request := func(l *Limiter) func(p billing.Principal) error {
		return func(p billing.Principal) error {
			tk, err := l.Admit(ctx, p, "m", 500)
			if err != nil {
				return err
			}
			tk.Done(ctx, billing.Usage{PromptTokens: 100, CompletionTokens: 200})
			return nil
		}
	}
	cases := []struct {
		name string
		op   func(p billing.Principal) error
	}{
		{"redis PING (baseline)", func(billing.Principal) error { return c.Ping(ctx).Err() }},
		{"unlimited caller (baseline)", request(none)},
		{"memory limiter", request(mem)},
		{"redis limiter, sync Done", request(redSync)},
		{"redis limiter", request(red)},
	}
	type result struct {
		serialP50, serialP99 time.Duration
		allocs, bytes        float64
		parallelRPS          float64
	}
	results := make([]result, len(cases))
	for i, cs := range cases {
		p := principal()
		for range 200 { // warm up: connections, script cache
			if err := cs.op(p); err != nil {
				b.Fatal(err)
			}
		}
		lat := make([]time.Duration, n)
		var ms0, ms1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms0)
		for j := range n {
			t0 := time.Now()
			if err := cs.op(p); err != nil {
				b.Fatal(err)
			}
			lat[j] = time.Since(t0)
		}
		runtime.ReadMemStats(&ms1)
		slices.Sort(lat)
		r := &results[i]
		r.serialP50, r.serialP99 = lat[n/2], lat[n*99/100]
		r.allocs = float64(ms1.Mallocs-ms0.Mallocs) / n
		r.bytes = float64(ms1.TotalAlloc-ms0.TotalAlloc) / n

		// Closed loop, 16 callers on distinct keys of one tenant.
		const workers = 16
		var wg sync.WaitGroup
		t0 := time.Now()
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				q := p
				q.KeyID = fmt.Sprintf("%s-%d", p.KeyID, w)
				for range n / workers {
					if err := cs.op(q); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		r.parallelRPS = float64(n/workers*workers) / time.Since(t0).Seconds()
	}
	ping := results[0]
	b.Logf("%d requests per case, GOMAXPROCS=%d", n, runtime.GOMAXPROCS(0))
	b.Logf("%-28s %10s %10s %10s %12s %14s %14s", "case", "p50", "p99", "allocs/op", "bytes/op", "16-way req/s", "p50 / PING")
	for i, cs := range cases {
		r := results[i]
		b.Logf("%-28s %10s %10s %10.1f %12.0f %14.0f %14.2f", cs.name, r.serialP50, r.serialP99, r.allocs, r.bytes,
			r.parallelRPS, float64(r.serialP50)/float64(ping.serialP50))
	}
	b.ReportMetric(float64(results[3].serialP50.Microseconds()), "redis-sync-done-p50-µs")
	b.ReportMetric(float64(results[4].serialP50.Microseconds()), "redis-p50-µs")
	b.ReportMetric(float64(results[2].serialP50.Nanoseconds()), "memory-p50-ns")
}

// BenchmarkAdmitDone is one request's Admit + Done (key and tenant limits
// on RPM, TPM and concurrency) as a plain b.N loop, for ns/op, B/op,
// allocs/op and the process's CPU per op under benchstat:
//
//	go test -run '^$' -bench AdmitDone -benchmem -count 6 ./pkg/billing/limits
func BenchmarkAdmitDone(b *testing.B) {
	ctx := context.Background()
	lim := Config{Window: time.Hour, Key: billing.Limits{RPM: 1e9, TPM: 1e9, MaxConcurrency: 1e6},
		Tenant: billing.Limits{RPM: 1e9, TPM: 1e9, MaxConcurrency: 1e6}}
	run := func(b *testing.B, l *Limiter) {
		p := principal()
		cpu0, n := cputime.Process(), 0
		for b.Loop() {
			n++
			tk, err := l.Admit(ctx, p, "m", 500)
			if err != nil {
				b.Fatal(err)
			}
			_ = tk.Header()
			tk.Done(ctx, billing.Usage{PromptTokens: 100, CompletionTokens: 200})
		}
		cputime.Report(b, cpu0, n)
	}
	b.Run("memory", func(b *testing.B) {
		l, err := NewMemory(lim)
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		b.ReportAllocs()
		run(b, l)
	})
	b.Run("redis", func(b *testing.B) {
		l, err := NewRedis(redisClient(b), lim)
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		b.ReportAllocs()
		run(b, l)
	})
}
