package ledger

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger/spool"
)

// DefaultHoldTTL is how long an unsettled hold lives by default.
const DefaultHoldTTL = time.Hour

// MaxGroupWait bounds Config.GroupWait: the most a settlement waits for
// others to share its fsync.
const MaxGroupWait = time.Millisecond

// Config tunes a Ledger. Zero values take the documented defaults.
type Config struct {
	Prices Prices
	// Overdraft is how far below zero a tenant's available balance may go.
	Overdraft Micros
	// DefaultMaxTokens is reserved for completion when a request sets no
	// max_tokens (default 4096).
	DefaultMaxTokens int64
	// SpoolDir holds the durable journal; required. One process per dir.
	SpoolDir string
	// BatchMax caps entries per database write (default 1000).
	BatchMax int
	// Writers is how many batches may be in flight at once (default 2).
	Writers int
	// BatchDelay is how long a writer lets a small batch gather before
	// writing it (default 5ms; negative: none). Entries are already durable
	// in the spool, so waiting costs nothing in safety; it spares the
	// accounts' rows a commit per request, during which a reservation for
	// the same tenant would wait (reservations count until settled, so a
	// balance applied later never lets a tenant overspend).
	BatchDelay time.Duration
	// GroupWait is how long the journal holds a settlement, when nothing
	// else is queued, for others to share its fsync (default 1ms, at most
	// MaxGroupWait; negative: never wait). It waits only while at least
	// GroupSiblings other requests hold a reservation (the settlements
	// that can still come), and stops as soon as they have all arrived:
	// alone, a settlement is synced at once. Whatever queues during an
	// fsync goes into the next one regardless.
	GroupWait time.Duration
	// GroupSiblings is how many other open reservations make GroupWait
	// worth it (default 2).
	GroupSiblings int
	// WriteTimeout bounds one database write (default 5s).
	WriteTimeout time.Duration
	// HoldTTL: holds older than this are released, as their gateway must
	// have died with the request (default DefaultHoldTTL; 0 keeps it).
	// A restart on the spool releases a dead process's holds sooner; this
	// is the backstop for a lost spool.
	HoldTTL time.Duration
	// AdmitWhenDown lets requests through with an unrecorded hold when the
	// database cannot be reached for the reservation (default: refuse).
	// Their settlement is journaled and charged like any other.
	AdmitWhenDown bool
	// HouseTenants are tenant names whose requests are reserved and charged
	// like any other but never refused for balance (their overdraft is
	// unlimited): the operator's own tenant, so that its bootstrap key works
	// as soon as prices are on (house.go).
	HouseTenants []string
	Logger       *slog.Logger
	Registerer   prometheus.Registerer
	Now          func() time.Time
}

