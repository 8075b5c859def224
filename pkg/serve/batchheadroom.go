package serve

// The batch headroom (docs/routing.md, "Batch lines"): a batch line may
// take a free slot only if, once it has it, at least h of the model's
// slots stay free for interactive requests that arrive while it runs (it
// is not preempted). This is trunk reservation: unlike a fixed share it
// lets the batch fill whatever interactive traffic leaves, and backs off
// as that traffic rises, because lines that end are not replaced while
// fewer than h+1 slots are free.
//
// With queue.batchHeadroom: auto, h follows the interactive load: with A
// the interactive requests in service, time-averaged over the last
// headroomWindow (Little's law: arrival rate × service time, observed by
// the queue itself), h = round(A^¼). The headroom has to absorb the rise
// of interactive traffic only until the next batch line ends, a time that
// shrinks as more lines run, so it grows far slower than the spread of A
// (√A). The exponent is a fit to a deterministic simulation of the queue
// at 80 % load (BenchmarkBatchPolicySim, docs/benchmarks.md): the h that
// keeps the interactive p50 within 5 % while the batch takes the most of
// the slot time left is 1 at A ≈ 3 (4 slots), 2 at 13 (16 slots), 3 at
// 51 (64 slots), 4 at 205 (256 slots).

import (
	"math"
	"time"
)

const (
	// BatchHeadroomAuto (the default) sizes the headroom from the observed
	// interactive load; BatchHeadroomNone keeps none (only batchShare).
	BatchHeadroomAuto = 0
	BatchHeadroomNone = -1

	headroomWindow = 10 * time.Second
)

// autoHeadroom is the slots kept free for an interactive load of avg
// requests in service on average.
func autoHeadroom(avg float64) int {
	if avg <= 0 {
		return 0
	}
	return int(math.Round(math.Pow(avg, 0.25)))
}

// headroomAllows is the policy: may a batch line take one of free slots
// of total, keeping h free? Always on a model with nothing in flight, so a
// waiting line is never stuck with no release left to wake it.
func headroomAllows(total, free int64, h int) bool {
	if free == total {
		return free > 0
	}
	return free-1 >= int64(h)
}

// occupancy is a model's interactive requests in service and their
// exponentially weighted time average (q.mu held for all).
type occupancy struct {
	n   int
	avg float64
	at  time.Time
}

// advance brings avg up to now.
func (o *occupancy) advance(now time.Time) {
	if o.at.IsZero() {
		o.at = now
		return
	}
	dt := now.Sub(o.at)
	if dt <= 0 {
		return
	}
	w := math.Exp(-dt.Seconds() / headroomWindow.Seconds())
	o.avg = o.avg*w + float64(o.n)*(1-w)
	o.at = now
}

// holdInteractive counts l as an interactive request of model in service
// until l is done, for the auto headroom (q.mu held).
func (q *queue) holdInteractive(l *lease, model string) {
	if q.opts.BatchHeadroom != BatchHeadroomAuto {
		return
	}
	o := q.occ[model]
	if o == nil {
		o = &occupancy{}
		q.occ[model] = o
	}
	o.advance(q.clock.Now())
	o.n++
	l.occ = o // lease.done calls q.interactiveDone: no closure per request
}

// interactiveDone ends the count holdInteractive started for o.
func (q *queue) interactiveDone(o *occupancy) {
	q.mu.Lock()
	o.advance(q.clock.Now())
	o.n--
	q.mu.Unlock()
}

// headroom is the slots a batch line of model must leave free (q.mu held).
func (q *queue) headroom(model string) int {
	switch h := q.opts.BatchHeadroom; {
	case h == BatchHeadroomNone:
		return 0
	case h > 0:
		return h
	}
	o := q.occ[model]
	if o == nil {
		return 0
	}
	o.advance(q.clock.Now())
	return autoHeadroom(o.avg)
}

// batchHeadroomOK reports whether a batch line of model leaves the
// headroom free (q.mu held).
func (r *router) batchHeadroomOK(model string) bool {
	h := r.q.headroom(model)
	if h == 0 {
		return true
	}
	total, busy, capped := r.slots(model)
	if !capped {
		return true
	}
	return headroomAllows(total, max(total-busy, 0), h)
}
