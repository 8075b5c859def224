package serve

// The admission queue (docs/routing.md): a request whose model's backends
// are all at maxConcurrency waits for a slot instead of failing. Waiters
// are served strictly by priority tier, with an anti-starvation bound, and
// within a tier by start-time fair queuing across tenants, so one tenant's
// backlog delays another tenant's request by at most one service slot. A
// freed slot is handed to the chosen waiter directly (no barging). The
// queue is per process: replicas each keep their own.
//
// The queue sits before the rate limiter and the ledger: a request takes
// its limiter slot and hold only once it leaves the queue with a lease, so
// waiting costs nothing and a client that leaves while queued was never
// forwarded nor charged.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Priority tiers, strict between each other (modulo StarvationLimit).
const (
	PriorityHigh   = "high"
	PriorityNormal = "normal"
	PriorityLow    = "low"
)

var tierNames = [...]string{PriorityHigh, PriorityNormal, PriorityLow, priorityBatch}

// tierOf maps a priority name to its tier; "" is normal.
func tierOf(p string) (int, bool) {
	switch p {
	case PriorityHigh:
		return 0, true
	case PriorityNormal, "":
		return 1, true
	case PriorityLow:
		return 2, true
	}
	return 1, false
}

// QueueOptions configure the admission queue (the `queue:` config section).
type QueueOptions struct {
	// MaxWait is the longest a request waits for a slot (default 30s);
	// negative turns the queue off (a full backend answers 503 at once).
	MaxWait time.Duration
	// MaxDepth bounds the requests waiting per model (default 256).
	MaxDepth int
	// Priorities map a key id, a tenant id or a tenant name to high,
	// normal or low; the key's entry wins over its tenant's.
	Priorities map[string]string
	// Weights are tenants' shares within a tier (by id or name; default 1).
	Weights map[string]int
	// StarvationLimit: a waiting request is passed over by at most this
	// many grants to higher tiers, then it is served in arrival order
	// with the highest tier (default 8).
	StarvationLimit int
	// BatchShare caps the share of a model's backend slots batch lines
	// may hold (batchqueue.go; default 0.5).
	BatchShare float64
	// BatchHeadroom is how many slots a batch line must leave free
	// (batchheadroom.go): BatchHeadroomAuto (0, the default) sizes it from
	// the observed interactive load, BatchHeadroomNone keeps none, N > 0
	// keeps N.
	BatchHeadroom int
}

// clock is the queue's time, a fake one in tests.
type clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// waiter is one queued request.
type waiter struct {
	model  string
	tried  map[*member]bool
	tenant string
	tier   int
	start  float64 // fair-queuing start tag within its tier
	seq    uint64  // arrival order
	passed int     // grants to higher tiers while it waited
	since  time.Time
	ch     chan *lease // the granted lease (buffered)
	gone   bool        // granted or left
}

// tierState is one tier's virtual time and each tenant's last finish tag.
type tierState struct {
	vt     float64
	finish map[string]float64
	queued map[string]int
}

// queue is the router's admission queue.
type queue struct {
	opts  QueueOptions
	clock clock
	m     *queueMetrics // nil: not measured

	n atomic.Int64 // waiters, read without mu by drain

	mu      sync.Mutex
	waiters []*waiter
	depth   map[string]int // waiting per model
	tiers   [len(tierNames)]tierState
	batch   batchCounts           // batch lines waiting and holding slots (batchqueue.go)
	occ     map[string]*occupancy // interactive requests in service (batchheadroom.go)
	seq     uint64
	drained map[string]*drainRate
}

func newQueue(opts QueueOptions, c clock) *queue {
	if opts.MaxWait == 0 {
		opts.MaxWait = 30 * time.Second
	}
	if opts.MaxDepth <= 0 {
		opts.MaxDepth = 256
	}
	if opts.StarvationLimit <= 0 {
		opts.StarvationLimit = 8
	}
	if opts.BatchShare <= 0 || opts.BatchShare > 1 {
		opts.BatchShare = 0.5
	}
	if c == nil {
		c = realClock{}
	}
	q := &queue{opts: opts, clock: c, depth: map[string]int{}, drained: map[string]*drainRate{}, batch: newBatchCounts(),
		occ: map[string]*occupancy{}}
	for i := range q.tiers {
		q.tiers[i] = tierState{finish: map[string]float64{}, queued: map[string]int{}}
	}
	return q
}

