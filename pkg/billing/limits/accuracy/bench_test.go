package accuracy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/internal/upstreamdouble"
	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/limits"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/serve"
)

// BenchmarkGatewayWithLimiter measures the gateway's added latency with the
// rate limiter on, against the same backend double called directly, all in
// the same run on loopback at a fixed 500 requests/s: direct, gateway
// without a limiter, with the in-process limiter, with the Redis limiter.
// LLMCTL_BENCH_RPS changes the rate (a small shared VM cannot sustain 500).
// The admin key gets key and tenant limits on RPM, TPM and concurrency
// (high enough never to refuse), so every request takes the full path.
//
//	go test -run '^$' -bench GatewayWithLimiter -benchtime 1x ./pkg/billing/limits/accuracy
func BenchmarkGatewayWithLimiter(b *testing.B) {
	rate, phase := 500, 3*time.Second
	if v, err := strconv.Atoi(os.Getenv("LLMCTL_BENCH_RPS")); err == nil && v > 0 {
		rate = v
	}
	ctx := context.Background()
	d, err := upstreamdouble.New(upstreamdouble.Options{Name: "double"})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	key, err := serve.EnsureAdmin(ctx, st, "")
	if err != nil || key == "" {
		b.Fatalf("bootstrap key: %v", err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RD(b).Addr()})
	defer rdb.Close()
	high := billing.Limits{RPM: 1e9, TPM: 1e9, MaxConcurrency: 1e6}
	cfg := limits.Config{Key: high, Tenant: high}
	mem, err := limits.NewMemory(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer mem.Close()
	red, err := limits.NewRedis(rdb, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer red.Close()
	// The same limiter with Done settling synchronously, one round trip on
	// the finishing request (how it worked before settlements were queued):
	// a client that cannot pipeline gets this path.
	redSync, err := limits.NewRedis(struct{ redis.Scripter }{rdb}, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer redSync.Close()

	gateway := func(adm serve.Admitter) string {
		gw, err := serve.New(serve.Options{
			Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
			Auth:     store.NewAuthenticator(st, 0),
			Admitter: adm,
			Remotes:  []serve.RemoteConfig{{Name: "double", URL: d.URL()}},
		})
		if err != nil {
			b.Fatal(err)
		}
		gw.CheckBackends(ctx)
		srv := httptest.NewServer(gw)
		b.Cleanup(srv.Close)
		return srv.URL
	}
	targets := []struct{ name, url, key string }{
		{"direct", d.URL(), ""},
		{"gateway, no limiter", gateway(nil), key},
		{"gateway + memory limiter", gateway(mem), key},
		{"gateway + Redis, sync Done", gateway(redSync), key},
		{"gateway + Redis limiter", gateway(red), key},
	}

	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024}}
	body := []byte(`{"model":"double-model","messages":[{"role":"user","content":"benchmark prompt tokens=16"}]}`)
	do := func(url, key string) error {
		h, err := upstreamdouble.PostChat(client, url, key, body)
		if err != nil {
			return err
		}
		if key != "" && h.Get("x-ratelimit-limit-requests") == "" && url != targets[1].url {
			return fmt.Errorf("no rate limit headers: the limiter is not in the path")
		}
		return nil
	}
	type result struct{ p50, p99 time.Duration }
	results := make([]result, len(targets))
	for _, tg := range targets {
		for range 200 {
			if err := do(tg.url, tg.key); err != nil {
				b.Fatalf("warm-up %s: %v", tg.name, err)
			}
		}
	}
	// Targets take turns in short slices, so load drift on a shared box
	// hits them all alike.
	const slices_ = 10
	interval := time.Second / time.Duration(rate)
	n := int(phase / interval / slices_)
	lats := make([][]time.Duration, len(targets))
	for range slices_ {
		for i, tg := range targets {
			lat := make([]time.Duration, n)
			var errs atomic.Int64
			var wg sync.WaitGroup
			start := time.Now()
			for j := range n {
				due := start.Add(time.Duration(j) * interval)
				time.Sleep(time.Until(due))
				wg.Go(func() {
					if err := do(tg.url, tg.key); err != nil {
						errs.Add(1)
					}
					lat[j] = time.Since(due) // from the schedule: a late sender cannot hide latency
				})
			}
			wg.Wait()
			if e := errs.Load(); e > 0 {
				b.Fatalf("%s: %d errors", tg.name, e)
			}
			lats[i] = append(lats[i], lat...)
		}
	}
	for i, lat := range lats {
		slices.Sort(lat)
		results[i] = result{lat[len(lat)/2], lat[len(lat)*99/100]}
	}
	direct, bare := results[0], results[1]
	b.Logf("%d requests/s for %s per target in %d interleaved slices; latency from the scheduled send time", rate, phase, slices_)
	b.Logf("%-26s %10s %10s %16s %18s", "target", "p50", "p99", "p50 added", "p50 added by limiter")
	for i, tg := range targets {
		r := results[i]
		b.Logf("%-26s %10s %10s %16s %18s", tg.name, r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond),
			(r.p50 - direct.p50).Round(time.Microsecond), (r.p50 - bare.p50).Round(time.Microsecond))
	}
	b.ReportMetric(float64((results[3].p50 - direct.p50).Microseconds()), "redis-sync-done-added-p50-µs")
	b.ReportMetric(float64((results[4].p50 - direct.p50).Microseconds()), "redis-added-p50-µs")
}
