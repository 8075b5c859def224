package serve

// The batch tier of the admission queue (docs/routing.md, "Batch lines"):
// a line of the Batches API waits below every interactive tier and is
// never promoted over them by the anti-starvation bound, so an interactive
// request never waits behind a batch line; a line that has its slot runs
// to its end (no preemption). To keep room for interactive traffic that
// arrives while lines run, batch lines hold at most
// max(1, ⌊queue.batchShare × Σ maxConcurrency⌋) of a model's backend
// slots at once (the healthy backends'; a model with a backend without
// maxConcurrency has no cap), and leave queue.batchHeadroom slots free
// (batchheadroom.go). A batch line has no maxWait and no depth
// limit: it waits as long as the context it waits under (the batch's).

import (
	"math"
)

// priorityBatch is the internal tier of batch lines, below low; it cannot
// be configured in queue.priorities.
const priorityBatch = "batch"

// tierBatch is priorityBatch's index in tierNames.
const tierBatch = len(tierNames) - 1

// batchWho places a batch line of p (whoIs's answer) in the batch tier;
// the tenant's weight still shares the tier fairly between tenants.
func batchWho(w who) who {
	w.tier, w.priority = tierBatch, priorityBatch
	return w
}

// batchCounts are the batch lines per model, waiting and holding a slot
// (q.mu held for both).
type batchCounts struct {
	waiting map[string]int
	held    map[string]int
}

func newBatchCounts() batchCounts {
	return batchCounts{waiting: map[string]int{}, held: map[string]int{}}
}

func (b batchCounts) enqueued(wt *waiter) {
	if wt.tier == tierBatch {
		b.waiting[wt.model]++
	}
}

func (b batchCounts) removed(wt *waiter) {
	if wt.tier != tierBatch {
		return
	}
	if b.waiting[wt.model]--; b.waiting[wt.model] <= 0 {
		delete(b.waiting, wt.model)
	}
}

// holdBatch counts l as a batch line's slot of model until l is done
// (q.mu held).
func (q *queue) holdBatch(l *lease, model string) {
	q.batch.held[model]++
	l.onDone = func() {
		q.mu.Lock()
		if q.batch.held[model]--; q.batch.held[model] <= 0 {
			delete(q.batch.held, model)
		}
		q.mu.Unlock()
	}
}

// batchRoom reports whether one more batch line of model stays within the
// batch share of its slots and leaves the headroom free (q.mu held).
func (r *router) batchRoom(model string) bool {
	q := r.q
	return q.batch.held[model] < r.batchCap(model) && r.batchHeadroomOK(model)
}

// batchCap is how many of model's slots batch lines may hold.
func (r *router) batchCap(model string) int {
	total, _, capped := r.slots(model)
	if !capped {
		return math.MaxInt // an uncapped backend: no share to keep
	}
	return max(1, int(math.Floor(r.q.opts.BatchShare*float64(total))))
}

// slots sums the maxConcurrency and the requests in flight of model's
// healthy backends; capped is false when one of them has no
// maxConcurrency (its slots cannot be counted).
func (r *router) slots(model string) (total, busy int64, capped bool) {
	r.mu.RLock()
	cands := r.byModel[model]
	r.mu.RUnlock()
	for _, m := range cands {
		m.mu.Lock()
		healthy := m.healthy
		m.mu.Unlock()
		if !healthy {
			continue
		}
		if m.maxConcurrency <= 0 {
			return 0, 0, false
		}
		total += m.maxConcurrency
		busy += min(m.outstanding.Load(), m.maxConcurrency)
	}
	return total, busy, true
}
