package serve

import (
	"context"
	"errors"
	"testing"
	"time"
)

// waitBatch queues a batch line of tenant and returns once it waits.
func (b *queueBench) waitBatch(ctx context.Context, name, tenant string) {
	b.t.Helper()
	before := b.r.q.n.Load()
	go func() {
		l, err := b.r.acquire(ctx, "m", nil, batchWho(who{tenant: tenant, tier: 1, weight: 1}), 0)
		b.out <- queued{name: name, l: l, err: err}
	}()
	for b.r.q.n.Load() == before {
		time.Sleep(time.Millisecond)
	}
}

// TestQueueBatchBelowInteractive: with the one slot busy, batch lines that
// arrived first are served after every interactive request, low included,
// however many grants pass them (the anti-starvation bound is 1 here, so
// an interactive low request is promoted; a batch line never is).
func TestQueueBatchBelowInteractive(t *testing.T) {
	b := newQueueBench(t, QueueOptions{StarvationLimit: 1})
	running := b.take()
	b.waitBatch(t.Context(), "batch1", "bt")
	b.waitBatch(t.Context(), "batch2", "bt2")
	b.wait(t.Context(), "low1", "a", 2)
	b.wait(t.Context(), "normal1", "b", 1)
	b.wait(t.Context(), "high1", "c", 0)
	b.wait(t.Context(), "normal2", "d", 1)
	var got []string
	for range 6 {
		var name string
		name, running = b.serve(running)
		got = append(got, name)
		if name == "normal1" {
			// Arriving while batch lines wait, it still goes before them.
			b.wait(t.Context(), "low2", "e", 2)
		}
	}
	name, running := b.serve(running)
	got = append(got, name)
	want := []string{"high1", "low1", "normal1", "normal2", "low2", "batch1", "batch2"}
	if len(got) != len(want) {
		t.Fatalf("order %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("order %v, want %v", got, want)
		}
	}
	running.done(nil)
	b.r.q.mu.Lock()
	defer b.r.q.mu.Unlock()
	if n := len(b.r.q.batch.held) + len(b.r.q.batch.waiting); n != 0 {
		t.Fatalf("batch counts left: held %v waiting %v", b.r.q.batch.held, b.r.q.batch.waiting)
	}
}

// TestQueueBatchShare: a 4-slot backend with batchShare 0.5 lets batch
// lines hold 2 slots; a third line waits though slots are free, which an
// interactive request takes at once; the third line gets the slot a
// batch line frees.
func TestQueueBatchShare(t *testing.T) {
	m := mem("gpu", 1, 4)
	r := testRouter(m)
	r.q = newQueue(QueueOptions{BatchShare: 0.5}, &fakeClock{t: time.Unix(1_700_000_000, 0)})
	bw := batchWho(who{tenant: "bt", tier: 1, weight: 1})
	var lines []*lease
	for range 2 {
		l, err := r.acquire(t.Context(), "m", nil, bw, 0)
		if err != nil || l == nil {
			t.Fatalf("batch line within the share: %v %v", l, err)
		}
		lines = append(lines, l)
	}
	third := make(chan *lease, 1)
	go func() {
		l, err := r.acquire(t.Context(), "m", nil, bw, 0)
		if err != nil {
			t.Errorf("third line: %v", err)
		}
		third <- l
	}()
	for r.q.n.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	for i := range 2 {
		l, err := r.acquire(t.Context(), "m", nil, who{tenant: "a", tier: 2, weight: 1}, 0)
		if err != nil || l == nil {
			t.Fatalf("interactive %d with slots free: %v %v", i, l, err)
		}
		defer l.done(nil)
	}
	if got := m.outstanding.Load(); got != 4 {
		t.Fatalf("outstanding %d, want 4 (2 batch, 2 interactive)", got)
	}
	select {
	case <-third:
		t.Fatal("a third batch line got a slot over the share")
	default:
	}
	lines[0].done(nil)
	l := <-third
	if l == nil {
		t.Fatal("third line: no lease")
	}
	r.q.mu.Lock()
	held := r.q.batch.held["m"]
	r.q.mu.Unlock()
	if held != 2 {
		t.Fatalf("batch lines hold %d slots, want 2", held)
	}
	l.done(nil)
	lines[1].done(nil)
}

// TestQueueBatchWaits: a batch line has no maxWait and no depth limit: with
// the slot busy far past queue.maxWait it still waits (an interactive
// request is refused), and gets the slot when it frees; its wait ends only
// with its context, without a capacity refusal.
func TestQueueBatchWaits(t *testing.T) {
	b := newQueueBench(t, QueueOptions{MaxWait: time.Nanosecond, MaxDepth: 1})
	running := b.take()
	b.waitBatch(t.Context(), "batch1", "bt")
	_, err := b.r.acquire(t.Context(), "m", nil, who{tenant: "a", tier: 1, weight: 1}, 0)
	if ce, ok := errors.AsType[*capacityError](err); !ok || !errors.Is(ce, errQueueWait) {
		t.Fatalf("interactive past maxWait: %v, want a wait refusal", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	b.waitBatch(ctx, "batch2", "bt") // beyond maxDepth: batch lines do not count
	cancel()
	q := <-b.out
	if q.name != "batch2" || !errors.Is(q.err, context.Canceled) {
		t.Fatalf("%s: lease %v err %v, want batch2 ended by its context", q.name, q.l, q.err)
	}
	if _, ok := errors.AsType[*capacityError](q.err); ok {
		t.Fatal("a batch line's wait ended in a capacity refusal")
	}
	name, l := b.serve(running)
	if name != "batch1" {
		t.Fatalf("got %s, want batch1", name)
	}
	l.done(nil)
}
