package serve_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/llmctl/llmctl/internal/upstreamdouble"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/serve"
)

// BenchmarkGatewayOverhead measures what the gateway adds over calling the
// same backend double directly, in the same run, on loopback: latency
// p50/p99 at a fixed rate and max throughput in a closed loop, for plain
// and streamed chat completions. Key checks are on (SQLite store behind the
// cached authenticator), and the access log is formatted (to io.Discard).
//
// It ignores b.N and runs its phases once: `make bench` (-benchtime 1x).
// Knobs: LLMCTL_BENCH_SECONDS (per phase, default 3), LLMCTL_BENCH_RPS
// (default 500), LLMCTL_BENCH_CONCURRENCY (closed loop, default 32).
func BenchmarkGatewayOverhead(b *testing.B) {
	secs := envInt("LLMCTL_BENCH_SECONDS", 3)
	rps := envInt("LLMCTL_BENCH_RPS", 500)
	conc := envInt("LLMCTL_BENCH_CONCURRENCY", 32)
	phase := time.Duration(secs) * time.Second

	d, err := upstreamdouble.New(upstreamdouble.Options{Name: "double"})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	key, err := serve.EnsureAdmin(ctx, st, "")
	if err != nil || key == "" {
		b.Fatalf("bootstrap key: %q %v", key, err)
	}
	gw, err := serve.New(serve.Options{
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		Auth:    store.NewAuthenticator(st, 0),
		Ready:   st.Ping,
		Remotes: []serve.RemoteConfig{{Name: "double", URL: d.URL()}},
	})
	if err != nil {
		b.Fatal(err)
	}
	gw.CheckBackends(ctx)
	gsrv := httptest.NewServer(gw)
	defer gsrv.Close()

	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096, IdleConnTimeout: time.Minute}}
	bodies := map[bool][]byte{
		false: []byte(`{"model":"double-model","messages":[{"role":"user","content":"benchmark prompt tokens=16"}]}`),
		true:  []byte(`{"model":"double-model","stream":true,"messages":[{"role":"user","content":"benchmark prompt tokens=8"}]}`),
	}
	targets := []struct{ name, url, key string }{
		{"direct", d.URL(), ""},
		{"gateway", gsrv.URL, key},
	}
	do := func(url, key string, body []byte) error {
		req, _ := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return err
	}
	// Warm connections and caches on both paths.
	for _, tg := range targets {
		for range 200 {
			if err := do(tg.url, tg.key, bodies[false]); err != nil {
				b.Fatalf("warm-up %s: %v", tg.name, err)
			}
		}
	}

	type result struct {
		p50, p99 time.Duration
		rps      float64
		errs     int64
		cpu      time.Duration // process CPU (user+sys) per request: robust to a busy box
	}
	var firstErr sync.Once
	noteErr := func(err error) {
		firstErr.Do(func() { fmt.Fprintf(os.Stdout, "first error: %v\n", err) })
	}
	fixed := func(url, key string, body []byte) result {
		interval := time.Second / time.Duration(rps)
		n := int(phase / interval)
		lat := make([]time.Duration, n)
		var errs atomic.Int64
		var wg sync.WaitGroup
		start, cpu0 := time.Now(), cpuTime()
		for i := range n {
			due := start.Add(time.Duration(i) * interval)
			time.Sleep(time.Until(due))
			wg.Go(func() {
				if err := do(url, key, body); err != nil {
					errs.Add(1)
					noteErr(err)
				}
				// From the scheduled time: a stalled sender cannot hide latency.
				lat[i] = time.Since(due)
			})
		}
		wg.Wait()
		slices.Sort(lat)
		return result{p50: lat[n/2], p99: lat[n*99/100], rps: float64(n) / time.Since(start).Seconds(), errs: errs.Load(),
			cpu: (cpuTime() - cpu0) / time.Duration(n)}
	}
	closed := func(url, key string, body []byte) result {
		var done, errs atomic.Int64
		var mu sync.Mutex
		var lat []time.Duration
		stop := time.Now().Add(phase)
		start, cpu0 := time.Now(), cpuTime()
		var wg sync.WaitGroup
		for range conc {
			wg.Go(func() {
				var local []time.Duration
				for time.Now().Before(stop) {
					t0 := time.Now()
					if err := do(url, key, body); err != nil {
						errs.Add(1)
						noteErr(err)
					}
					local = append(local, time.Since(t0))
					done.Add(1)
				}
				mu.Lock()
				lat = append(lat, local...)
				mu.Unlock()
			})
		}
		wg.Wait()
		slices.Sort(lat)
		return result{p50: lat[len(lat)/2], p99: lat[len(lat)*99/100], rps: float64(done.Load()) / time.Since(start).Seconds(),
			errs: errs.Load(), cpu: (cpuTime() - cpu0) / time.Duration(len(lat))}
	}

	ms := func(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/1e6) }
	out := os.Stdout
	fmt.Fprintf(out, "\ngateway overhead: %d s per phase, fixed rate %d RPS, closed loop %d workers, GOMAXPROCS %s\n",
		secs, rps, conc, strconv.Itoa(runtimeProcs()))
	fmt.Fprintf(out, "%-10s %-8s %-10s %12s %12s %12s %6s %14s\n", "mode", "load", "target", "p50", "p99", "RPS", "errors", "CPU/request")
	for _, stream := range []bool{false, true} {
		mode := "plain"
		if stream {
			mode = "stream"
		}
		var fx, cl [2]result
		for i, tg := range targets {
			fx[i] = fixed(tg.url, tg.key, bodies[stream])
			fmt.Fprintf(out, "%-10s %-8s %-10s %12s %12s %12.0f %6d %11.0f µs\n", mode, "fixed", tg.name, ms(fx[i].p50), ms(fx[i].p99), fx[i].rps, fx[i].errs, us(fx[i].cpu))
		}
		for i, tg := range targets {
			cl[i] = closed(tg.url, tg.key, bodies[stream])
			fmt.Fprintf(out, "%-10s %-8s %-10s %12s %12s %12.0f %6d %11.0f µs\n", mode, "closed", tg.name, ms(cl[i].p50), ms(cl[i].p99), cl[i].rps, cl[i].errs, us(cl[i].cpu))
		}
		addP50, addP99 := fx[1].p50-fx[0].p50, fx[1].p99-fx[0].p99
		ratio := cl[1].rps / cl[0].rps
		fmt.Fprintf(out, "%-10s added latency at %d RPS: p50 %s (x%.2f), p99 %s (x%.2f); max RPS gateway/direct = %.2f (goal >= 0.6)\n",
			mode, rps, ms(addP50), ratioOf(fx[1].p50, fx[0].p50), ms(addP99), ratioOf(fx[1].p99, fx[0].p99), ratio)
		fmt.Fprintf(out, "%-10s gateway CPU per request (closed loop, client+gateway+double minus client+double): %.0f µs\n",
			mode, us(cl[1].cpu-cl[0].cpu))
		b.ReportMetric(us(cl[1].cpu-cl[0].cpu), mode+"-added-cpu-us")
		b.ReportMetric(float64(addP50)/1e6, mode+"-added-p50-ms")
		b.ReportMetric(float64(addP99)/1e6, mode+"-added-p99-ms")
		b.ReportMetric(ratio, mode+"-rps-ratio")
		// Errors only show up when the box is overloaded (the double's
		// header timeout fires on a starved accept queue); they are printed
		// in the table rather than failing `make bench`.
	}
}

func ratioOf(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil && v > 0 {
		return v
	}
	return def
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

func us(d time.Duration) float64 { return float64(d) / 1e3 }

// cpuTime is this process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
