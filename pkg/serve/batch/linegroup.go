package batch

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Group commit of finished lines. One synced transaction per line made
// the line store the batch's bottleneck: the lines running at once each
// waited for their own commit, and on the batches row whose counters each
// transaction updates, for the commits before theirs. Instead one writer
// at a time (the leader) records every line waiting when it starts in one
// transaction; the lines that finish meanwhile form the next group. A
// line waits at most for the group in flight and then its own (gathered
// for at most lineGroupDelay), and its caller returns only once its own
// line is committed (or refused): nothing is acknowledged before it is
// durable, so kill -9 loses only lines whose callers had not returned,
// which the next owner runs again (charges.go).

// maxLineGroup bounds one group's transaction (and its statement's
// parameters: 5 a line).
const maxLineGroup = 256

// lineGroupDelay is how long a leader lets its group gather while lines
// arrive together (its last group had more than one): a commit is a
// synced write that, on SQLite, also holds the one write lock the
// ledger's reservations wait for, so fewer, larger groups leave the
// running lines' reservations more room. A lone writer commits at once.
const lineGroupDelay = 10 * time.Millisecond

// lineWrite is one RecordLine call waiting in a lineGroups.
type lineWrite struct {
	batchID string
	line    Line
	// done carries, in this order: the turn to lead (only to a waiting
	// write that no group took yet), then the write's outcome.
	done chan lineOutcome
}

type lineOutcome struct {
	lead     bool
	recorded bool
	err      error
}

// lineGroups gathers concurrent RecordLine calls into group transactions.
type lineGroups struct {
	// write records ws in one transaction, all or nothing, setting each
	// recorded[i]; it reports the transaction's error.
	write func(ctx context.Context, ws []*lineWrite, recorded []bool) error

	mu    sync.Mutex
	queue []*lineWrite // waiting for a group, in arrival order
	busy  bool         // a leader is writing (or was handed the turn)
	last  int          // the size of the last group written
}

// record stores l as RecordLine does, in a group with the lines recorded
// at the same time. ctx ending while l waits for a group withdraws it
// (nothing recorded); once l is in a group in flight, that group's outcome
// is l's, whatever ctx does.
func (g *lineGroups) record(ctx context.Context, batchID string, l Line) (bool, error) {
	w := &lineWrite{batchID: batchID, line: l, done: make(chan lineOutcome, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, w)
	lead := !g.busy
	g.busy = true
	g.mu.Unlock()
	if !lead {
		var o lineOutcome
		select {
		case o = <-w.done:
		case <-ctx.Done():
			if g.withdraw(w) {
				return false, ctx.Err()
			}
			o = <-w.done
		}
		if !o.lead {
			return o.recorded, o.err
		}
	}
	g.lead(ctx)
	o := <-w.done
	return o.recorded, o.err
}

// withdraw takes w out of the queue if no group took it yet, passing on
// the turn to lead if w had been handed it.
func (g *lineGroups) withdraw(w *lineWrite) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	i := slices.Index(g.queue, w)
	if i < 0 {
		return false
	}
	g.queue = slices.Delete(g.queue, i, i+1)
	select {
	case <-w.done: // w's turn to lead (nothing else reaches a queued write)
		g.handOff()
	default:
	}
	return true
}

// handOff gives the turn to lead to the first waiting write, or ends the
// writing; g.mu is held.
func (g *lineGroups) handOff() {
	if len(g.queue) == 0 {
		g.busy = false
		return
	}
	g.queue[0].done <- lineOutcome{lead: true}
}

// lead writes the waiting lines (the leader's among them) as one group,
// tells each its outcome and hands the turn on. The group's transaction
// does not end with the leader's ctx: the other writes in it are not the
// leader's to cancel.
func (g *lineGroups) lead(ctx context.Context) {
	g.mu.Lock()
	gather := g.last > 1 && len(g.queue) < maxLineGroup
	g.mu.Unlock()
	if gather {
		// Not ctx: the writes already waiting are not the leader's to
		// cut short, and the wait is bounded.
		time.Sleep(lineGroupDelay)
	}
	g.mu.Lock()
	n := min(len(g.queue), maxLineGroup)
	group := slices.Clone(g.queue[:n])
	g.queue = slices.Delete(g.queue, 0, n)
	g.last = n
	g.mu.Unlock()

	outs := g.writeGroup(context.WithoutCancel(ctx), group)
	for i, w := range group {
		w.done <- outs[i]
	}
	g.mu.Lock()
	g.handOff()
	g.mu.Unlock()
}

// writeGroup records group in one transaction. If that fails, nothing of
// it was recorded, and each line is written again in its own transaction:
// one line's error (its batch was deleted, say) is its caller's alone, and
// the rest of its group is recorded.
func (g *lineGroups) writeGroup(ctx context.Context, group []*lineWrite) []lineOutcome {
	outs := make([]lineOutcome, len(group))
	recorded := make([]bool, len(group))
	err := g.write(ctx, group, recorded)
	if err != nil && len(group) > 1 {
		for i, w := range group {
			one := []bool{false}
			err := g.write(ctx, []*lineWrite{w}, one)
			outs[i] = lineOutcome{recorded: one[0] && err == nil, err: err}
		}
		return outs
	}
	for i := range group {
		outs[i] = lineOutcome{recorded: recorded[i] && err == nil, err: err}
	}
	return outs
}
