package ledger_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/internal/upstreamdouble"
	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/limits"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/serve"
)

// BenchmarkFullPath measures the whole money path against the bare path in
// the same run, at fixed rates (issue 23): the backend double called
// directly, a bare httputil.ReverseProxy, the gateway with key checks only
// (SQLite), the single-box full path (SQLite ledger + in-process limiter +
// prices) and the replicated full path (PostgreSQL ledger + Redis limiter +
// prices). Targets take turns in short slices so load drift on a shared box
// hits all alike; latency is from each request's scheduled send time.
//
// CPU per request is this process's user+system time over the slice (the
// client, the double and the gateway live in one process), so a target's
// figure minus direct's is what the gateway hop costs; PostgreSQL's and
// Redis's own CPU is not in it. Allocations per request likewise.
//
// Knobs: LLMCTL_BENCH_RATES (comma list, default "200,1000"),
// LLMCTL_BENCH_SECONDS (per target and rate, default 3), LLMCTL_BENCH_PROFILE
// (a directory: a CPU and an allocation profile per target and rate,
// for `go tool pprof`; allocs are a delta, read with -base; every
// allocation is sampled, so a profiled run's latencies are not the figures).
//
//	LLMCTL_TEST_REQUIRE_SERVICES=1 go test -run '^$' -bench FullPath -benchtime 1x ./pkg/billing/ledger
func BenchmarkFullPath(b *testing.B) {
	rates := []int{200, 1000}
	if v := os.Getenv("LLMCTL_BENCH_RATES"); v != "" {
		rates = rates[:0]
		for f := range strings.SplitSeq(v, ",") {
			if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
				rates = append(rates, n)
			}
		}
	}
	secs := 3
	if v, err := strconv.Atoi(os.Getenv("LLMCTL_BENCH_SECONDS")); err == nil && v > 0 {
		secs = v
	}
	profDir := os.Getenv("LLMCTL_BENCH_PROFILE")
	if profDir != "" && os.Getenv("LLMCTL_BENCH_PROFILE_ALLOCS") != "" {
		// Every allocation sampled: slices are short. Not by default: the
		// sampling's stack walks would be most of the CPU profile.
		defer func(r int) { runtime.MemProfileRate = r }(runtime.MemProfileRate)
		runtime.MemProfileRate = 1
	}
	ctx := context.Background()

	d, err := upstreamdouble.New(upstreamdouble.Options{Name: "double"})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	prices := ledger.Prices{Models: map[string]ledger.Price{"double-model": {Input: 100_000, Output: 300_000}}}
	high := billing.Limits{RPM: 1e9, TPM: 1e9, MaxConcurrency: 1e6}
	lcfg := limits.Config{Key: high, Tenant: high}

	// One setup per store: the key store and the ledger share the database,
	// as `llmctl serve` does.
	type setup struct {
		st  store.Store
		key string
		l   *ledger.Ledger
		ls  ledger.Store
	}
	open := func(dsn string) setup {
		st, err := store.Open(ctx, dsn)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		key, err := serve.EnsureAdmin(ctx, st, "")
		if err != nil || key == "" {
			b.Fatalf("bootstrap key: %v", err)
		}
		ts, err := st.ListTenants(ctx)
		if err != nil || len(ts) != 1 {
			b.Fatalf("tenants: %v %v", ts, err)
		}
		ls, err := ledger.Open(ctx, dsn)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { ls.Close() })
		fund(b, ls, ts[0].ID, 1_000_000*ledger.Unit)
		l := newLedger(b, ls, b.TempDir(), func(c *ledger.Config) { c.Prices = prices })
		b.Cleanup(func() { l.Close(ctx) })
		return setup{st: st, key: key, l: l, ls: ls}
	}
	lite := open("sqlite:" + filepath.Join(b.TempDir(), "bench.db"))
	pg := open(pgDSN(b))

	mem, err := limits.NewMemory(lcfg)
	if err != nil {
		b.Fatal(err)
	}
	defer mem.Close()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RD(b).Addr()})
	defer rdb.Close()
	red, err := limits.NewRedis(rdb, lcfg)
	if err != nil {
		b.Fatal(err)
	}
	defer red.Close()

	gateway := func(st store.Store, adm serve.Admitter, res serve.Reserver) string {
		return benchGateway(b, st, d.URL(), adm, res)
	}
	durl, err := url.Parse(d.URL())
	if err != nil {
		b.Fatal(err)
	}
	bare := httputil.NewSingleHostReverseProxy(durl)
	bare.Transport = &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute}
	psrv := httptest.NewServer(bare)
	defer psrv.Close()

	targets := []struct{ name, slug, url, key string }{
		{"direct to the double", "direct", d.URL(), ""},
		{"bare reverse proxy", "proxy", psrv.URL, ""},
		{"gateway, keys only (SQLite)", "bare", gateway(lite.st, nil, nil), lite.key},
		{"full: SQLite + memory limiter", "full-sqlite", gateway(lite.st, mem, lite.l), lite.key},
		{"full: PostgreSQL + Redis", "full-pg", gateway(pg.st, red, pg.l), pg.key},
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096, IdleConnTimeout: time.Minute}}
	body := []byte(`{"model":"double-model","max_tokens":64,"messages":[{"role":"user","content":"benchmark prompt tokens=16"}]}`)
	var firstErr sync.Once
	do := func(url, key string) bool {
		if _, err := upstreamdouble.PostChat(client, url, key, body); err != nil {
			firstErr.Do(func() { b.Logf("first error: %v", err) })
			return false
		}
		return true
	}
	for _, tg := range targets {
		for range 300 {
			if !do(tg.url, tg.key) {
				b.Fatalf("warm-up %s failed", tg.name)
			}
		}
	}

	type acc struct {
		lat          []time.Duration
		errs         int64
		cpu          time.Duration
		mallocs      uint64
		cpuProf      *os.File
		profStarted  bool
		allocsBefore []byte
	}
	// Printed, not b.Logf'd: the benchmark log is cut short.
	logf := func(format string, args ...any) { fmt.Printf(format+"\n", args...) }
	const turns = 6
	for _, rate := range rates {
		interval := time.Second / time.Duration(rate)
		n := int(time.Duration(secs) * time.Second / interval / turns)
		all := make([]acc, len(targets))
		for turn := range turns {
			for i, tg := range targets {
				a := &all[i]
				var ms0, ms1 runtime.MemStats
				runtime.ReadMemStats(&ms0)
				stop := func() {}
				if profDir != "" {
					stop = profileSlice(b, profDir, fmt.Sprintf("%s-%d", tg.slug, rate), turn)
				}
				lat := make([]time.Duration, n)
				var errs atomic.Int64
				var wg sync.WaitGroup
				start, cpu0 := time.Now(), cpuTime()
				for j := range n {
					due := start.Add(time.Duration(j) * interval)
					time.Sleep(time.Until(due))
					wg.Go(func() {
						if !do(tg.url, tg.key) {
							errs.Add(1)
						}
						lat[j] = time.Since(due)
					})
				}
				wg.Wait()
				a.cpu += cpuTime() - cpu0
				stop()
				runtime.ReadMemStats(&ms1)
				a.mallocs += ms1.Mallocs - ms0.Mallocs
				a.lat = append(a.lat, lat...)
				a.errs += errs.Load()
			}
		}
		type row struct {
			p50, p99, cpu time.Duration
			allocs        float64
		}
		rows := make([]row, len(targets))
		for i := range all {
			a := &all[i]
			slices.Sort(a.lat)
			k := len(a.lat)
			rows[i] = row{a.lat[k/2], a.lat[k*99/100], a.cpu / time.Duration(k), float64(a.mallocs) / float64(k)}
		}
		logf("%d requests/s, %d s per target in %d interleaved slices, GOMAXPROCS %d", rate, secs, turns, runtime.GOMAXPROCS(0))
		logf("%-32s %9s %9s %10s %10s %12s %12s %6s", "target", "p50", "p99", "+p50", "+p99", "CPU/req", "+CPU/req", "allocs")
		for i, tg := range targets {
			r := rows[i]
			logf("%-32s %9.3f %9.3f %10.3f %10.3f %9.0f µs %9.0f µs %6.0f  errors %d", tg.name, ms(r.p50), ms(r.p99),
				ms(r.p50-rows[0].p50), ms(r.p99-rows[0].p99), us(r.cpu), us(r.cpu-rows[0].cpu), r.allocs, all[i].errs)
		}
		bareCPU := rows[2].cpu - rows[0].cpu
		for i, slug := range []string{"full-sqlite", "full-pg"} {
			r := rows[3+i]
			logf("%s at %d RPS: added p50 %.3f ms, p99 %.3f ms; gateway CPU %.2f× the keys-only gateway's", slug, rate,
				ms(r.p50-rows[0].p50), ms(r.p99-rows[0].p99), float64(r.cpu-rows[0].cpu)/float64(bareCPU))
			b.ReportMetric(ms(r.p50-rows[0].p50), fmt.Sprintf("%s-%d-added-p50-ms", slug, rate))
			b.ReportMetric(us(r.cpu-rows[0].cpu), fmt.Sprintf("%s-%d-added-cpu-us", slug, rate))
		}
	}
	for _, s := range []setup{lite, pg} {
		drained(b, s.l)
		clean(b, s.ls)
	}
}

