// Package limits is llmctl's rate limiter: requests per minute, tokens per
// minute and concurrent requests, per API key and per tenant, with optional
// per-model limits. It implements serve.Admitter.
//
// Two stores share one algorithm (a sliding-window counter, see
// docs/limits.md): Redis, where every decision is one EVALSHA of an
// embedded Lua script and time comes from Redis, so any number of gateway
// replicas enforce one exact limit; and an in-process map for a single
// instance. Both pass the same conformance suite.
package limits

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/llmctl/llmctl/pkg/billing"
)

// FailMode says what Admit does while Redis cannot be reached.
type FailMode string

const (
	// FailOpen admits requests while Redis is down, still enforcing every
	// limit per replica with the in-process store, which also counted what
	// Redis admitted for this replica: at most replicas×limit in a window,
	// (replicas+1)×limit in the one Redis comes back in. The default: see
	// docs/limits.md.
	FailOpen FailMode = "open"
	// FailClosed refuses every request while Redis is down (Admit returns an
	// error wrapping ErrUnavailable; the gateway answers 503).
	FailClosed FailMode = "closed"
)

// ErrUnavailable is wrapped by Admit's error when the shared store cannot be
// reached and the limiter fails closed.
var ErrUnavailable = errors.New("rate limiter unavailable")

// ModelLimits are extra limits for one model, checked on top of the general
// key and tenant limits with their own counters.
type ModelLimits struct {
	Key    billing.Limits `json:"key"`
	Tenant billing.Limits `json:"tenant"`
}

// Config configures a Limiter. The zero value is valid: no default limits,
// a one-minute window, fail open.
type Config struct {
	// Key and Tenant are the default limits; a key's or tenant's stored
	// limits (billing.Principal) override them field by field.
	Key    billing.Limits
	Tenant billing.Limits
	// Models adds per-model limits, keyed by the model name requested.
	Models map[string]ModelLimits
	// Batch are the limits of batch lines (AdmitBatch), counted apart:
	// a batch line never counts against Key, Tenant or Models (batch.go).
	// Zero fields: no limit.
	Batch ModelLimits
	// Window is the counting window of "per minute" limits: one minute
	// unless a test wants it shorter.
	Window time.Duration
	// SlotLease is how long a concurrency slot outlives its last renewal: a
	// replica that dies without releasing its slots loses them after this.
	// Live slots are renewed every SlotLease/3. Default 30s.
	SlotLease time.Duration
	// FailMode applies to the Redis store only. Default FailOpen.
	FailMode FailMode
	// RetryRedisAfter is how long the limiter stops trying Redis after a
	// failure before probing it again (it reconnects on the probe). Default 1s.
	RetryRedisAfter time.Duration
	// Prefix of every Redis key. Default "llmctl:rl:".
	Prefix string
	Logger *slog.Logger
	// Registerer gets llmctl_ratelimit_decisions_total; nil registers nothing.
	Registerer prometheus.Registerer
	// Now is the in-process store's clock (tests); Redis uses its own TIME.
	Now func() time.Time
}

