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