// benchGateway serves a gateway in front of the double at upstream, with
// the key cache over st and, when not nil, adm and res.
func benchGateway(b testing.TB, st store.Store, upstream string, adm serve.Admitter, res serve.Reserver) string {
	opts := serve.Options{Logger: slog.New(slog.DiscardHandler), Auth: store.NewAuthenticator(st, 0),
		Remotes: []serve.RemoteConfig{{Name: "double", URL: upstream}}}
	if adm != nil {
		opts.Admitter = adm
	}
	if res != nil {
		opts.Reserver = res
	}
	gw, err := serve.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	gw.CheckBackends(context.Background())
	srv := httptest.NewServer(gw)
	b.Cleanup(srv.Close)
	return srv.URL
}

// profileSlice profiles one target's slice into dir/<name>.<turn>.cpu
// (`go tool pprof` merges several files given at once) and, around the
// first slice, writes the allocation profile before and after it, for
// `go tool pprof -sample_index=alloc_space -base <name>.allocs.before
// <name>.allocs.after`.
func profileSlice(b *testing.B, dir, name string, turn int) func() {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	first := turn == 0
	writeAllocs := func(suffix string) {
		f, err := os.Create(filepath.Join(dir, name+".allocs."+suffix))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		runtime.GC()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			b.Fatal(err)
		}
	}
	if first {
		writeAllocs("before")
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s.%d.cpu", name, turn)))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		if first {
			writeAllocs("after")
		}
	}
}

func us(d time.Duration) float64 { return float64(d) / 1e3 }

// cpuTime is this process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
