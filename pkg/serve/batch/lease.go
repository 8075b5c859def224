package batch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// The lease (docs/batches.md): a replica works a batch only while it holds
// the batch row's lease (Store.Claim), renews it every LeaseRenew, and
// stops starting lines once a renewal fails or its own clock passes the
// last renewal + LeaseTTL − LeaseRenew. Another replica claims the batch
// only after the lease's end (the last renewal + LeaseTTL), so the
// LeaseRenew between the two covers clock skew between replicas and a
// started line's way to its reservation. A line already running when the
// lease is lost finishes and is recorded (Store.RecordLine keeps the first
// answer); a line still waiting for a backend slot gives up and is run by
// the next owner.

// errLeaseLost ends the work on a batch whose lease this process lost.
var errLeaseLost = errors.New("lost the batch's lease")

// statusLeaseLost is runLines' internal stop for a lost lease: the batch
// stays as it is, for its next owner.
const statusLeaseLost Status = "lease_lost"

// lease is this process's hold on one batch.
type lease struct {
	mu    sync.Mutex
	until time.Time // by this process's clock: no line starts from then on
	lost  bool
}

func (l *lease) valid(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.lost && now.Before(l.until)
}

func (l *lease) renewed(until time.Time) {
	l.mu.Lock()
	l.until = until
	l.mu.Unlock()
}

func (l *lease) lose() {
	l.mu.Lock()
	l.lost = true
	l.mu.Unlock()
}

// newOwner names this process in the lease: host, pid and a random part
// (two processes of one pid, one after another, are not the same owner).
func newOwner() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// claim takes batchID's lease; nil if another replica holds it.
func (s *Service) claim(ctx context.Context, batchID string) (*lease, error) {
	now := s.opts.Now()
	ok, err := s.opts.Store.Claim(ctx, batchID, s.opts.Owner, now, s.opts.LeaseTTL)
	if err != nil || !ok {
		return nil, err
	}
	return &lease{until: now.Add(s.opts.LeaseTTL - s.opts.LeaseRenew)}, nil
}

// keep renews l every LeaseRenew until ctx ends. The first renewal that
// fails (another replica holds the batch, or the database did not answer)
// ends the lease: no line starts any more and lost() cancels the lines
// still waiting for a slot.
func (s *Service) keep(ctx context.Context, batchID string, l *lease, lost context.CancelFunc) {
	t := time.NewTicker(s.opts.LeaseRenew)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := s.opts.Now()
		ok, err := s.opts.Store.Claim(ctx, batchID, s.opts.Owner, now, s.opts.LeaseTTL)
		if err == nil && ok {
			l.renewed(now.Add(s.opts.LeaseTTL - s.opts.LeaseRenew))
			continue
		}
		if ctx.Err() != nil {
			return
		}
		l.lose()
		lost()
		s.log.WarnContext(ctx, "batch worker lost the batch's lease; its running lines finish, no more start here",
			"batch", batchID, "owner", s.opts.Owner, "err", err)
		return
	}
}

// work runs batch b under its lease l and gives the lease back when done.
func (s *Service) work(ctx context.Context, b Batch, l *lease) error {
	bctx, cancel := context.WithCancel(ctx)
	kept := make(chan struct{})
	go func() { defer close(kept); s.keep(bctx, b.ID, l, cancel) }()
	err := s.process(bctx, b, l)
	cancel()
	<-kept
	// Given back at once, so that after a graceful stop another replica
	// need not wait out the TTL (a killed process's lease just ends).
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer rcancel()
	if rerr := s.opts.Store.Release(rctx, b.ID, s.opts.Owner); rerr != nil {
		s.log.WarnContext(ctx, "batch worker: give back the lease", "batch", b.ID, "err", rerr)
	}
	if errors.Is(err, context.Canceled) && ctx.Err() == nil {
		err = errLeaseLost // bctx ended by keep, not by the caller
	}
	return err
}
