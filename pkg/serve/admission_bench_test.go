package serve

import (
	"testing"
	"time"
)

// BenchmarkQueueOverhead measures what the admission queue adds to a
// request when nothing waits: taking and ending a backend lease through
// the queue (acquire, done with its drain check) against the same router
// with no queue, in the same run, on one capped backend. It ignores b.N
// and runs 10 alternating rounds of 20,000 leases per side, keeping each
// side's fastest (`make bench`, -benchtime 1x).
func BenchmarkQueueOverhead(b *testing.B) {
	const n = 20_000
	bare := testRouter(mem("gpu", 1, 4))
	queued := testRouter(mem("gpu", 1, 4))
	queued.q = newQueue(QueueOptions{}, nil)
	who := who{tenant: "t", tier: 1, weight: 1}
	run := func(r *router) time.Duration {
		start := time.Now()
		for range n {
			l, err := r.acquire(b.Context(), "m", nil, who, 0)
			if err != nil || l == nil {
				b.Fatalf("lease: %v %v", l, err)
			}
			l.done(nil)
		}
		return time.Since(start)
	}
	// Rounds alternate between the two sides and each side keeps its
	// fastest round, so load from elsewhere on the machine hits both alike.
	const rounds = 10
	best := func(cur, d time.Duration) time.Duration {
		if cur == 0 || d < cur {
			return d
		}
		return cur
	}
	var base, with time.Duration
	for range rounds {
		base = best(base, run(bare))
		with = best(with, run(queued))
	}
	perBase := float64(base.Nanoseconds()) / n
	perQueue := float64(with.Nanoseconds()) / n
	b.ReportMetric(perBase, "ns/lease-no-queue")
	b.ReportMetric(perQueue, "ns/lease-queue")
	b.ReportMetric(perQueue-perBase, "ns/queue-overhead")
	b.Logf("lease+done: %.0f ns without a queue, %.0f ns through the idle queue: %.0f ns added per request (goal ≤ 5000)",
		perBase, perQueue, perQueue-perBase)
}