func (c *Config) defaults() error {
	if c.SpoolDir == "" {
		return errors.New("ledger: a spool directory is required")
	}
	if err := c.Prices.Validate(); err != nil {
		return err
	}
	if c.Overdraft < 0 {
		return fmt.Errorf("ledger: negative overdraft %s", c.Overdraft)
	}
	if c.DefaultMaxTokens <= 0 {
		c.DefaultMaxTokens = 4096
	}
	if c.BatchMax <= 0 {
		c.BatchMax = 1000
	}
	if c.Writers <= 0 {
		c.Writers = 2
	}
	if c.BatchDelay == 0 {
		c.BatchDelay = 5 * time.Millisecond
	}
	if c.GroupWait == 0 {
		c.GroupWait = MaxGroupWait
	}
	if c.GroupWait > MaxGroupWait {
		return fmt.Errorf("ledger: group wait %s exceeds %s", c.GroupWait, MaxGroupWait)
	}
	if c.GroupSiblings <= 0 {
		c.GroupSiblings = 2
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 5 * time.Second
	}
	if c.HoldTTL <= 0 {
		c.HoldTTL = DefaultHoldTTL
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Ledger reserves and settles requests' costs (it implements serve.Reserver)
// and writes credits. Settled entries take this path:
//
//	Settle → journal (fsync'd spool, group commit) → queue → batch Apply → Ack
//
// Settle returns once the entry is on local disk, never waiting for the
// database; the writer retries a failed batch with backoff until it lands,
// and New replays whatever a previous process left in the spool.
//
// Reserve writes the reservation's intent to the same spool before the hold
// reaches the database, so that a process restarted on the spool releases
// every hold a killed one left unsettled. The intent is not fsync'd on its
// own: it survives a killed process at once (page cache) and a power loss
// from the next group commit on.
type Ledger struct {
	store Store
	spool *spool.Spool
	cfg   Config
	log   *slog.Logger
	m     *metrics

	in        chan *submission
	closing   sync.RWMutex // held for reading by every submission in flight
	closed    bool
	appenderQ chan struct{} // closed when the appender has exited

	mu       sync.Mutex
	queue    []queued // journaled, not yet in the database; FIFO
	wake     chan struct{}
	drain    chan struct{} // closed by Close: write what is left, then stop
	stop     chan struct{} // closed when Close gives up waiting
	writers  sync.WaitGroup
	inflight map[*queued]time.Time // batches being written: their oldest entry's time
	depth    atomic.Int64          // journaled and not yet written: queued + in flight
	// open counts holds reserved and not yet settled: the settlements the
	// journal's group commit may wait for.
	open atomic.Int64
	// intents maps the key of each hold whose reservation intent is in the
	// spool to that record's segment; the record is acknowledged once the
	// hold's settlement is in the database.
	intents map[string]uint64
}

type submission struct {
	e    Entry
	done chan error
}

type queued struct {
	e   Entry
	seg uint64
}

// New starts a Ledger over store, first queueing for replay every entry an
// earlier process left in the spool.
func New(store Store, cfg Config) (*Ledger, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	sp, left, err := spool.Open(cfg.SpoolDir, 0)
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	l := &Ledger{
		store: store, spool: sp, cfg: cfg, log: cfg.Logger,
		in:        make(chan *submission, 4*cfg.BatchMax),
		appenderQ: make(chan struct{}),
		wake:      make(chan struct{}, 1),
		drain:     make(chan struct{}),
		stop:      make(chan struct{}),
		inflight:  map[*queued]time.Time{},
		intents:   map[string]uint64{},
	}
	l.replay(left)
	l.m = newMetrics(cfg.Registerer, l)
	go l.appender()
	for i := range cfg.Writers {
		l.writers.Add(1)
		go l.writer(i)
	}
	l.poke()
	return l, nil
}

// replay queues what an earlier process left in the spool: its settlements,
// and a release for each hold it reserved and never settled (it died with
// the request, so what the backend delivered is unknown: nothing is
// charged). A release shares its hold's key, so it changes nothing if the
// settlement reached the database before the crash.
func (l *Ledger) replay(left []spool.Segment) {
	type rec struct {
		e   Entry
		seg uint64
	}
	var recs []rec
	settled := map[string]bool{}
	for _, seg := range left {
		if seg.Torn {
			l.log.Warn("ledger spool segment ends in a torn record; replaying the whole records before it", "segment", seg.ID)
		}
		for _, r := range seg.Records {
			var e Entry
			err := json.Unmarshal(r, &e)
			if err == nil {
				err = validateRecord(e)
			}
			if err != nil {
				// Kept on disk (never acknowledged) for an operator to
				// inspect, rather than blocking every batch behind it.
				l.log.Error("ledger spool record unreadable; left in the spool", "segment", seg.ID, "err", err)
				continue
			}
			recs = append(recs, rec{e, seg.ID})
			if e.Kind != KindReservation {
				settled[e.Key] = true
			}
		}
	}
	entries, released := 0, 0
	for _, r := range recs {
		switch {
		case r.e.Kind != KindReservation:
			entries++
		case settled[r.e.Key]:
			// Its settlement is replayed too; the intent goes with it.
			l.intents[r.e.Key] = r.seg
			continue
		default:
			released++
			r.e = Entry{Key: r.e.Key, TenantID: r.e.TenantID, Kind: KindRelease, KeyID: r.e.KeyID, EndUser: r.e.EndUser, BatchID: r.e.BatchID, Time: l.cfg.Now().UTC(),
				Reason: "released at restart: its process stopped before settling"}
		}
		l.queue = append(l.queue, queued{e: r.e, seg: r.seg})
	}
	l.depth.Store(int64(len(l.queue)))
	if entries+released > 0 {
		l.log.Info("ledger replaying spooled entries from an earlier run", "entries", entries)
	}
	if released > 0 {
		l.log.Warn("ledger releasing holds an earlier run reserved and never settled", "holds", released)
	}
}

// validateRecord checks a spool record: an entry, or a reservation intent.
func validateRecord(e Entry) error {
	if e.Kind != KindReservation {
		return e.Validate()
	}
	if e.Key == "" || e.TenantID == "" {
		return fmt.Errorf("%w %q: reservation intent without key or tenant", ErrInvalidEntry, e.Key)
	}
	return nil
}

// Reserve holds the request's maximum cost: the prompt estimate plus
// max_tokens (or DefaultMaxTokens) at the model's price. It returns a hold,
// or an error and no hold left behind: a hold whose commit outcome is
// unknown is released by its key. The store call does not take ctx's
// cancellation (a client going away must not cut a commit in half) but is
// bounded by WriteTimeout and ctx's deadline; when ctx has ended by the
// time the store answers, the error wraps ctx.Err().
func (l *Ledger) Reserve(ctx context.Context, r billing.ReserveRequest) (billing.Hold, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("ledger: reserve: %w", err)
	}
	price, err := l.cfg.Prices.For(r.Model)
	if err != nil {
		return nil, err
	}
	if r.BatchID != "" {
		price = price.ForBatch()
	}
	maxTokens := r.MaxTokens
	if maxTokens <= 0 {
		maxTokens = l.cfg.DefaultMaxTokens
	}
	amount, err := price.Cost(billing.Usage{PromptTokens: max(r.PromptTokens, 0), CompletionTokens: maxTokens})
	if err != nil {
		return nil, fmt.Errorf("ledger: reserve: %w", err)
	}
	key := chargeKey(r.RequestID)
	if r.BatchID != "" {
		key = BatchLineKey(r.RequestID) // batchkey.go: every run of a line shares it
	}
	h := &hold{l: l, key: key, tenant: r.Principal.TenantID, keyID: r.Principal.KeyID, endUser: r.EndUser, model: r.Model, price: price,
		batchID: r.BatchID}
	l.open.Add(1) // until Settle, or the refusal below
	hr := HoldRequest{Key: h.key, TenantID: h.tenant, KeyID: h.keyID, Amount: amount, Overdraft: l.overdraft(r.Principal), Time: l.cfg.Now()}
	intent := Entry{Key: hr.Key, TenantID: hr.TenantID, Kind: KindReservation, Amount: amount, Model: r.Model, KeyID: h.keyID,
		EndUser: h.endUser, BatchID: h.batchID, Time: hr.Time.UTC()}
	if err := l.writeIntent(intent); err != nil {
		l.log.Warn("ledger cannot journal a reservation; a crash before it settles leaves its hold until HoldTTL",
			"request_id", r.RequestID, "err", err)
	}
	// The caller's deadline still bounds the call (its outcome, if cut,
	// is released below); its cancellation does not.
	deadline := time.Now().Add(l.cfg.WriteTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	sctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	err = l.store.Reserve(sctx, hr)
	cancel()
	gone := ctx.Err()
	switch {
	case err == nil && gone == nil:
		return h, nil
	case err == nil:
		// Committed, but nobody is left to use or settle it.
		h.release()
		l.log.Debug("ledger released the hold of a request whose client left during the reservation", "request_id", r.RequestID)
		return nil, fmt.Errorf("ledger: reserve: client gone: %w", gone)
	case errors.Is(err, billing.ErrInsufficientQuota) || errors.Is(err, billing.ErrBudgetExceeded):
		// A definite refusal: no hold exists.
		l.open.Add(-1)
		l.forgetIntent(h.key)
		if gone != nil {
			return nil, fmt.Errorf("ledger: reserve: client gone: %w (%w)", gone, err)
		}
		if errors.Is(err, billing.ErrBudgetExceeded) {
			return nil, err // a *billing.BudgetError carries its own numbers
		}
		return nil, l.quotaError(ctx, hr, err)
	case l.cfg.AdmitWhenDown && gone == nil:
		// Its settlement, under the same key, releases whatever did commit.
		l.m.reserveUnrecorded.Inc()
		l.log.Warn("ledger unreachable; admitting with an unrecorded hold", "request_id", r.RequestID, "err", err)
		return h, nil
	default:
		// The hold may or may not have committed: release it by its key.
		// Journaled, so it lands even if the database is down right now;
		// for a hold that never committed it moves nothing.
		h.release()
		if gone != nil {
			return nil, fmt.Errorf("ledger: reserve: client gone: %w (%w)", gone, err)
		}
		l.log.Warn("ledger reservation outcome unknown; releasing it by its key", "request_id", r.RequestID, "err", err)
		return nil, err
	}
}

// chargeKey makes the idempotency key of a request's charge: the request id
// plus a random suffix, because X-Request-Id comes from the client and a
// reused id must not make a second request's charge a "duplicate".
func chargeKey(requestID string) string {
	if len(requestID) > 128 {
		requestID = requestID[:128]
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "req:" + requestID + ":" + hex.EncodeToString(b[:])
}

type hold struct {
	l       *Ledger
	key     string
	tenant  string
	keyID   string
	endUser string
	model   string
	price   Price
	batchID string // the batch of a line: its entry's BatchID
	settled atomic.Bool
}

// Settle charges used and releases the rest of the hold. It returns once
// the entry is journaled on local disk, whatever the database is doing; ctx
// is not consulted, since a cancelled request must still be charged.
func (h *hold) Settle(_ context.Context, used billing.Usage) {
	if !h.settled.CompareAndSwap(false, true) {
		h.l.log.Error("ledger hold settled twice; second settlement ignored", "key", h.key)
		return
	}
	h.l.open.Add(-1)
	used.PromptTokens, used.CompletionTokens = max(used.PromptTokens, 0), max(used.CompletionTokens, 0)
	used.CachedPromptTokens = used.Cached()
	e := Entry{Key: h.key, TenantID: h.tenant, Kind: KindRelease, Model: h.model, KeyID: h.keyID, EndUser: h.endUser, BatchID: h.batchID,
		PromptTokens: used.PromptTokens, CompletionTokens: used.CompletionTokens, CachedPromptTokens: used.CachedPromptTokens,
		Time: h.l.cfg.Now().UTC()}
	// Nothing used is a release: no token, and no perRequest either.
	if used.Total() > 0 {
		cost, err := h.price.Cost(used)
		if err != nil {
			h.l.log.Error("ledger cannot price usage; charging nothing", "key", h.key, "err", err)
			cost = 0
		}
		e.Kind, e.Amount = KindDebit, -cost
	}
	h.l.Submit(e)
}

// release settles a hold nobody will use: a release entry under its key.
func (h *hold) release() { h.Settle(context.Background(), billing.Usage{}) }

// Submit journals e and queues it for the database. It returns once e is
// durable on local disk; if the disk fails it writes e to the database
// directly, and only if both fail is the entry lost (logged with every field).
func (l *Ledger) Submit(e Entry) {
	if err := e.Validate(); err != nil {
		l.log.Error("ledger entry rejected", "err", err)
		return
	}
	l.closing.RLock()
	if l.closed {
		l.closing.RUnlock()
		l.direct(e, errors.New("ledger closed"))
		return
	}
	s := &submission{e: e, done: make(chan error, 1)}
	l.in <- s
	l.closing.RUnlock()
	if err := <-s.done; err != nil {
		l.direct(e, err)
	}
}

// writeIntent writes a reservation's intent (a KindReservation record, never
// written to the database) to the spool, without an fsync of its own: the
// hot path keeps one fsync per request, the settlement's group commit.
func (l *Ledger) writeIntent(e Entry) error {
	rec, _ := json.Marshal(e) // an Entry always marshals
	seg, err := l.spool.Write([][]byte{rec})
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.intents[e.Key] = seg
	l.mu.Unlock()
	return nil
}

// forgetIntent acknowledges the intent of a hold that was never made.
func (l *Ledger) forgetIntent(key string) {
	l.mu.Lock()
	seg, ok := l.intents[key]
	delete(l.intents, key)
	l.mu.Unlock()
	if ok {
		l.spool.Ack(seg, 1)
	}
}

func (l *Ledger) direct(e Entry, cause error) {
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.WriteTimeout)
	defer cancel()
	if _, err := l.store.Apply(ctx, []Entry{e}); err != nil {
		l.m.writeErrors.Inc()
		l.log.Error("ledger entry LOST: spool and database both failed",
			"key", e.Key, "tenant", e.TenantID, "kind", e.Kind, "amount", e.Amount.String(),
			"prompt_tokens", e.PromptTokens, "completion_tokens", e.CompletionTokens,
			"spool_err", cause, "db_err", err)
	}
}

// Credit writes one entry (a payment, refund or adjustment) synchronously
// and reports whether it was new; a key already present is not an error.
func (l *Ledger) Credit(ctx context.Context, e Entry) (bool, error) {
	n, err := l.store.Apply(ctx, []Entry{e})
	if err != nil {
		l.m.writeErrors.Inc()
		return false, err
	}
	return n == 1, nil
}

// Store is the ledger's database, for reads.
func (l *Ledger) Store() Store { return l.store }

// Prices is the price list the ledger charges by.
func (l *Ledger) Prices() Prices { return l.cfg.Prices }

// Depth is how many journaled entries are not yet in the database.
func (l *Ledger) Depth() int { return int(l.depth.Load()) }

// appender group-commits submissions into the spool: whatever queued up
// during one fsync goes into the next, and when the queue is empty but
// other requests are mid-flight it waits up to GroupWait for their
// settlements (groupMore), so the fsyncs per settlement fall with load.
func (l *Ledger) appender() {
	defer close(l.appenderQ)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		first, ok := <-l.in
		if !ok {
			return
		}
		batch := l.groupMore([]*submission{first}, timer)
		recs := make([][]byte, len(batch))
		for i, s := range batch {
			recs[i], _ = json.Marshal(s.e) // an Entry always marshals
		}
		seg, err := l.spool.Append(recs)
		if err == nil {
			l.m.groupSize.Observe(float64(len(batch)))
			l.mu.Lock()
			for _, s := range batch {
				l.queue = append(l.queue, queued{e: s.e, seg: seg})
			}
			l.depth.Add(int64(len(batch)))
			l.mu.Unlock()
			l.poke()
		} else {
			l.log.Error("ledger spool append failed; writing to the database directly", "err", err)
		}
		for _, s := range batch {
			s.done <- err
		}
	}
}

// groupMore adds to batch what is already queued and then, while at least
// GroupSiblings holds are still open (settlements that can still come),
// what arrives within GroupWait. No settlement is acknowledged before the
// fsync that covers it, so waiting changes only latency (at most
// GroupWait), never durability.
func (l *Ledger) groupMore(batch []*submission, timer *time.Timer) []*submission {
	waiting := false
	defer func() {
		if waiting {
			timer.Stop()
		}
	}()
	for len(batch) < l.cfg.BatchMax {
		select {
		case s, ok := <-l.in:
			if !ok {
				return batch
			}
			batch = append(batch, s)
			continue
		default:
		}
		if l.cfg.GroupWait < 0 || l.open.Load() < int64(l.cfg.GroupSiblings) {
			return batch
		}
		if !waiting {
			waiting = true
			timer.Reset(l.cfg.GroupWait)
		}
		select {
		case s, ok := <-l.in:
			if !ok {
				return batch
			}
			batch = append(batch, s)
		case <-timer.C:
			return batch
		}
	}
	return batch
}

func waitGroup(wg *sync.WaitGroup) <-chan struct{} {
	c := make(chan struct{})
	go func() { wg.Wait(); close(c) }()
	return c
}

func (l *Ledger) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// writer moves journaled entries into the database in batches, retrying
// with backoff while it is unavailable. Config.Writers of them run at once,
// so one batch is prepared while another commits; batches are independent
// (idempotent by key, balance updates commute), so their order is free.
func (l *Ledger) writer(id int) {
	defer l.writers.Done()
	backoff := time.Duration(0)
	draining := false
	var expire <-chan time.Time
	if id == 0 {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		expire = t.C
	}
	for {
		if l.cfg.BatchDelay > 0 && !draining && l.small() {
			select {
			case <-time.After(l.cfg.BatchDelay):
			case <-l.drain:
				draining = true
			case <-l.stop:
				return
			}
		}
		batch := l.take()
		if batch == nil {
			if draining {
				return
			}
			select {
			case <-l.wake:
			case <-l.drain:
				draining = true
			case <-l.stop:
				return
			case <-expire:
				l.expireHolds()
			}
			continue
		}
		// Let the other writers look for work too.
		l.poke()
		entries := make([]Entry, len(batch))
		for i, q := range batch {
			entries[i] = q.e
		}
		ctx, cancel := context.WithTimeout(context.Background(), l.cfg.WriteTimeout)
		_, err := l.store.Apply(ctx, entries)
		cancel()
		if err != nil {
			l.m.writeErrors.Inc()
			if backoff == 0 {
				l.log.Warn("ledger database write failed; entries stay in the spool and are retried", "entries", len(batch), "err", err)
			}
			l.putBack(batch)
			backoff = min(max(2*backoff, 50*time.Millisecond), 2*time.Second)
			select {
			case <-time.After(backoff):
			case <-l.stop:
				return
			}
			continue
		}
		if backoff > 0 {
			l.log.Info("ledger database writes resumed", "spooled", l.Depth())
		}
		backoff = 0
		l.m.batchSize.Observe(float64(len(batch)))
		// The settled holds' intents are done with too.
		for _, seg := range l.done(batch) {
			l.spool.Ack(seg, 1)
		}
		// Ack per segment.
		for i := 0; i < len(batch); {
			j := i
			for j < len(batch) && batch[j].seg == batch[i].seg {
				j++
			}
			l.spool.Ack(batch[i].seg, j-i)
			i = j
		}
	}
}

// small reports whether some entries are queued, but fewer than a batch.
func (l *Ledger) small() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.queue) > 0 && len(l.queue) < l.cfg.BatchMax
}

