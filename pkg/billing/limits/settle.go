package limits

import (
	"context"
	"sync"
	"time"
)

// settler takes Redis settlements (token corrections and slot releases) off
// the request path. Ticket.Done only queues one. The next Admit of the same
// owner (API key, else tenant) on this replica runs that owner's queued
// settlements in its own script run, before its decision (one round trip,
// atomic); what no Admit took within flushDelay a flusher sends as one
// pipeline.
//
// Order: a settlement queued before an Admit of the same owner started
// lands in Redis before that Admit is decided: the Admit carries it, or
// waits for the batch already on the wire with it. So a client whose
// previous request here has finished never meets its own stale slot. Other
// owners' batches are not waited for (their order was never promised:
// different clients race anyway), so concurrent callers do not queue behind
// each other's pipelines. A late settle only frees a slot or refunds tokens
// late: counters are never lower than with a synchronous Done.
//
// If the process dies with settlements queued, the slots they would have
// freed expire with their lease (Config.SlotLease), exactly as for a
// request in flight; an unapplied token correction leaves the reservation
// counted in full, which errs towards refusing, never towards over-admitting.
type settler struct {
	st    *redisStore
	onErr func(error)

	mu      sync.Mutex
	closed  bool
	pending []settleRequest
	wire    map[*flight]struct{} // batches sent, not yet answered
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	paused  chan struct{} // tests: while non-nil and open, the flusher does not run
}

// flight is a batch on the wire and the owners whose settlements it holds.
type flight struct {
	owners map[string]struct{}
	done   chan struct{}
}

// flushDelay is how long a queued settlement waits for an Admit to carry
// it before the flusher sends it alone. Sending at once would put it on the
// wire just when the owner's next Admit arrives, which must then wait for
// it: two round trips again. A slot freed a few ms late only errs towards
// refusing.
const flushDelay = 5 * time.Millisecond

func newSettler(st *redisStore, onErr func(error)) *settler {
	s := &settler{st: st, onErr: onErr, wire: map[*flight]struct{}{},
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s
}

// enqueue queues r and wakes the flusher; it never blocks on Redis. After
// close it refuses (false), and the caller settles synchronously.
func (s *settler) enqueue(r settleRequest) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	s.pending = append(s.pending, r)
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return true
}

// take moves the queued settlements of owner (all of them when owner is
// "") onto the wire, and returns the batches already there holding that
// owner's, which the caller must wait for to keep the order.
func (s *settler) take(owner string) (batch []settleRequest, f *flight, earlier []*flight) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if owner != "" {
		for e := range s.wire {
			if _, ok := e.owners[owner]; ok {
				earlier = append(earlier, e)
			}
		}
	}
	keep := s.pending[:0]
	for _, r := range s.pending {
		if owner == "" || r.owner == owner {
			batch = append(batch, r)
		} else {
			keep = append(keep, r)
		}
	}
	clear(s.pending[len(keep):])
	s.pending = keep
	if len(batch) == 0 {
		return nil, nil, earlier
	}
	f = &flight{owners: map[string]struct{}{}, done: make(chan struct{})}
	for _, r := range batch {
		f.owners[r.owner] = struct{}{}
	}
	s.wire[f] = struct{}{}
	return batch, f, earlier
}

func (s *settler) landed(f *flight) {
	if f == nil {
		return
	}
	s.mu.Lock()
	delete(s.wire, f)
	s.mu.Unlock()
	close(f.done)
}

// admit decides r after every settlement of its owner queued before it.
func (s *settler) admit(ctx context.Context, r admitRequest) (admitResult, error) {
	batch, f, earlier := s.take(r.owner)
	for _, e := range earlier {
		select {
		case <-e.done:
		case <-ctx.Done():
			// The caller gave up, but the batch it took must still land
			// before anyone waiting on it goes ahead.
			if f != nil {
				go s.send(batch, f)
			}
			return admitResult{}, ctx.Err()
		}
	}
	if f == nil {
		return s.st.admit(ctx, r)
	}
	defer s.landed(f)
	res, err := s.st.settleAdmit(ctx, batch, r)
	if err != nil {
		s.onErr(err) // the batch's slots expire with their lease
	}
	return res, err
}

func (s *settler) run() {
	defer close(s.done)
	t := time.NewTimer(flushDelay)
	t.Stop()
	for {
		select {
		case <-s.kick:
		case <-s.stop:
			s.flush()
			return
		}
		t.Reset(flushDelay)
		select {
		case <-t.C:
		case <-s.stop:
			t.Stop()
			if s.paused == nil {
				s.flush()
			}
			return
		}
		if p := s.paused; p != nil {
			select {
			case <-p:
			case <-s.stop:
				return // a "dead" replica in tests: nothing more is sent
			}
		}
		s.flush()
	}
}

// flush sends everything queued as one pipeline.
func (s *settler) flush() {
	batch, f, _ := s.take("")
	if f != nil {
		// Settles commute with each other: earlier batches need no waiting.
		s.send(batch, f)
	}
}

func (s *settler) send(batch []settleRequest, f *flight) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	err := s.st.pipelined(ctx, batch)
	cancel()
	s.landed(f)
	if err != nil {
		s.onErr(err)
	}
}

// close sends what is queued and stops the flusher.
func (s *settler) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.done
}