func (c *Config) defaults() error {
	if c.Window == 0 {
		c.Window = time.Minute
	}
	if c.SlotLease == 0 {
		c.SlotLease = 30 * time.Second
	}
	if c.FailMode == "" {
		c.FailMode = FailOpen
	}
	if c.RetryRedisAfter == 0 {
		c.RetryRedisAfter = time.Second
	}
	if c.Prefix == "" {
		c.Prefix = "llmctl:rl:"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	switch {
	case c.Window < time.Millisecond || c.Window > MaxWindow || c.Window%time.Millisecond != 0:
		return fmt.Errorf("limits: window %s must be a whole number of milliseconds from 1ms to %s", c.Window, MaxWindow)
	case c.SlotLease < 3*time.Millisecond:
		return fmt.Errorf("limits: slot lease %s too short", c.SlotLease)
	case c.FailMode != FailOpen && c.FailMode != FailClosed:
		return fmt.Errorf("limits: fail mode %q: want %q or %q", c.FailMode, FailOpen, FailClosed)
	}
	for _, l := range []billing.Limits{c.Key, c.Tenant, c.Batch.Key, c.Batch.Tenant} {
		if err := checkLimits(l); err != nil {
			return err
		}
	}
	for m, ml := range c.Models {
		for _, l := range []billing.Limits{ml.Key, ml.Tenant} {
			if err := checkLimits(l); err != nil {
				return fmt.Errorf("model %q: %w", m, err)
			}
		}
	}
	return nil
}

// MaxLimit bounds every limit and MaxWindow the window, so that the
// script's arithmetic (count × window in ms, in Lua's doubles) stays exact:
// 1e9 × 3.6e6 < 2^53.
const (
	MaxLimit  = 1_000_000_000
	MaxWindow = time.Hour
)

func checkLimits(l billing.Limits) error {
	if l.BatchRPM != 0 || l.BatchTPM != 0 {
		// Stored on keys and tenants only: in a config they would count nothing.
		return fmt.Errorf("limits: batch rpm/tpm in %+v: set the batch limits in Batch (limits.batch)", l)
	}
	if l.RPM < 0 || l.TPM < 0 || l.MaxConcurrency < 0 {
		return fmt.Errorf("limits: negative limit in %+v", l)
	}
	if l.RPM > MaxLimit || l.TPM > MaxLimit || l.MaxConcurrency > MaxLimit {
		return fmt.Errorf("limits: %+v: each limit must be at most %d", l, MaxLimit)
	}
	return nil
}

// Limiter admits requests against rate limits. Safe for concurrent use.
// Close it to stop renewing concurrency slots.
type Limiter struct {
	cfg      Config
	store    store
	fallback *memStore // FailOpen while Redis is down; nil for the memory store
	metrics  *metrics
	log      *slog.Logger

	idPrefix string
	seq      atomic.Uint64

	redisDownUntil atomic.Int64 // unix ns; skip Redis until then
	degraded       atomic.Bool  // logged the outage, not yet the recovery

	mu   sync.Mutex
	live map[*ticket]struct{} // tickets holding concurrency slots

	bucketCache bucketCache // bucketcache.go

	settler *settler // Redis settlements off the request path; nil: synchronous

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// NewMemory returns a limiter that keeps its counters in this process.
func NewMemory(cfg Config) (*Limiter, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	return newLimiter(cfg, newMemStore(cfg.Now), nil)
}

// NewRedis returns a limiter sharing its counters through Redis.
func NewRedis(rdb redis.Scripter, cfg Config) (*Limiter, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	return newLimiter(cfg, newRedisStore(rdb), newMemStore(cfg.Now))
}

func newLimiter(cfg Config, st store, fallback *memStore) (*Limiter, error) {
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("limits: ticket ids: %w", err)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	l := &Limiter{
		cfg: cfg, store: st, fallback: fallback, metrics: m, log: cfg.Logger,
		idPrefix: hex.EncodeToString(rnd[:]) + "-",
		live:     map[*ticket]struct{}{},
		stop:     make(chan struct{}), done: make(chan struct{}),
	}
	if rs, ok := st.(*redisStore); ok && rs.pipe != nil {
		l.settler = newSettler(rs, func(err error) {
			if !l.degraded.Load() { // an outage is logged once, by admit
				l.log.Warn("rate limiter: settling requests; their slots expire with their lease", "err", err)
			}
		})
	}
	go l.renewLoop()
	return l, nil
}

// Close stops lease renewal. Slots still held then expire after SlotLease,
// exactly as if this replica had died.
func (l *Limiter) Close() error {
	l.once.Do(func() {
		close(l.stop)
		<-l.done
		if l.settler != nil {
			l.settler.close() // sends what is queued
		}
	})
	return nil
}

// Admit checks and counts one request: one request against RPM, maxTokens
// (the caller's prompt estimate plus max_tokens) reserved against TPM, one
// concurrency slot. It returns a *billing.LimitError to refuse.
func (l *Limiter) Admit(ctx context.Context, p billing.Principal, model string, maxTokens int64) (billing.Ticket, error) {
	bs, owner := l.forRequest(p, model)
	return l.admitIn(ctx, bs, owner, maxTokens)
}

// admitIn is Admit over the buckets bs, owned by owner (ownerOf).
func (l *Limiter) admitIn(ctx context.Context, bs []bucket, owner string, maxTokens int64) (billing.Ticket, error) {
	if len(bs) == 0 {
		return noTicket{}, nil
	}
	// A client's max_tokens is unbounded input; anything above MaxLimit can
	// fit no TPM limit anyway, and clamping keeps the counters exact.
	maxTokens = min(max(maxTokens, 0), MaxLimit+1)
	var id [32]byte // the ticket id built in place: one allocation
	req := admitRequest{owner: owner,
		buckets: bs, ticket: string(strconv.AppendUint(append(id[:0], l.idPrefix...), l.seq.Add(1), 36)),
		tokens: maxTokens, window: l.cfg.Window, lease: l.cfg.SlotLease,
	}
	st, res, degraded, err := l.admit(ctx, req)
	switch {
	case err != nil || degraded:
		l.metrics.record(bs, "error", -1)
	case res.admitted:
		l.metrics.record(bs, "allowed", -1)
	default:
		l.metrics.record(bs, "limited", res.denied)
	}
	if err != nil {
		return nil, err
	}
	h := l.header(bs, res)
	if !res.admitted {
		return nil, l.refusal(bs, req, res, h)
	}
	t := &ticket{l: l, st: st, req: req, wid: res.wid, elapsed: res.elapsed, header: h,
		mirrored: st == l.store && l.seeds(), mirrorWid: res.mirrorWid}
	if t.holdsSlots() {
		l.mu.Lock()
		l.live[t] = struct{}{}
		l.mu.Unlock()
	}
	return t, nil
}

// admit runs the decision on Redis, or on the fallback while Redis is down
// and the limiter fails open (degraded: the shared decision failed).
//
// The fallback also counts every request Redis admits for this replica
// (mirrored before the decision, taken back unless Redis admits it), so a
// replica that admitted k in a window through Redis admits at most limit−k
// more in it during an outage: replicas×limit overall, not replicas×limit
// on top of what Redis admitted. Mirroring before asking Redis keeps that
// exact while an outage begins under concurrent requests.
func (l *Limiter) admit(ctx context.Context, req admitRequest) (st store, res admitResult, degraded bool, err error) {
	if l.fallback == nil {
		res, err := l.store.admit(ctx, req)
		return l.store, res, false, err
	}
	if time.Now().UnixNano() >= l.redisDownUntil.Load() {
		var mirrorWid int64
		if l.seeds() {
			mirrorWid = l.fallback.mirror(req)
		}
		unmirror := func() {
			if l.seeds() {
				l.fallback.unmirror(req, mirrorWid)
			}
		}
		if l.settler != nil {
			res, err = l.settler.admit(ctx, req)
		} else {
			res, err = l.store.admit(ctx, req)
		}
		if err == nil {
			if l.degraded.CompareAndSwap(true, false) {
				l.log.Info("rate limiter: redis reachable again; shared limits back in force")
			}
			if res.admitted {
				res.mirrorWid = mirrorWid
			} else {
				unmirror()
			}
			return l.store, res, false, nil
		}
		unmirror()
		if ctx.Err() != nil { // the caller gave up; Redis is not to blame
			return nil, admitResult{}, false, fmt.Errorf("rate limit: %w", ctx.Err())
		}
		l.redisDownUntil.Store(time.Now().Add(l.cfg.RetryRedisAfter).UnixNano())
		if l.degraded.CompareAndSwap(false, true) {
			l.log.Error("rate limiter: redis unreachable", "err", err, "fail_mode", string(l.cfg.FailMode))
		}
	} else {
		err = errors.New("redis marked down after a recent failure")
	}
	if l.cfg.FailMode == FailClosed {
		return nil, admitResult{}, true, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	res, err = l.fallback.admit(ctx, req)
	return l.fallback, res, true, err
}

// seeds reports whether the fallback counts what Redis admits: only one
// that decides during an outage (fail open) needs to.
func (l *Limiter) seeds() bool { return l.fallback != nil && l.cfg.FailMode == FailOpen }

// buckets lists what a request is checked against, skipping anything with
// no limit at all (so an unlimited caller costs no store round trip).
func (l *Limiter) buckets(p billing.Principal, model string) []bucket {
	var bs []bucket
	add := func(scope, id, key string, lim billing.Limits) { bs = l.appendBucket(bs, p, scope, id, key, lim) }
	if p.KeyID != "" {
		add("key", "key "+p.KeyID, "k:"+p.KeyID, override(p.KeyLimits, l.cfg.Key))
	}
	if p.TenantID != "" {
		add("tenant", "tenant "+p.TenantID, "t", override(p.TenantLimits, l.cfg.Tenant))
	}
	if ml, ok := l.cfg.Models[model]; ok {
		if p.KeyID != "" {
			add("key", "key "+p.KeyID+" on model "+model, "k:"+p.KeyID+":m:"+model, ml.Key)
		}
		if p.TenantID != "" {
			add("tenant", "tenant "+p.TenantID+" on model "+model, "t:m:"+model, ml.Tenant)
		}
	}
	return bs
}

// appendBucket appends the bucket key of p's tenant with limits lim, unless
// lim limits nothing.
func (l *Limiter) appendBucket(bs []bucket, p billing.Principal, scope, id, key string, lim billing.Limits) []bucket {
	if lim.RPM == 0 && lim.TPM == 0 && lim.MaxConcurrency == 0 {
		return bs
	}
	// The tenant id as a hash tag keeps all of a request's keys in one
	// Redis Cluster slot (a script may only touch one slot).
	k := l.cfg.Prefix + "{" + p.TenantID + "}:" + key
	return append(bs, bucket{scope: scope, id: id, counter: k + ":w", slots: k + ":c",
		rpm: lim.RPM, tpm: lim.TPM, conc: lim.MaxConcurrency,
		args: [3]any{lim.RPM, lim.TPM, lim.MaxConcurrency}})
}

// override takes each stored field that is set, else the default. Stored
// values come from the database, not from validated config: above MaxLimit
// they are clamped to it (practically unlimited, and exact in the script).
func override(stored, def billing.Limits) billing.Limits {
	pick := func(s, d int64) int64 {
		if s > 0 {
			return min(s, MaxLimit)
		}
		return d
	}
	return billing.Limits{RPM: pick(stored.RPM, def.RPM), TPM: pick(stored.TPM, def.TPM),
		MaxConcurrency: pick(stored.MaxConcurrency, def.MaxConcurrency)}
}

// header builds the x-ratelimit-* headers from the tightest bucket for
// requests and for tokens (the one with the least remaining).
func (l *Limiter) header(bs []bucket, res admitResult) http.Header {
	win := l.cfg.Window.Milliseconds()
	h := make(http.Header, 6)
	bestR, bestT := int64(math.MaxInt64), int64(math.MaxInt64)
	var rq, tk [3]int64
	var rqReset, tkReset time.Duration
	for i, b := range bs {
		s := res.state[i]
		if b.rpm > 0 {
			if r := remaining(b.rpm, s.RP, s.RC, res.elapsed, win); r < bestR {
				bestR, rq, rqReset = r, [3]int64{b.rpm, r}, resetIn(s.RP, s.RC, res.elapsed, win)
			}
		}
		if b.tpm > 0 {
			if r := remaining(b.tpm, s.TP, s.TC, res.elapsed, win); r < bestT {
				bestT, tk, tkReset = r, [3]int64{b.tpm, r}, resetIn(s.TP, s.TC, res.elapsed, win)
			}
		}
	}
	// Keys in canonical form, written directly (Set would canonicalize, and
	// allocate, on every request); the values share one []string and the
	// numbers one string, so the six values cost four allocations, not twelve.
	var (
		vals [6]string
		n    int
		num  [64]byte
		ends [4]int
	)
	nums := num[:0]
	if bestR != math.MaxInt64 {
		nums = strconv.AppendInt(nums, rq[0], 10)
		ends[0] = len(nums)
		nums = strconv.AppendInt(nums, rq[1], 10)
		ends[1] = len(nums)
	}
	if bestT != math.MaxInt64 {
		ends[2] = len(nums) // the tokens' numbers start here
		nums = strconv.AppendInt(nums, tk[0], 10)
		ends[3] = len(nums)
		nums = strconv.AppendInt(nums, tk[1], 10)
	}
	all := string(nums)
	if bestR != math.MaxInt64 {
		vals[0], vals[1], vals[2] = all[:ends[0]], all[ends[0]:ends[1]], formatDuration(rqReset)
		n = 3
	}
	if bestT != math.MaxInt64 {
		vals[n], vals[n+1], vals[n+2] = all[ends[2]:ends[3]], all[ends[3]:], formatDuration(tkReset)
		n += 3
	}
	if n == 0 {
		return h
	}
	vs := make([]string, n)
	copy(vs, vals[:n])
	i := 0
	set := func(limitName, remName, resetName string) {
		// Full slice expressions: an append to one value cannot spill into the next.
		h[limitName], h[remName], h[resetName] = vs[i:i+1:i+1], vs[i+1:i+2:i+2], vs[i+2:i+3:i+3]
		i += 3
	}
	if bestR != math.MaxInt64 {
		set(hdrLimitRequests, hdrRemainingRequests, hdrResetRequests)
	}
	if bestT != math.MaxInt64 {
		set(hdrLimitTokens, hdrRemainingTokens, hdrResetTokens)
	}
	return h
}

// The x-ratelimit-* header names, canonical (as http.Header.Get looks them up).
const (
	hdrLimitRequests     = "X-Ratelimit-Limit-Requests"
	hdrRemainingRequests = "X-Ratelimit-Remaining-Requests"
	hdrResetRequests     = "X-Ratelimit-Reset-Requests"
	hdrLimitTokens       = "X-Ratelimit-Limit-Tokens"
	hdrRemainingTokens   = "X-Ratelimit-Remaining-Tokens"
	hdrResetTokens       = "X-Ratelimit-Reset-Tokens"
)

// refusal explains which limit refused and when to retry.
func (l *Limiter) refusal(bs []bucket, req admitRequest, res admitResult, h http.Header) *billing.LimitError {
	b, s := bs[res.denied], res.state[res.denied]
	win := l.cfg.Window.Milliseconds()
	var msg string
	var retry time.Duration
	switch res.dim {
	case dimRequests:
		retry = retryIn(b.rpm, s.RP, s.RC, 1, res.elapsed, win)
		msg = fmt.Sprintf("Rate limit reached for requests per minute on %s: limit %d.", b.id, b.rpm)
	case dimTokens:
		retry = retryIn(b.tpm, s.TP, s.TC, req.tokens, res.elapsed, win)
		if retry < 0 {
			msg = fmt.Sprintf("Request too large for tokens per minute on %s: limit %d, requested %d (prompt estimate + max_tokens). Lower max_tokens or the prompt; retrying cannot help.", b.id, b.tpm, req.tokens)
			return &billing.LimitError{Message: msg, Header: h, TooLarge: true}
		} else {
			msg = fmt.Sprintf("Rate limit reached for tokens per minute on %s: limit %d, requested %d.", b.id, b.tpm, req.tokens)
		}
	default:
		// A slot frees when a request finishes; there is no schedule to quote.
		retry = time.Second
		msg = fmt.Sprintf("Too many concurrent requests on %s: limit %d.", b.id, b.conc)
	}
	retry = max(retry, time.Millisecond)
	msg += " Please try again in " + formatDuration(retry) + "."
	return &billing.LimitError{Message: msg, RetryAfter: retry, Header: h}
}

// formatDuration writes a duration the way OpenAI's reset headers do
// ("1s", "6m0s", "20ms"), rounded to milliseconds.
func formatDuration(d time.Duration) string {
	return d.Round(time.Millisecond).String()
}

func (l *Limiter) renewLoop() {
	defer close(l.done)
	tk := time.NewTicker(l.cfg.SlotLease / 3)
	defer tk.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-tk.C:
			l.renew()
		}
	}
}

// renew extends the lease of every slot this replica holds, one round trip
// per store.
func (l *Limiter) renew() {
	byStore := map[store][]slotRef{}
	l.mu.Lock()
	for t := range l.live {
		for _, b := range t.req.buckets {
			if b.conc > 0 {
				ref := slotRef{key: b.slots, ticket: t.req.ticket}
				byStore[t.st] = append(byStore[t.st], ref)
				if t.mirrored { // its mirror must outlive an outage's start too
					byStore[l.fallback] = append(byStore[l.fallback], ref)
				}
			}
		}
	}
	l.mu.Unlock()
	for st, refs := range byStore {
		ctx, cancel := context.WithTimeout(context.Background(), l.cfg.SlotLease/3)
		if err := st.renew(ctx, refs, l.cfg.SlotLease); err != nil {
			l.log.Warn("rate limiter: renewing concurrency slots", "err", err, "slots", len(refs))
		}
		cancel()
	}
}

// ticket is an admitted request's claim. Done settles exactly once.
type ticket struct {
	l       *Limiter
	st      store
	req     admitRequest
	wid     int64
	elapsed int64
	header  http.Header
	once    sync.Once

	// mirrored: admitted by Redis and also counted by the fallback, in
	// window mirrorWid of its clock (see Limiter.admit); Done settles both.
	mirrored  bool
	mirrorWid int64
}

func (t *ticket) Header() http.Header { return t.header }

// needsSettle reports whether Done has anything to tell the store: a token
// correction for a bucket that counts tokens, or a slot to free.
func (t *ticket) needsSettle(delta int64) bool {
	for _, b := range t.req.buckets {
		if b.conc > 0 || (b.tpm > 0 && delta != 0) {
			return true
		}
	}
	return false
}

func (t *ticket) holdsSlots() bool {
	for _, b := range t.req.buckets {
		if b.conc > 0 {
			return true
		}
	}
	return false
}

// Done corrects the TPM reservation to actual usage in the window it was
// made in, and frees the concurrency slots. It runs even when ctx is
// already cancelled (a client disconnect), bounded by a short timeout; if
// the store cannot be reached the slots expire after SlotLease. On Redis it
// only queues the settlement (see settler): it lands before this replica's
// next Admit is decided, without a round trip on the finishing request.
func (t *ticket) Done(ctx context.Context, used billing.Usage) {
	t.once.Do(func() {
		t.l.mu.Lock()
		delete(t.l.live, t)
		t.l.mu.Unlock()
		sr := settleRequest{owner: t.req.owner, buckets: t.req.buckets, ticket: t.req.ticket, wid: t.wid, delta: used.Total() - t.req.tokens}
		if !t.needsSettle(sr.delta) {
			return // RPM only: nothing to correct, no slot to free
		}
		if t.mirrored { // in process: no round trip, cannot fail
			msr := sr
			msr.wid = t.mirrorWid
			t.l.fallback.release(msr, 0)
		}
		if t.l.settler != nil && t.st == t.l.store && t.l.settler.enqueue(sr) {
			return // sent by the flusher or ahead of the next Admit
		}
		if ms, ok := t.st.(*memStore); ok { // in process: no round trip to bound
			ms.release(sr, 0)
			return
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if err := t.st.settle(ctx, sr); err != nil && !t.l.degraded.Load() {
			// During a known outage this would repeat for every request;
			// the outage itself is logged once.
			t.l.log.Warn("rate limiter: settling a request", "err", err)
		}
	})
}

// noTicket is the ticket of a caller with no limits at all.
type noTicket struct{}

func (noTicket) Header() http.Header                 { return http.Header{} }
func (noTicket) Done(context.Context, billing.Usage) {}