// take moves up to BatchMax entries from the queue into flight.
func (l *Ledger) take() []queued {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := min(len(l.queue), l.cfg.BatchMax)
	if n == 0 {
		return nil
	}
	batch := make([]queued, n)
	copy(batch, l.queue[:n])
	l.queue = l.queue[n:]
	l.inflight[&batch[0]] = batch[0].e.Time
	return batch
}

// putBack returns a failed batch to the front of the queue.
func (l *Ledger) putBack(batch []queued) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.inflight, &batch[0])
	l.queue = append(batch, l.queue...)
}

// done forgets a written batch and returns the spool segments of the
// intents its entries settled.
func (l *Ledger) done(batch []queued) []uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.inflight, &batch[0])
	l.depth.Add(-int64(len(batch)))
	var segs []uint64
	for _, q := range batch {
		if seg, ok := l.intents[q.e.Key]; ok {
			delete(l.intents, q.e.Key)
			segs = append(segs, seg)
		}
	}
	return segs
}

func (l *Ledger) expireHolds() {
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.WriteTimeout)
	defer cancel()
	n, err := l.store.ExpireHolds(ctx, l.cfg.Now().Add(-l.cfg.HoldTTL))
	if err != nil {
		l.log.Debug("ledger hold expiry failed", "err", err)
		return
	}
	if n > 0 {
		l.log.Warn("ledger released holds of requests that never settled", "holds", n, "older_than", l.cfg.HoldTTL)
	}
}

// oldest is the age of the oldest journaled entry not yet in the database.
func (l *Ledger) oldest() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var first time.Time
	if len(l.queue) > 0 {
		first = l.queue[0].e.Time
	}
	for _, t := range l.inflight {
		if first.IsZero() || t.Before(first) {
			first = t
		}
	}
	if first.IsZero() {
		return 0
	}
	return l.cfg.Now().Sub(first)
}

// Close stops taking entries, writes what is queued until ctx ends, and
// leaves the rest in the spool for the next start. It does not close the
// store.
func (l *Ledger) Close(ctx context.Context) error {
	l.closing.Lock()
	if l.closed {
		l.closing.Unlock()
		return nil
	}
	l.closed = true
	close(l.in)
	l.closing.Unlock()
	<-l.appenderQ
	close(l.drain)
	l.poke()
	var err error
	select {
	case <-waitGroup(&l.writers):
	case <-ctx.Done():
		close(l.stop)
		l.writers.Wait()
		err = fmt.Errorf("ledger: %d entries left in the spool for replay: %w", l.Depth(), ctx.Err())
	}
	if cerr := l.spool.Close(); err == nil && cerr != nil {
		err = cerr
	}
	l.m.unregister()
	return err
}
