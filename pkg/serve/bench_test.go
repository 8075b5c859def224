package serve_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
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
// A bare httputil.ReverseProxy in front of the same double, in the same
// run, shows what the extra HTTP hop alone costs.
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
	// The floor any HTTP gateway in Go pays: a bare reverse proxy (no key
	// check, no JSON, no metrics, no log), flushing every write.
	durl, err := url.Parse(d.URL())
	if err != nil {
		b.Fatal(err)
	}
	bare := httputil.NewSingleHostReverseProxy(durl)
	bare.FlushInterval = -1
	bare.Transport = &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: 90 * time.Second}
	psrv := httptest.NewServer(bare)
	defer psrv.Close()

	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096, IdleConnTimeout: time.Minute}}
	bodies := map[bool][]byte{
		false: []byte(`{"model":"double-model","messages":[{"role":"user","content":"benchmark prompt tokens=16"}]}`),
		true:  []byte(`{"model":"double-model","stream":true,"messages":[{"role":"user","content":"benchmark prompt tokens=8"}]}`),
	}
	targets := []struct{ name, url, key string }{
		{"direct", d.URL(), ""},
		{"gateway", gsrv.URL, key},
		{"bare proxy", psrv.URL, ""},
	}
	do := func(url, key string, body []byte) error {
		_, err := upstreamdouble.PostChat(client, url, key, body)
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
	// sample is one slice of a phase; slices of all targets take turns so
	// that load drift on a shared box hits every target alike.
	type sample struct {
		lat        []time.Duration
		errs       int64
		cpu, spent time.Duration
	}
	var firstErr sync.Once
	noteErr := func(err error) {
		firstErr.Do(func() { fmt.Fprintf(os.Stdout, "first error: %v\n", err) })
	}
	fixed := func(url, key string, body []byte, d time.Duration) sample {
		interval := time.Second / time.Duration(rps)
		n := int(d / interval)
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
		return sample{lat: lat, errs: errs.Load(), cpu: cpuTime() - cpu0, spent: time.Since(start)}
	}
	closed := func(url, key string, body []byte, d time.Duration) sample {
		var errs atomic.Int64
		var mu sync.Mutex
		var lat []time.Duration
		stop := time.Now().Add(d)
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
				}
				mu.Lock()
				lat = append(lat, local...)
				mu.Unlock()
			})
		}
		wg.Wait()
		return sample{lat: lat, errs: errs.Load(), cpu: cpuTime() - cpu0, spent: time.Since(start)}
	}
	const turns = 6
	run := func(phaseFn func(url, key string, body []byte, d time.Duration) sample, body []byte) []result {
		all := make([]sample, len(targets))
		for range turns {
			for i, tg := range targets {
				s := phaseFn(tg.url, tg.key, body, phase/turns)
				all[i].lat = append(all[i].lat, s.lat...)
				all[i].errs += s.errs
				all[i].cpu += s.cpu
				all[i].spent += s.spent
			}
		}
		out := make([]result, len(targets))
		for i, s := range all {
			slices.Sort(s.lat)
			n := len(s.lat)
			out[i] = result{p50: s.lat[n/2], p99: s.lat[n*99/100], rps: float64(n) / s.spent.Seconds(), errs: s.errs,
				cpu: s.cpu / time.Duration(n)}
		}
		return out
	}

	ms := func(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/1e6) }
	out := os.Stdout
	fmt.Fprintf(out, "\ngateway overhead: %d s per phase in %d interleaved turns, fixed rate %d RPS, closed loop %d workers, GOMAXPROCS %s\n",
		secs, turns, rps, conc, strconv.Itoa(runtimeProcs()))
	fmt.Fprintf(out, "%-10s %-8s %-10s %12s %12s %12s %6s %14s\n", "mode", "load", "target", "p50", "p99", "RPS", "errors", "CPU/request")
	for _, stream := range []bool{false, true} {
		mode := "plain"
		if stream {
			mode = "stream"
		}
		fx := run(fixed, bodies[stream])
		for i, tg := range targets {
			fmt.Fprintf(out, "%-10s %-8s %-10s %12s %12s %12.0f %6d %11.0f µs\n", mode, "fixed", tg.name, ms(fx[i].p50), ms(fx[i].p99), fx[i].rps, fx[i].errs, us(fx[i].cpu))
		}
		cl := run(closed, bodies[stream])
		for i, tg := range targets {
			fmt.Fprintf(out, "%-10s %-8s %-10s %12s %12s %12.0f %6d %11.0f µs\n", mode, "closed", tg.name, ms(cl[i].p50), ms(cl[i].p99), cl[i].rps, cl[i].errs, us(cl[i].cpu))
		}
		addP50, addP99 := fx[1].p50-fx[0].p50, fx[1].p99-fx[0].p99
		ratio := cl[1].rps / cl[0].rps
		fmt.Fprintf(out, "%-10s added latency at %d RPS: p50 %s (x%.2f), p99 %s (x%.2f); max RPS gateway/direct = %.2f (goal >= 0.6)\n",
			mode, rps, ms(addP50), ratioOf(fx[1].p50, fx[0].p50), ms(addP99), ratioOf(fx[1].p99, fx[0].p99), ratio)
		fmt.Fprintf(out, "%-10s bare proxy (the floor of any Go HTTP hop): added p50 %s, p99 %s; max RPS bare proxy/direct = %.2f\n",
			mode, ms(fx[2].p50-fx[0].p50), ms(fx[2].p99-fx[0].p99), cl[2].rps/cl[0].rps)
		fmt.Fprintf(out, "%-10s gateway CPU per request (closed loop, client+gateway+double minus client+double): %.0f µs; bare proxy: %.0f µs\n",
			mode, us(cl[1].cpu-cl[0].cpu), us(cl[2].cpu-cl[0].cpu))
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