// errQueueFull and errQueueWait are the two refusals of the queue.
var (
	errQueueFull = errors.New("queue full")
	errQueueWait = errors.New("queue wait exceeded")
)

// capacityError is a refusal by the queue, with the wait to suggest.
type capacityError struct {
	model      string
	cause      error
	retryAfter time.Duration
}

func (e *capacityError) Error() string { return fmt.Sprintf("model %s: %v", e.model, e.cause) }
func (e *capacityError) Unwrap() error { return e.cause }

// who is the request's place in the fairness order.
type who struct {
	tenant   string
	tier     int
	weight   int
	priority string
}

// acquire leases a backend for model, waiting in the queue while every
// candidate is at its maxConcurrency. It returns nil, nil when no backend
// can serve the model at all (not a capacity question), a *capacityError
// when the queue is full or the wait ran out, or ctx's error when the
// client left while queued.
func (r *router) acquire(ctx context.Context, model string, tried map[*member]bool, w who, maxWait time.Duration) (*lease, error) {
	q := r.q
	if q == nil {
		return r.lease(model, tried), nil
	}
	batch := w.tier == tierBatch
	q.mu.Lock()
	if q.depth[model] == 0 && (!batch || r.batchRoom(model)) {
		// Nobody waits for this model: a free slot is this request's.
		if l := r.lease(model, tried); l != nil {
			if batch {
				q.holdBatch(l, model)
			} else {
				q.holdInteractive(l, model)
			}
			q.mu.Unlock()
			return l, nil
		}
	}
	if !r.capped(model, tried) {
		q.mu.Unlock()
		return nil, nil
	}
	if !batch && q.depth[model]-q.batch.waiting[model] >= q.opts.MaxDepth {
		e := &capacityError{model: model, cause: errQueueFull, retryAfter: q.retryAfter(model)}
		q.mu.Unlock()
		q.refused(model, "full")
		return nil, e
	}
	wt := q.enqueue(model, tried, w)
	// A slot freed since the look above was released before the waiter
	// was counted (so drain skipped it): serve it now.
	r.drainLocked()
	q.mu.Unlock()

	if maxWait <= 0 || maxWait > q.opts.MaxWait {
		maxWait = q.opts.MaxWait
	}
	var expired <-chan time.Time // a batch line waits as long as its ctx
	if !batch {
		timer := time.NewTimer(maxWait)
		defer timer.Stop()
		expired = timer.C
	}
	var cause error
	select {
	case l := <-wt.ch:
		return l, nil
	case <-ctx.Done():
		cause = ctx.Err()
	case <-expired:
		cause = errQueueWait
	}
	q.mu.Lock()
	if !wt.gone {
		q.remove(wt)
		ra := q.retryAfter(model)
		q.mu.Unlock()
		q.observeWait(wt, tierNames[wt.tier])
		if cause == errQueueWait {
			q.refused(model, "wait")
			return nil, &capacityError{model: model, cause: errQueueWait, retryAfter: ra}
		}
		return nil, cause
	}
	q.mu.Unlock()
	// Granted as it gave up: the slot goes back (to the next waiter).
	(<-wt.ch).done(nil)
	if cause == errQueueWait {
		return nil, &capacityError{model: model, cause: errQueueWait, retryAfter: time.Second}
	}
	return nil, cause
}

// capped reports whether some healthy backend that could serve model has
// a maxConcurrency, so that waiting for one of its slots makes sense.
func (r *router) capped(model string, tried map[*member]bool) bool {
	r.mu.RLock()
	cands := r.byModel[model]
	r.mu.RUnlock()
	for _, m := range cands {
		if tried[m] || m.maxConcurrency <= 0 {
			continue
		}
		m.mu.Lock()
		healthy := m.healthy
		m.mu.Unlock()
		if healthy {
			return true
		}
	}
	return false
}

