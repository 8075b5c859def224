package serve

import (
	"testing"
	"time"
)

func TestAutoHeadroom(t *testing.T) {
	for _, c := range []struct {
		avg  float64
		want int
	}{{0, 0}, {0.05, 0}, {0.8, 1}, {3.2, 1}, {12.8, 2}, {51.2, 3}, {204.8, 4}} {
		if got := autoHeadroom(c.avg); got != c.want {
			t.Errorf("autoHeadroom(%v) = %d, want %d", c.avg, got, c.want)
		}
	}
}

func TestHeadroomAllows(t *testing.T) {
	for _, c := range []struct {
		total, free int64
		h           int
		want        bool
	}{
		{16, 4, 2, true},   // 3 stay free
		{16, 3, 2, true},   // 2 stay free
		{16, 2, 2, false},  // only 1 would
		{4, 4, 8, true},    // nothing in flight: never stuck
		{4, 3, 8, false},   // else the headroom holds
		{0, 0, 0, false},   // no slot at all
		{1, 1, 1, true},    // a one-slot backend, idle
		{16, 0, 0, false},  // no free slot
		{16, 16, 15, true}, // idle
	} {
		if got := headroomAllows(c.total, c.free, c.h); got != c.want {
			t.Errorf("headroomAllows(%d, %d, %d) = %v, want %v", c.total, c.free, c.h, got, c.want)
		}
	}
}

// headroomBench is a 16-slot backend (batchShare 1, so only the headroom
// limits batch lines) under a fake clock.
func headroomBench(t *testing.T, headroom int) (*router, *member, *fakeClock) {
	t.Helper()
	m := mem("gpu", 1, 16)
	r := testRouter(m)
	c := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	r.q = newQueue(QueueOptions{BatchShare: 1, BatchHeadroom: headroom}, c)
	return r, m, c
}

// takeN leases n slots, batch lines or interactive requests, each of
// which must get one at once.
func takeN(t *testing.T, r *router, n int, w who) []*lease {
	t.Helper()
	var ls []*lease
	for i := range n {
		l, err := r.acquire(t.Context(), "m", nil, w, 0)
		if err != nil || l == nil {
			t.Fatalf("%s %d of %d: %v %v, want a slot at once", w.priority, i+1, n, l, err)
		}
		ls = append(ls, l)
	}
	return ls
}

// batchWaiting queues a batch line and returns the channel its lease
// comes on, once it waits.
func batchWaiting(t *testing.T, r *router) <-chan *lease {
	t.Helper()
	before := r.q.n.Load()
	ch := make(chan *lease, 1)
	go func() {
		l, err := r.acquire(t.Context(), "m", nil, batchWho(who{tenant: "bt", weight: 1}), 0)
		if err != nil {
			t.Errorf("batch line: %v", err)
		}
		ch <- l
	}()
	for r.q.n.Load() == before {
		time.Sleep(time.Millisecond)
	}
	return ch
}

func doneAll(ls []*lease) {
	for _, l := range ls {
		l.done(nil)
	}
}

// TestBatchHeadroomAuto: 12 interactive requests in service for 100 s (ten
// averaging windows) make the auto headroom round(12^¼) = 2: batch
// lines take the free slots until 2 would be left, the next one waits
// while interactive requests still get slots at once, and it gets a slot
// when one frees with 3 free. Once interactive traffic has stopped for a
// long time the headroom falls to 0 and batch lines fill the backend.
func TestBatchHeadroomAuto(t *testing.T) {
	r, m, c := headroomBench(t, BatchHeadroomAuto)
	inter := who{tenant: "a", tier: 1, weight: 1, priority: PriorityNormal}
	bw := batchWho(who{tenant: "bt", weight: 1})
	held := takeN(t, r, 12, inter)
	c.t = c.t.Add(100 * time.Second)
	r.q.mu.Lock()
	h := r.q.headroom("m")
	r.q.mu.Unlock()
	if h != 2 {
		t.Fatalf("headroom %d after 12 interactive requests in service, want 2", h)
	}
	lines := takeN(t, r, 2, bw) // 4 free → 3, 3 → 2
	third := batchWaiting(t, r)
	extra := takeN(t, r, 2, inter) // the headroom is interactive's
	if got := m.outstanding.Load(); got != 16 {
		t.Fatalf("outstanding %d, want 16", got)
	}
	doneAll(extra)         // 2 free: a line would leave 1
	if r.q.n.Load() != 1 { // a grant takes the waiter out at once
		t.Fatal("a batch line took a slot that leaves less than the headroom free")
	}
	held[0].done(nil) // 3 free: a line leaves 2
	l := <-third
	if l == nil {
		t.Fatal("third line: no lease")
	}
	lines = append(lines, l)
	doneAll(held[1:])
	doneAll(lines)

	c.t = c.t.Add(10 * time.Minute) // interactive traffic long gone
	lines = takeN(t, r, 16, bw)
	r.q.mu.Lock()
	n := r.q.batch.held["m"]
	r.q.mu.Unlock()
	if n != 16 {
		t.Fatalf("batch lines hold %d slots of an idle backend, want 16", n)
	}
	doneAll(lines)
}

// TestBatchHeadroomFixed: batchHeadroom 15 on 16 slots lets a batch line
// start only on an idle backend (never stuck), and no second one beside
// it; BatchHeadroomNone leaves only the share.
func TestBatchHeadroomFixed(t *testing.T) {
	r, _, _ := headroomBench(t, 15)
	bw := batchWho(who{tenant: "bt", weight: 1})
	first := takeN(t, r, 1, bw)
	second := batchWaiting(t, r)
	first[0].done(nil) // idle again: the waiting line starts
	if l := <-second; l == nil {
		t.Fatal("second line: no lease")
	} else {
		l.done(nil)
	}

	r, _, c := headroomBench(t, BatchHeadroomNone)
	inter := who{tenant: "a", tier: 1, weight: 1, priority: PriorityNormal}
	held := takeN(t, r, 12, inter)
	c.t = c.t.Add(100 * time.Second)
	lines := takeN(t, r, 4, bw) // every free slot: no headroom
	doneAll(held)
	doneAll(lines)
}
