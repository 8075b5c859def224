package serve

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// fakeClock is the queue's clock under the test's hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

// queued is a test's view of one waiting request.
type queued struct {
	name string
	l    *lease
	err  error
}

// queueBench is one backend with one slot, a queue in front of it and the
// test as the only one ending leases, so the order of grants is exact.
type queueBench struct {
	t     *testing.T
	r     *router
	m     *member
	clock *fakeClock
	out   chan queued
}

func newQueueBench(t *testing.T, opts QueueOptions) *queueBench {
	m := mem("gpu", 1, 1)
	r := testRouter(m)
	c := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	r.q = newQueue(opts, c)
	return &queueBench{t: t, r: r, m: m, clock: c, out: make(chan queued, 1024)}
}

// wait queues a request of tenant at priority and returns once it waits.
func (b *queueBench) wait(ctx context.Context, name, tenant string, tier int) {
	b.t.Helper()
	before := b.r.q.n.Load()
	go func() {
		l, err := b.r.acquire(ctx, "m", nil, who{tenant: tenant, tier: tier, weight: 1}, 0)
		b.out <- queued{name: name, l: l, err: err}
	}()
	for b.r.q.n.Load() == before {
		time.Sleep(time.Millisecond)
	}
}

// serve ends the running lease and returns who got the slot next.
func (b *queueBench) serve(running *lease) (string, *lease) {
	b.t.Helper()
	b.clock.t = b.clock.t.Add(100 * time.Millisecond)
	running.done(nil)
	select {
	case q := <-b.out:
		if q.err != nil || q.l == nil {
			b.t.Fatalf("%s: lease %v, err %v", q.name, q.l, q.err)
		}
		return q.name, q.l
	case <-time.After(10 * time.Second):
		b.t.Fatal("no waiter got the freed slot")
	}
	return "", nil
}

func (b *queueBench) take() *lease {
	b.t.Helper()
	l, err := b.r.acquire(b.t.Context(), "m", nil, who{tenant: "x", tier: 1}, 0)
	if err != nil || l == nil {
		b.t.Fatalf("free slot: %v %v", l, err)
	}
	return l
}

// TestQueueFairShare: tenant A keeps 40 requests waiting on a one-slot
// backend; each request of tenant B is served after at most one more of
// A's, counted in service slots.
func TestQueueFairShare(t *testing.T) {
	b := newQueueBench(t, QueueOptions{})
	running := b.take()
	for i := range 40 {
		b.wait(t.Context(), fmt.Sprintf("a%d", i), "A", 1)
	}
	for round := range 8 {
		b.wait(t.Context(), fmt.Sprintf("b%d", round), "B", 1)
		for slot := 0; ; slot++ {
			var name string
			name, running = b.serve(running)
			if name[0] == 'b' {
				if slot > 1 {
					t.Fatalf("round %d: B served after %d of A's slots, want at most 1", round, slot)
				}
				break
			}
			b.wait(t.Context(), name+"'", "A", 1) // A keeps its backlog
		}
		// B sends its next request after a few of A's have run.
		for range 3 {
			var name string
			name, running = b.serve(running)
			b.wait(t.Context(), name+"'", "A", 1)
		}
	}
	running.done(nil)
}

// TestQueuePriority: high goes before normal, however long normal waited;
// low is served after at most StarvationLimit grants to higher tiers.
func TestQueuePriority(t *testing.T) {
	b := newQueueBench(t, QueueOptions{StarvationLimit: 3})
	running := b.take()
	b.wait(t.Context(), "low", "L", 2)
	for i := range 3 {
		b.wait(t.Context(), fmt.Sprintf("normal%d", i), "N", 1)
	}
	b.wait(t.Context(), "high", "H", 0)
	name, running := b.serve(running)
	if name != "high" {
		t.Fatalf("first served %s, want high", name)
	}
	// Highs keep arriving; low waits at most 3 grants in all.
	served := []string{name}
	for len(served) < 8 {
		b.wait(t.Context(), fmt.Sprintf("high%d", len(served)), "H", 0)
		name, running = b.serve(running)
		served = append(served, name)
		if name == "low" {
			break
		}
	}
	if served[len(served)-1] != "low" || len(served) != 4 {
		t.Fatalf("served %v: low should come 4th (after 3 higher grants)", served)
	}
	for b.r.q.n.Load() > 0 {
		_, running = b.serve(running)
	}
	running.done(nil)
}

// TestQueueLeaveAndRefuse: a waiter that leaves is gone at once and takes
// nothing; a full queue and an exhausted wait are capacityErrors whose
// Retry-After follows the observed drain rate.
func TestQueueLeaveAndRefuse(t *testing.T) {
	b := newQueueBench(t, QueueOptions{MaxDepth: 2, MaxWait: 50 * time.Millisecond})
	running := b.take()
	ctx, cancel := context.WithCancel(t.Context())
	b.wait(ctx, "leaver", "A", 1)
	cancel()
	q := <-b.out
	if !errors.Is(q.err, context.Canceled) || q.l != nil || b.r.q.n.Load() != 0 {
		t.Fatalf("leaver: %v %v, %d still queued", q.l, q.err, b.r.q.n.Load())
	}

	// Drain at 10 a second (fake clock): 2 waiting + this one → 1 s.
	long := context.WithoutCancel(t.Context())
	b.r.q.opts.MaxWait = time.Minute
	for i := range 4 {
		b.wait(long, fmt.Sprintf("w%d", i), "A", 1)
		_, running = b.serve(running)
	}
	b.wait(long, "q1", "A", 1)
	b.wait(long, "q2", "A", 1)
	_, err := b.r.acquire(t.Context(), "m", nil, who{tenant: "B", tier: 1}, 0)
	ce, ok := errors.AsType[*capacityError](err)
	if !ok || !errors.Is(err, errQueueFull) {
		t.Fatalf("full queue: %v", err)
	}
	// 4 grants in 0.3 s of fake time: 13.3/s; 3 ahead → 1 s.
	if ce.retryAfter != time.Second {
		t.Errorf("Retry-After %v, want 1s", ce.retryAfter)
	}
	if e := capacityExceeded(ce); e.Status != 429 || e.Code != "capacity_exceeded" || e.Header.Get("Retry-After") != "1" {
		t.Errorf("answer %+v", e)
	}

	// The wait runs out (real timer, the request's own bound).
	for b.r.q.n.Load() > 0 {
		_, running = b.serve(running)
	}
	_, err = b.r.acquire(t.Context(), "m", nil, who{tenant: "B", tier: 1}, 20*time.Millisecond)
	if !errors.Is(err, errQueueWait) {
		t.Fatalf("wait: %v", err)
	}
	running.done(nil)
	if n := b.m.outstanding.Load(); n != 0 || b.r.q.n.Load() != 0 {
		t.Fatalf("outstanding %d, queued %d after all", n, b.r.q.n.Load())
	}
}

// TestQueueNoBackend: with no capped backend there is nothing to wait for.
func TestQueueNoBackend(t *testing.T) {
	r := testRouter(mem("free", 1, 0))
	r.q = newQueue(QueueOptions{}, nil)
	l, err := r.acquire(t.Context(), "other", nil, who{}, 0)
	if l != nil || err != nil {
		t.Fatalf("unknown model: %v %v", l, err)
	}
}