// enqueue adds a waiter (q.mu held).
func (q *queue) enqueue(model string, tried map[*member]bool, w who) *waiter {
	ts := &q.tiers[w.tier]
	start := max(ts.vt, ts.finish[w.tenant])
	weight := max(w.weight, 1)
	ts.finish[w.tenant] = start + 1/float64(weight)
	ts.queued[w.tenant]++
	q.seq++
	wt := &waiter{model: model, tried: tried, tenant: w.tenant, tier: w.tier, start: start, seq: q.seq,
		since: q.clock.Now(), ch: make(chan *lease, 1)}
	q.waiters = append(q.waiters, wt)
	q.n.Add(1)
	q.depth[model]++
	q.batch.enqueued(wt)
	if q.m != nil {
		q.m.depth.WithLabelValues(model, tierNames[w.tier]).Inc()
	}
	return wt
}

// remove takes wt out of the queue (q.mu held).
func (q *queue) remove(wt *waiter) {
	wt.gone = true
	for i, o := range q.waiters {
		if o == wt {
			q.waiters = append(q.waiters[:i], q.waiters[i+1:]...)
			break
		}
	}
	q.n.Add(-1)
	q.depth[wt.model]--
	q.batch.removed(wt)
	if q.depth[wt.model] == 0 {
		delete(q.depth, wt.model)
	}
	ts := &q.tiers[wt.tier]
	if ts.queued[wt.tenant]--; ts.queued[wt.tenant] == 0 {
		// Nothing of the tenant's waits: its tags need not be kept.
		delete(ts.queued, wt.tenant)
		delete(ts.finish, wt.tenant)
	}
	if q.m != nil {
		q.m.depth.WithLabelValues(wt.model, tierNames[wt.tier]).Dec()
	}
}

// before orders waiters: starved ones first by arrival, then by tier,
// then by start tag, then by arrival.
func (q *queue) before(a, b *waiter) bool {
	sa, sb := a.passed >= q.opts.StarvationLimit, b.passed >= q.opts.StarvationLimit
	if sa != sb {
		return sa
	}
	if sa {
		return a.seq < b.seq
	}
	if a.tier != b.tier {
		return a.tier < b.tier
	}
	if a.start != b.start {
		return a.start < b.start
	}
	return a.seq < b.seq
}

