package limits

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/pkg/billing"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// harness is one store under the conformance suite. replicas reports whether
// two limiters from newLimiter share counters (true for Redis: they stand
// for two gateway replicas).
type harness struct {
	newLimiter func(t *testing.T, cfg Config) *Limiter
	now        func(t *testing.T) time.Time // the store's clock
	replicas   bool
}

func memoryHarness() harness {
	return harness{
		newLimiter: func(t *testing.T, cfg Config) *Limiter {
			t.Helper()
			l, err := NewMemory(cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			return l
		},
		now: func(*testing.T) time.Time { return time.Now() },
	}
}

func redisClient(t testing.TB) *redis.Client {
	t.Helper()
	rd := testenv.RD(t)
	c := redis.NewClient(&redis.Options{Addr: rd.Addr(), DialTimeout: 500 * time.Millisecond,
		ReadTimeout: time.Second, WriteTimeout: time.Second, MaxRetries: 1})
	t.Cleanup(func() { c.Close() })
	return c
}

func redisHarness(t *testing.T) harness {
	c := redisClient(t)
	return harness{
		newLimiter: func(t *testing.T, cfg Config) *Limiter {
			t.Helper()
			l, err := NewRedis(c, cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			return l
		},
		now: func(t *testing.T) time.Time {
			tm, err := c.Time(context.Background()).Result()
			if err != nil {
				t.Fatal(err)
			}
			return tm
		},
		replicas: true,
	}
}

// The two suites run in parallel with each other (their scenarios wait on
// real time); Go runs them after the package's sequential tests, so never
// during the outage tests that stop Redis.
func TestConformanceMemory(t *testing.T) { t.Parallel(); runConformance(t, memoryHarness()) }
func TestConformanceRedis(t *testing.T)  { t.Parallel(); runConformance(t, redisHarness(t)) }

// principal returns a caller no other test shares (the Redis is shared).
func principal() billing.Principal {
	var b [6]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	return billing.Principal{KeyID: "k" + id, TenantID: "t" + id}
}

func admitOK(t *testing.T, l *Limiter, p billing.Principal, model string, tokens int64) *ticket {
	t.Helper()
	tk, err := l.Admit(context.Background(), p, model, tokens)
	if err != nil {
		t.Fatalf("Admit: want admitted, got %v", err)
	}
	tt, ok := tk.(*ticket)
	if !ok {
		t.Fatalf("Admit returned %T, want a counted ticket", tk)
	}
	return tt
}

func admitRefused(t *testing.T, l *Limiter, p billing.Principal, model string, tokens int64, want string) *billing.LimitError {
	t.Helper()
	tk, err := l.Admit(context.Background(), p, model, tokens)
	if err == nil {
		tk.Done(context.Background(), billing.Usage{})
		t.Fatalf("Admit: want refused (%s), got admitted", want)
	}
	var le *billing.LimitError
	if !errors.As(err, &le) {
		t.Fatalf("Admit: want *billing.LimitError, got %T %v", err, err)
	}
	if !strings.Contains(le.Message, want) {
		t.Fatalf("refusal %q does not mention %q", le.Message, want)
	}
	if le.TooLarge != (le.RetryAfter == 0) || le.RetryAfter < 0 {
		t.Fatalf("refusal has RetryAfter %v, TooLarge %v: want a retry time exactly when it can fit", le.RetryAfter, le.TooLarge)
	}
	return le
}

func headerInt(t *testing.T, h http.Header, name string) int64 {
	t.Helper()
	v, err := strconv.ParseInt(h.Get(name), 10, 64)
	if err != nil {
		t.Fatalf("header %s=%q: %v", name, h.Get(name), err)
	}
	return v
}

// waitWindow sleeps until the store's clock is at most slack into a window
// after window after, and returns that window's id.
func waitWindow(t *testing.T, h harness, after int64, win, slack time.Duration) int64 {
	t.Helper()
	for range 50 {
		now := h.now(t).UnixMilli()
		w := win.Milliseconds()
		if e := now % w; e < slack.Milliseconds() && now/w > after {
			return now / w
		}
		time.Sleep(time.Duration(w-now%w)*time.Millisecond + time.Millisecond)
	}
	t.Fatal("could not line up with a window start")
	return 0
}

func runConformance(t *testing.T, h harness) {
	ctx := context.Background()
	hour := time.Hour // windows that no quick test crosses by accident

	t.Run("RPMExactWithHeaders", func(t *testing.T) {
		l := h.newLimiter(t, Config{Window: hour, Key: billing.Limits{RPM: 5}})
		p := principal()
		for i := int64(1); i <= 5; i++ {
			tk := admitOK(t, l, p, "m", 0)
			hd := tk.Header()
			if got := headerInt(t, hd, "x-ratelimit-limit-requests"); got != 5 {
				t.Fatalf("limit-requests = %d, want 5", got)
			}
			if got := headerInt(t, hd, "x-ratelimit-remaining-requests"); got != 5-i {
				t.Fatalf("request %d: remaining-requests = %d, want %d", i, got, 5-i)
			}
			if d, err := time.ParseDuration(hd.Get("x-ratelimit-reset-requests")); err != nil || d <= 0 {
				t.Fatalf("reset-requests %q: %v", hd.Get("x-ratelimit-reset-requests"), err)
			}
			if hd.Get("x-ratelimit-limit-tokens") != "" {
				t.Fatal("token headers without a TPM limit")
			}
			tk.Done(ctx, billing.Usage{})
		}
		le := admitRefused(t, l, p, "m", 0, "requests per minute")
		if got := headerInt(t, le.Header, "x-ratelimit-remaining-requests"); got != 0 {
			t.Fatalf("429 remaining-requests = %d, want 0", got)
		}
	})

	t.Run("TenantSharedByItsKeys", func(t *testing.T) {
		l := h.newLimiter(t, Config{Window: hour, Tenant: billing.Limits{RPM: 3}})
		a := principal()
		b := a
		b.KeyID += "b"
		admitOK(t, l, a, "m", 0)
		admitOK(t, l, b, "m", 0)
		admitOK(t, l, a, "m", 0)
		admitRefused(t, l, b, "m", 0, "tenant "+a.TenantID)
	})

	t.Run("StoredLimitsOverrideDefaults", func(t *testing.T) {
		l := h.newLimiter(t, Config{Window: hour, Key: billing.Limits{RPM: 1, TPM: 1000}})
		p := principal()
		p.KeyLimits = billing.Limits{RPM: 3}
		for range 3 {
			tk := admitOK(t, l, p, "m", 10)
			if got := headerInt(t, tk.Header(), "x-ratelimit-limit-tokens"); got != 1000 {
				t.Fatalf("unset stored TPM should keep the default 1000, got %d", got)
			}
		}
		admitRefused(t, l, p, "m", 10, "key "+p.KeyID)

		huge := principal()
		huge.TenantLimits = billing.Limits{RPM: 1 << 60} // from the database, unvalidated
		tk := admitOK(t, l, huge, "m", 0)
		if got := headerInt(t, tk.Header(), "x-ratelimit-limit-requests"); got != 1 {
			t.Fatalf("the key's default RPM 1 is the tighter limit, got %d", got)
		}
	})

	t.Run("TokensReservedThenSettled", func(t *testing.T) {
		l := h.newLimiter(t, Config{Window: hour, Key: billing.Limits{TPM: 100}})
		p := principal()
		first := admitOK(t, l, p, "m", 60)
		if got := headerInt(t, first.Header(), "x-ratelimit-remaining-tokens"); got != 40 {
			t.Fatalf("remaining-tokens after reserving 60 of 100 = %d, want 40", got)
		}
		admitRefused(t, l, p, "m", 60, "tokens per minute")
		first.Done(ctx, billing.Usage{PromptTokens: 4, CompletionTokens: 6}) // 50 unused come back
		second := admitOK(t, l, p, "m", 60)
		if got := headerInt(t, second.Header(), "x-ratelimit-remaining-tokens"); got != 30 {
			t.Fatalf("remaining-tokens after 10 used + 60 reserved = %d, want 30", got)
		}
		// Using more than reserved is charged too (the documented overrun).
		second.Done(ctx, billing.Usage{CompletionTokens: 85})
		admitRefused(t, l, p, "m", 6, "tokens per minute")
		admitOK(t, l, p, "m", 5)
	})

	t.Run("RequestLargerThanTPM", func(t *testing.T) {
		l := h.newLimiter(t, Config{Window: hour, Key: billing.Limits{TPM: 100}})
		p := principal()
		if le := admitRefused(t, l, p, "m", 101, "Request too large"); !le.TooLarge {
			t.Fatalf("a request larger than the limit is not marked TooLarge: %+v", le)
		}
		// Exactly the limit fits an empty window: not too large.
		admitOK(t, l, p, "m", 100)
		if le := admitRefused(t, l, p, "m", 1, "tokens per minute"); le.TooLarge {
			t.Fatalf("a request that fits a later window is marked TooLarge: %+v", le)
		}
	})

	t.Run("ConcurrencyReleasedOnDoneOnce", func(t *testing.T) {
		l := h.newLimiter(t, Config{Window: hour, Key: billing.Limits{MaxConcurrency: 2}})
		p := principal()
		a := admitOK(t, l, p, "m", 0)
		b := admitOK(t, l, p, "m", 0)
		admitRefused(t, l, p, "m", 0, "concurrent")
		a.Done(ctx, billing.Usage{})
		a.Done(ctx, billing.Usage{}) // a second Done must not free another slot
		c := admitOK(t, l, p, "m", 0)
		admitRefused(t, l, p, "m", 0, "concurrent")
		b.Done(ctx, billing.Usage{})
		c.Done(ctx, billing.Usage{})
		admitOK(t, l, p, "m", 0)
	})

	t.Run("DoneWithCancelledContextStillReleases", func(t *testing.T) {
		l := h.newLimiter(t, Config{Window: hour, Key: billing.Limits{MaxConcurrency: 1}})
		p := principal()
		a := admitOK(t, l, p, "m", 0)
		gone, cancel := context.WithCancel(ctx)
		cancel() // the client disconnected
		a.Done(gone, billing.Usage{})
		admitOK(t, l, p, "m", 0)
	})

	t.Run("SlotsOfADeadReplicaExpire", func(t *testing.T) {
		lease := time.Second // renewed every 333ms: ample slack on a loaded machine
		cfg := Config{Window: hour, SlotLease: lease, Key: billing.Limits{MaxConcurrency: 1}}
		dead := h.newLimiter(t, cfg)
		p := principal()
		admitOK(t, dead, p, "m", 0) // never Done
		time.Sleep(2 * lease)       // renewed meanwhile, so still held
		admitRefused(t, dead, p, "m", 0, "concurrent")
		dead.Close() // the replica dies: no more renewals, no release
		time.Sleep(lease + lease/2)
		other := dead
		if h.replicas {
			other = h.newLimiter(t, cfg)
		}
		admitOK(t, other, p, "m", 0)
	})

	t.Run("PerModelLimitsOnTop", func(t *testing.T) {
		l := h.newLimiter(t, Config{Window: hour, Key: billing.Limits{RPM: 3},
			Models: map[string]ModelLimits{"big": {Key: billing.Limits{RPM: 1}}}})
		p := principal()
		admitOK(t, l, p, "big", 0)
		admitRefused(t, l, p, "big", 0, "on model big")
		admitOK(t, l, p, "small", 0)
		admitOK(t, l, p, "small", 0)
		admitRefused(t, l, p, "small", 0, "key "+p.KeyID+": limit 3")
	})

	t.Run("NoLimitsNoState", func(t *testing.T) {
		l := h.newLimiter(t, Config{Window: hour})
		tk, err := l.Admit(ctx, principal(), "m", 1e9)
		if err != nil {
			t.Fatal(err)
		}
		if len(tk.Header()) != 0 {
			t.Fatalf("headers without limits: %v", tk.Header())
		}
		tk.Done(ctx, billing.Usage{})
	})

	// The tests below run across real window boundaries, with a 1s window.
	// A window boundary is lined up with the store's own clock; a step that
	// lands later than planned (a stalled machine) restarts the scenario
	// rather than asserting on timing.
	sec := time.Second

	t.Run("RefundLandsInTheReservationsWindow", func(t *testing.T) {
		l := h.newLimiter(t, Config{Window: sec, Key: billing.Limits{TPM: 100}})
		for attempt := 0; ; attempt++ {
			if attempt == 5 {
				t.Fatal("could not run the scenario inside the planned windows")
			}
			p := principal()
			wid := waitWindow(t, h, 0, sec, 500*time.Millisecond)
			first := admitOK(t, l, p, "m", 100)
			if first.wid != wid {
				continue
			}
			waitWindow(t, h, wid, sec, 300*time.Millisecond)
			// Something else lands in the new window first, so the store has
			// rolled the reservation's window over to "previous".
			admitOK(t, l, p, "m", 0).Done(ctx, billing.Usage{})
			first.Done(ctx, billing.Usage{CompletionTokens: 10})
			// Had the 90 unused tokens been refunded to this new window, the
			// previous window would still weigh ~100 and this would be refused.
			tk, err := l.Admit(ctx, p, "m", 90)
			if err != nil {
				if h.now(t).UnixMilli()%sec.Milliseconds() > 800 {
					continue // the machine stalled into the window's end
				}
				t.Fatalf("refund did not land in the reservation's window: %v", err)
			}
			if tk.(*ticket).wid != wid+1 {
				continue
			}
			return
		}
	})

	t.Run("PreviousWindowWeighsThenIsForgotten", func(t *testing.T) {
		l := h.newLimiter(t, Config{Window: sec, Key: billing.Limits{RPM: 4}})
		for attempt := 0; ; attempt++ {
			if attempt == 5 {
				t.Fatal("could not run the scenario inside the planned windows")
			}
			p := principal()
			wid := waitWindow(t, h, 0, sec, 500*time.Millisecond)
			var last *ticket
			for range 4 {
				last = admitOK(t, l, p, "m", 0)
			}
			if last.wid != wid {
				continue
			}
			waitWindow(t, h, wid, sec, 150*time.Millisecond)
			// 4 in the previous window weigh ≥ 4·0.85 > 3: nothing fits yet.
			tk, err := l.Admit(ctx, p, "m", 0)
			if err == nil {
				if tk.(*ticket).elapsed >= 250 {
					continue
				}
				t.Fatal("admitted early in the window after a full one")
			}
			var le *billing.LimitError
			if !errors.As(err, &le) || le.RetryAfter > sec {
				t.Fatalf("refusal %v: want a LimitError with RetryAfter ≤ 1s", err)
			}
			waitWindow(t, h, wid+1, sec, 500*time.Millisecond)
			for range 4 { // two windows on, the full one is forgotten
				last = admitOK(t, l, p, "m", 0)
			}
			if last.wid != wid+2 {
				continue
			}
			return
		}
	})

	t.Run("ConcurrentCallersExact", func(t *testing.T) {
		cfg := Config{Window: hour, Key: billing.Limits{RPM: 25, MaxConcurrency: 3}}
		ls := []*Limiter{h.newLimiter(t, cfg)}
		if h.replicas {
			ls = append(ls, h.newLimiter(t, cfg), h.newLimiter(t, cfg))
		}
		p := principal()
		var admitted, inFlight, maxInFlight atomic.Int64
		var wg sync.WaitGroup
		for g := range 12 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l := ls[g%len(ls)]
				for range 10 {
					tk, err := l.Admit(ctx, p, "m", 0)
					if err != nil {
						var le *billing.LimitError
						if !errors.As(err, &le) {
							t.Error(err)
						}
						continue
					}
					admitted.Add(1)
					n := inFlight.Add(1)
					for {
						m := maxInFlight.Load()
						if n <= m || maxInFlight.CompareAndSwap(m, n) {
							break
						}
					}
					time.Sleep(time.Millisecond)
					inFlight.Add(-1)
					tk.Done(ctx, billing.Usage{})
				}
			}()
		}
		wg.Wait()
		// 120 attempts: every one that was refused for concurrency retried
		// nothing, so 25 is reached only if the RPM counter is exact.
		if got := admitted.Load(); got > 25 {
			t.Fatalf("admitted %d with RPM 25", got)
		}
		if got := maxInFlight.Load(); got > 3 {
			t.Fatalf("%d in flight with max concurrency 3", got)
		}
		// Fill up whatever concurrency refusals left, then one more is refused.
		for admitted.Load() < 25 {
			admitOK(t, ls[0], p, "m", 0).Done(ctx, billing.Usage{})
			admitted.Add(1)
		}
		admitRefused(t, ls[len(ls)-1], p, "m", 0, "requests per minute")
	})
}
