package limits

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/pkg/billing"
)

func TestRedisReloadsScriptAfterFlush(t *testing.T) {
	c := redisClient(t)
	l, err := NewRedis(c, Config{Window: time.Hour, Key: billing.Limits{RPM: 2}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p := principal()
	admitOK(t, l, p, "m", 0)
	if err := c.ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	admitOK(t, l, p, "m", 0) // NOSCRIPT → loaded again, same counters
	admitRefused(t, l, p, "m", 0, "requests per minute")
}

func TestRedisEveryKeyHasATTL(t *testing.T) {
	c := redisClient(t)
	prefix := "ttltest:" + principal().KeyID + ":"
	l, err := NewRedis(c, Config{Window: time.Hour, Prefix: prefix,
		Key: billing.Limits{RPM: 10, TPM: 1000, MaxConcurrency: 5}, Tenant: billing.Limits{RPM: 20},
		Models: map[string]ModelLimits{"big": {Key: billing.Limits{TPM: 500}, Tenant: billing.Limits{MaxConcurrency: 1}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	p := principal()
	a := admitOK(t, l, p, "big", 100)
	admitOK(t, l, p, "m", 100) // left held: its slot must expire by TTL too
	a.Done(ctx, billing.Usage{PromptTokens: 3})
	keys, err := c.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) < 4 {
		t.Fatalf("expected counter and slot keys, found %v", keys)
	}
	for _, k := range keys {
		ttl, err := c.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl <= 0 {
			t.Errorf("key %s has no TTL (%v)", k, ttl)
		}
	}
}

// outage stops the package's real Redis and restarts it when the test ends
// (or earlier through the returned func).
func outage(t *testing.T) (restart func()) {
	rd := testenv.RD(t)
	if err := rd.Stop(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	restart = func() {
		once.Do(func() {
			if err := rd.Start(); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Cleanup(restart)
	return restart
}

func TestRedisOutageFailOpen(t *testing.T) {
	c := redisClient(t)
	logs := &testenv.Buffer{}
	reg := prometheus.NewPedanticRegistry()
	l, err := NewRedis(c, Config{Window: time.Hour, RetryRedisAfter: 50 * time.Millisecond,
		Key: billing.Limits{RPM: 2}, Registerer: reg,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	decisions := func(result string) float64 {
		return testutil.ToFloat64(l.metrics.decisions.WithLabelValues("key", result))
	}
	p := principal()
	admitOK(t, l, p, "m", 0).Done(ctx, billing.Usage{})
	if decisions("allowed") != 1 {
		t.Fatalf("allowed decisions = %v, want 1", decisions("allowed"))
	}

	restart := outage(t)
	// Failing open still enforces the limit, per replica, in process.
	q := principal()
	admitOK(t, l, q, "m", 0).Done(ctx, billing.Usage{})
	time.Sleep(60 * time.Millisecond) // let the limiter probe Redis again
	admitOK(t, l, q, "m", 0).Done(ctx, billing.Usage{})
	admitRefused(t, l, q, "m", 0, "requests per minute")
	if got := decisions("error"); got != 3 {
		t.Fatalf("error decisions during the outage = %v, want 3", got)
	}
	if !strings.Contains(logs.String(), "redis unreachable") {
		t.Fatalf("outage not logged: %s", logs.String())
	}

	restart()
	// go-redis redials on its own; the limiter probes again after RetryRedisAfter.
	deadline := time.Now().Add(20 * time.Second)
	for {
		tk, err := l.Admit(ctx, principal(), "m", 0)
		if err != nil {
			t.Fatal(err)
		}
		tk.Done(ctx, billing.Usage{})
		if !l.degraded.Load() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("limiter did not go back to Redis after it restarted")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The shared counters (emptied by the restart: Redis ran without
	// persistence) are in force again: p gets its 2, then is refused.
	admitOK(t, l, p, "m", 0)
	admitOK(t, l, p, "m", 0)
	admitRefused(t, l, p, "m", 0, "requests per minute")
	if !strings.Contains(logs.String(), "reachable again") {
		t.Fatalf("recovery not logged: %s", logs.String())
	}
	if n, err := testutil.GatherAndCount(reg, "llmctl_ratelimit_decisions_total"); err != nil || n == 0 {
		t.Fatalf("metric not exported through the registry: %d, %v", n, err)
	}
}

// quietWindow returns a window length from 50 to 60 minutes in which the
// store's clock (Redis TIME) is at least 10 minutes away from the next
// boundary, so a scenario of a few seconds stays in one window without
// waiting for one to start.
func quietWindow(t *testing.T, now time.Time) time.Duration {
	t.Helper()
	for w := 60 * time.Minute; w >= 50*time.Minute; w -= time.Minute {
		if left := w - time.Duration(now.UnixMilli()%w.Milliseconds())*time.Millisecond; left >= 10*time.Minute {
			return w
		}
	}
	t.Fatal("no window length with 10 minutes left")
	return 0
}

// Two limiters sharing one Redis stand for two replicas. Redis admits some
// of an RPM of 20, then dies mid-window: each replica's fallback admits only
// what is left of its own 20, counting what it admitted through Redis and
// the Redis-admitted request it still holds a slot for. Over the window:
// exactly replicas × limit = 40 (before seeding: 52, and a third slot on
// the replica already holding one of 3). When Redis comes back in the same
// window its counters (emptied: no persistence) admit 20 more: the
// documented (replicas+1) × limit for the window of a recovery.
func TestRedisOutageTwoReplicasWithinReplicasTimesLimit(t *testing.T) {
	const limit, attempts = 20, 50
	c := redisClient(t)
	ctx := context.Background()
	redisNow, err := c.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	// The fallback's clock stands still in the Redis window of the test:
	// nothing in its decisions depends on how fast the test runs.
	cfg := Config{Window: quietWindow(t, redisNow), RetryRedisAfter: time.Hour,
		Key: billing.Limits{RPM: limit, MaxConcurrency: 3},
		Now: func() time.Time { return redisNow }}
	var replicas [2]*Limiter
	for i := range replicas {
		if replicas[i], err = NewRedis(c, cfg); err != nil {
			t.Fatal(err)
		}
		defer replicas[i].Close()
	}
	a, b := replicas[0], replicas[1]
	p := principal()
	viaRedis := func(l *Limiter) *ticket {
		tk := admitOK(t, l, p, "m", 0)
		if tk.st != l.store {
			t.Fatal("admitted by the fallback with Redis up")
		}
		return tk
	}
	held := viaRedis(a) // still in flight when Redis dies
	for range 6 {
		viaRedis(a).Done(ctx, billing.Usage{})
	}
	for range 5 {
		viaRedis(b).Done(ctx, billing.Usage{})
	}

	restart := outage(t)
	// a holds 1 of its 3 slots (through Redis): two more, not three.
	var fellBack []*ticket
	for range 2 {
		tk := admitOK(t, a, p, "m", 0)
		if tk.st != a.fallback {
			t.Fatal("admitted by Redis during the outage")
		}
		fellBack = append(fellBack, tk)
	}
	admitRefused(t, a, p, "m", 0, "concurrent")
	for _, tk := range fellBack {
		tk.Done(ctx, billing.Usage{})
	}
	held.Done(ctx, billing.Usage{}) // Redis is down: frees the mirrored slot
	admitted := [2]int{len(fellBack), 0}
	for i, l := range replicas {
		for range attempts {
			tk, err := l.Admit(ctx, p, "m", 0)
			var le *billing.LimitError
			switch {
			case err == nil:
				admitted[i]++
				tk.Done(ctx, billing.Usage{})
			case !errors.As(err, &le) || !strings.Contains(le.Message, "requests per minute"):
				t.Fatalf("replica %d during the outage: %v", i, err)
			}
		}
	}
	t.Logf("RPM %d, 2 replicas: 12 admitted through Redis (a 7, b 5), then during the outage a %d, b %d: %d in the window",
		limit, admitted[0], admitted[1], 12+admitted[0]+admitted[1])
	if admitted != [2]int{limit - 7, limit - 5} {
		t.Fatalf("admitted during the outage a %d, b %d: want %d and %d (each replica's own limit less what it admitted through Redis)",
			admitted[0], admitted[1], limit-7, limit-5)
	}
	if total := 12 + admitted[0] + admitted[1]; total != 2*limit {
		t.Fatalf("%d admitted in the window, want replicas × limit = %d", total, 2*limit)
	}

	restart()
	afterRestart := 0
	for i, l := range replicas {
		l.redisDownUntil.Store(0) // probe now rather than after RetryRedisAfter
		deadline := time.Now().Add(20 * time.Second)
		for l.degraded.Load() {
			tk, err := l.Admit(ctx, p, "m", 0)
			var le *billing.LimitError
			switch {
			case err == nil && tk.(*ticket).st == l.store:
				afterRestart++
				tk.Done(ctx, billing.Usage{})
			case err == nil:
				t.Fatalf("replica %d: admitted by its full fallback", i)
			case !errors.As(err, &le):
				t.Fatal(err)
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica %d did not go back to Redis", i)
			}
			l.redisDownUntil.Store(0)
		}
	}
	for _, l := range replicas {
		for range attempts {
			if tk, err := l.Admit(ctx, p, "m", 0); err == nil {
				afterRestart++
				tk.Done(ctx, billing.Usage{})
			}
		}
	}
	if afterRestart != limit {
		t.Fatalf("after Redis restarted in the window: %d admitted, want its fresh %d", afterRestart, limit)
	}
}

// The fallback's seed follows a Redis-admitted request's token correction:
// 60 reserved and 10 used through Redis leave 90 of a TPM of 100 for the
// outage, not 40 (reservation kept) nor 100 (nothing seeded).
func TestRedisOutageFallbackSeedHasSettledTokens(t *testing.T) {
	c := redisClient(t)
	ctx := context.Background()
	redisNow, err := c.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewRedis(c, Config{Window: quietWindow(t, redisNow), RetryRedisAfter: time.Hour,
		Key: billing.Limits{TPM: 100}, Now: func() time.Time { return redisNow }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p := principal()
	tk := admitOK(t, l, p, "m", 60)
	if tk.st != l.store {
		t.Fatal("admitted by the fallback with Redis up")
	}
	tk.Done(ctx, billing.Usage{PromptTokens: 4, CompletionTokens: 6})

	outage(t)
	admitRefused(t, l, p, "m", 91, "tokens per minute")
	if tk := admitOK(t, l, p, "m", 90); tk.st != l.fallback {
		t.Fatal("admitted by Redis during the outage")
	}
}

func TestRedisOutageFailClosed(t *testing.T) {
	c := redisClient(t)
	l, err := NewRedis(c, Config{Window: time.Hour, FailMode: FailClosed,
		RetryRedisAfter: 50 * time.Millisecond, Key: billing.Limits{RPM: 100}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	p := principal()
	held := admitOK(t, l, p, "m", 10)

	restart := outage(t)
	_, err = l.Admit(ctx, p, "m", 0)
	var le *billing.LimitError
	if !errors.Is(err, ErrUnavailable) || errors.As(err, &le) {
		t.Fatalf("fail-closed during an outage: want ErrUnavailable, got %v", err)
	}
	held.Done(ctx, billing.Usage{}) // must not hang or panic with Redis gone

	restart()
	deadline := time.Now().Add(20 * time.Second)
	for {
		tk, err := l.Admit(ctx, p, "m", 0)
		if err == nil {
			tk.Done(ctx, billing.Usage{})
			return
		}
		if !errors.Is(err, ErrUnavailable) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing after Redis restarted: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestConfigRejectsBadValues(t *testing.T) {
	for name, cfg := range map[string]Config{
		"fail mode":       {FailMode: "sometimes"},
		"negative limit":  {Key: billing.Limits{RPM: -1}},
		"model negative":  {Models: map[string]ModelLimits{"x": {Tenant: billing.Limits{TPM: -5}}}},
		"sub-ms window":   {Window: 1500 * time.Microsecond},
		"window too long": {Window: 2 * time.Hour},
		"limit too large": {Tenant: billing.Limits{TPM: MaxLimit + 1}},
	} {
		if _, err := NewMemory(cfg); err == nil {
			t.Errorf("%s: accepted %+v", name, cfg)
		}
	}
}