// drain hands free slots to waiters in order, until no waiter's model has
// a free slot. Called whenever a slot frees or backends change; the
// release that frees a slot lowers outstanding before it looks at n, and
// acquire counts its waiter in n before it looks for a slot, so no free
// slot is left unseen by both.
func (r *router) drain() {
	q := r.q
	if q == nil || q.n.Load() == 0 {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	r.drainLocked()
}

// drainLocked is drain with q.mu held.
func (r *router) drainLocked() {
	q := r.q
	full := map[string]bool{}      // models found without a free slot this round
	batchFull := map[string]bool{} // models whose batch share is taken
	for len(q.waiters) > 0 {
		var next *waiter
		for _, wt := range q.waiters {
			if full[wt.model] || wt.tier == tierBatch && batchFull[wt.model] {
				continue
			}
			if next == nil || q.before(wt, next) {
				next = wt
			}
		}
		if next == nil {
			return
		}
		if next.tier == tierBatch && !r.batchRoom(next.model) {
			batchFull[next.model] = true
			continue
		}
		l := r.lease(next.model, next.tried)
		if l == nil {
			full[next.model] = true
			continue
		}
		if next.tier == tierBatch {
			q.holdBatch(l, next.model)
		} else {
			q.holdInteractive(l, next.model)
		}
		q.grant(next, l)
	}
}

// grant gives l to wt (q.mu held).
func (q *queue) grant(wt *waiter, l *lease) {
	ts := &q.tiers[wt.tier]
	ts.vt = max(ts.vt, wt.start)
	for _, o := range q.waiters {
		if o.tier > wt.tier && o.tier != tierBatch && wt.passed < q.opts.StarvationLimit {
			o.passed++
		}
	}
	q.remove(wt)
	now := q.clock.Now()
	d := q.drained[wt.model]
	if d == nil {
		d = &drainRate{}
		q.drained[wt.model] = d
	}
	d.add(now)
	if q.m != nil {
		q.m.wait.WithLabelValues(wt.model, tierNames[wt.tier]).Observe(now.Sub(wt.since).Seconds())
	}
	wt.ch <- l
}

// observeWait records the wait of a request that left without a slot.
func (q *queue) observeWait(wt *waiter, tier string) {
	if q.m != nil {
		q.m.wait.WithLabelValues(wt.model, tier).Observe(q.clock.Now().Sub(wt.since).Seconds())
	}
}

func (q *queue) refused(model, reason string) {
	if q.m != nil {
		q.m.refused.WithLabelValues(model, reason).Inc()
	}
}

// drainRate keeps the times of the last grants of a model's queue.
type drainRate struct {
	times [32]time.Time
	n     int
}

func (d *drainRate) add(t time.Time) {
	d.times[d.n%len(d.times)] = t
	d.n++
}

// perSecond is the observed grants per second, 0 when unknown.
func (d *drainRate) perSecond(now time.Time) float64 {
	k := min(d.n, len(d.times))
	if k < 2 {
		return 0
	}
	oldest := d.times[(d.n-k)%len(d.times)]
	span := now.Sub(oldest).Seconds()
	if span <= 0 {
		return 0
	}
	return float64(k) / span
}

// retryAfter estimates when a request of model would get a slot: the
// queue ahead of it over the observed drain rate, between 1 s and MaxWait
// (q.mu held).
func (q *queue) retryAfter(model string) time.Duration {
	upper := max(q.opts.MaxWait, time.Second)
	d := q.drained[model]
	if d == nil {
		return time.Second
	}
	rate := d.perSecond(q.clock.Now())
	if rate <= 0 {
		return time.Second
	}
	secs := math.Ceil(float64(q.depth[model]+1) / rate)
	return min(max(time.Duration(secs)*time.Second, time.Second), upper)
}

// capacityExceeded is the 429 answer to a queue refusal.
func capacityExceeded(e *capacityError) *apiError {
	msg := fmt.Sprintf("the model %q is at capacity and its queue is full; retry later", e.model)
	if errors.Is(e, errQueueWait) {
		msg = fmt.Sprintf("the model %q stayed at capacity for as long as this request could wait; retry later", e.model)
	}
	secs := int64((e.retryAfter + time.Second - 1) / time.Second)
	return &apiError{Status: http.StatusTooManyRequests, Type: typeRateLimit, Code: "capacity_exceeded", Message: msg,
		Header: http.Header{"Retry-After": {strconv.FormatInt(max(secs, 1), 10)}}}
}

// queueMetrics are the queue's series (docs/metrics.md).
type queueMetrics struct {
	depth     *prometheus.GaugeVec
	wait      *prometheus.HistogramVec
	refused   *prometheus.CounterVec
	fallbacks *prometheus.CounterVec
}

func newQueueMetrics(reg prometheus.Registerer) (*queueMetrics, error) {
	m := &queueMetrics{
		depth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "llmctl_queue_depth",
			Help: "Requests waiting for a backend slot, by model and priority.",
		}, []string{"model", "priority"}),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "llmctl_queue_wait_seconds",
			Help:    "Time requests waited in the admission queue, granted or not.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"model", "priority"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "llmctl_queue_refused_total",
			Help: "Requests refused 429 capacity_exceeded, by model and reason (full, wait).",
		}, []string{"model", "reason"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "llmctl_fallbacks_total",
			Help: "Requests answered by a fallback model, by the model asked for and the one that answered.",
		}, []string{"from", "to"}),
	}
	for _, c := range []prometheus.Collector{m.depth, m.wait, m.refused, m.fallbacks} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
