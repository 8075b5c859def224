package limits

import (
	"context"
	"sync"
	"time"
)

// settler takes Redis settlements (token corrections and slot releases) off
// the request path. Ticket.Done only queues one; a background flusher sends
// what is queued as one pipeline, and Admit sends whatever is still queued
// in its own pipeline just before its decision. Either way a settlement
// queued by this replica before an Admit started lands in Redis before that
// Admit is decided: Admit waits for batches already on the wire and sends
// the rest ahead of itself on the same connection. So a client whose
// previous request here has finished never meets its own stale slot, and
// counters are never lower than they would have been with a synchronous
// Done (a late settle only frees a slot or refunds tokens late).
//
// If the process dies with settlements queued, the slots they would have
// freed expire with their lease (Config.SlotLease), exactly as for a
// request in flight; an unapplied token correction leaves the reservation
// counted in full, which errs towards refusing, never towards over-admitting.
type settler struct {
	st    *redisStore
	onErr func(error)

	mu      sync.Mutex
	pending []settleRequest
	wire    map[*flight]struct{} // batches sent, not yet answered
	closed  bool
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	paused  chan struct{} // tests: while non-nil and open, the flusher does not run
}

type flight struct{ done chan struct{} }

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

// take moves everything queued onto the wire, returning it with the batches
// already there (which the caller must wait for to keep the order).
func (s *settler) take() (batch []settleRequest, f *flight, earlier []*flight) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for e := range s.wire {
		earlier = append(earlier, e)
	}
	if len(s.pending) == 0 {
		return nil, nil, earlier
	}
	batch, s.pending = s.pending, nil
	f = &flight{done: make(chan struct{})}
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

// admit decides r after every settlement queued before it.
func (s *settler) admit(ctx context.Context, r admitRequest) (admitResult, error) {
	batch, f, earlier := s.take()
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
	defer s.landed(f)
	res, err := s.st.pipelined(ctx, batch, &r)
	if err != nil && len(batch) > 0 {
		s.onErr(err) // the batch's slots expire with their lease
	}
	return res, err
}

func (s *settler) run() {
	defer close(s.done)
	for {
		select {
		case <-s.kick:
		case <-s.stop:
			s.flush()
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

// flush sends what is queued as one pipeline.
func (s *settler) flush() {
	batch, f, _ := s.take()
	if f != nil {
		// Settles commute with each other: earlier batches need no waiting.
		s.send(batch, f)
	}
}

func (s *settler) send(batch []settleRequest, f *flight) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, err := s.st.pipelined(ctx, batch, nil)
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
