package batch

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/llmctl/llmctl/internal/testenv"
)

// The group commit of RecordLine (linegroup.go) on both stores. The first
// group's write is held until every other caller waits in the queue, so
// the next group is known (no timing is assumed).

func TestLineGroupsSQLite(t *testing.T) {
	testLineGroups(t, func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "llmctl.db") })
}

func TestLineGroupsPostgres(t *testing.T) {
	testLineGroups(t, func(t *testing.T) string { return testenv.PG(t).NewDatabase(t) })
}

// heldStore is a store whose group writes wait for release and report
// each group's size on sizes.
type heldStore struct {
	*sqlStore
	sizes   chan int
	release chan struct{}
}

func openHeld(t *testing.T, dsn string, batches ...string) heldStore {
	t.Helper()
	ctx := context.Background()
	st, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	s := st.(*sqlStore)
	for _, id := range batches {
		b := Batch{ID: id, TenantID: "a", Principal: "{}", InputFileID: "file-in", Endpoint: "/v1/chat/completions",
			CompletionWindow: "24h", Status: StatusInProgress, CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
		if err := s.CreateBatch(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	h := heldStore{sqlStore: s, sizes: make(chan int, 100), release: make(chan struct{}, 100)}
	write := s.lines.write
	s.lines.write = func(ctx context.Context, ws []*lineWrite, recorded []bool) error {
		h.sizes <- len(ws)
		<-h.release
		return write(ctx, ws, recorded)
	}
	return h
}

// waitQueued waits until n writes wait for a group.
func (h heldStore) waitQueued(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
		h.lines.mu.Lock()
		q := len(h.lines.queue)
		h.lines.mu.Unlock()
		if q == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", q, n)
		}
	}
}

// counts is the batch's completed and failed counters and its lines.
func (h heldStore) counts(t *testing.T, batchID string) (completed, failed int64, lines map[string]Line) {
	t.Helper()
	ctx := context.Background()
	b, err := h.Batch(ctx, "a", batchID)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := h.Lines(ctx, batchID)
	if err != nil {
		t.Fatal(err)
	}
	lines = map[string]Line{}
	for _, l := range ls {
		lines[l.CustomID] = l
	}
	return b.Completed, b.Failed, lines
}

type recordResult struct {
	recorded bool
	err      error
}

func testLineGroups(t *testing.T, dsn func(t *testing.T) string) {
	ctx := context.Background()

	t.Run("ConcurrentCallersOneGroupEachLineOnce", func(t *testing.T) {
		h := openHeld(t, dsn(t), "batch-1")
		// The first caller's group of one is held while 40 more queue:
		// 20 lines, each recorded by two callers at once.
		first := make(chan recordResult, 1)
		go func() {
			ok, err := h.RecordLine(ctx, "batch-1", Line{CustomID: "first", LineNo: 100, JSON: `{"first":true}`})
			first <- recordResult{ok, err}
		}()
		if n := <-h.sizes; n != 1 {
			t.Fatalf("first group of %d", n)
		}
		results := make([]recordResult, 40)
		var wg sync.WaitGroup
		for c := range 40 {
			i := c % 20
			wg.Go(func() {
				ok, err := h.RecordLine(ctx, "batch-1", Line{CustomID: fmt.Sprintf("c-%d", i), LineNo: int64(i), Failed: i%4 == 0,
					JSON: fmt.Sprintf(`{"i":%d,"caller":%d}`, i, c)})
				results[c] = recordResult{ok, err}
			})
		}
		h.waitQueued(t, 40)
		h.release <- struct{}{}
		if r := <-first; !r.recorded || r.err != nil {
			t.Fatalf("first line: %+v", r)
		}
		if n := <-h.sizes; n != 40 {
			t.Fatalf("second group of %d writes, want the 40 waiting", n)
		}
		h.release <- struct{}{}
		wg.Wait()
		for i := range 20 {
			a, b := results[i], results[i+20]
			if a.err != nil || b.err != nil || a.recorded == b.recorded {
				t.Fatalf("line c-%d: callers got %+v and %+v, want one recorded, no error", i, a, b)
			}
		}
		completed, failed, lines := h.counts(t, "batch-1")
		if completed != 16 || failed != 5 || len(lines) != 21 {
			t.Fatalf("%d completed, %d failed, %d lines; want 16, 5, 21", completed, failed, len(lines))
		}
		// The group's 40 writes were one transaction: nothing more was
		// written.
		select {
		case n := <-h.sizes:
			t.Fatalf("another group of %d", n)
		default:
		}
	})

	t.Run("FailureMidGroupIsItsCallersAlone", func(t *testing.T) {
		h := openHeld(t, dsn(t), "batch-1")
		go func() { _, _ = h.RecordLine(ctx, "batch-1", Line{CustomID: "first", JSON: `{}`}) }()
		<-h.sizes
		// A line of a batch that does not exist (its row refuses it)
		// between good lines of one group.
		lines := []struct {
			batch, id string
		}{{"batch-1", "a"}, {"batch-1", "b"}, {"no-such-batch", "x"}, {"batch-1", "c"}, {"batch-1", "d"}}
		results := make([]recordResult, len(lines))
		var wg sync.WaitGroup
		for i, l := range lines {
			wg.Go(func() {
				ok, err := h.RecordLine(ctx, l.batch, Line{CustomID: l.id, LineNo: int64(i), Failed: l.id == "d", JSON: `{"id":"` + l.id + `"}`})
				results[i] = recordResult{ok, err}
			})
		}
		h.waitQueued(t, len(lines))
		h.release <- struct{}{}
		if n := <-h.sizes; n != len(lines) {
			t.Fatalf("group of %d writes, want %d", n, len(lines))
		}
		// The group fails as a whole, then each line is written alone.
		for range 1 + len(lines) {
			h.release <- struct{}{}
		}
		wg.Wait()
		for i, l := range lines {
			r := results[i]
			if l.batch == "no-such-batch" {
				if r.err == nil || r.recorded {
					t.Fatalf("line of a missing batch: %+v, want an error", r)
				}
				continue
			}
			if r.err != nil || !r.recorded {
				t.Fatalf("line %s: %+v, want recorded", l.id, r)
			}
		}
		completed, failed, got := h.counts(t, "batch-1")
		if completed != 4 || failed != 1 || len(got) != 5 {
			t.Fatalf("%d completed, %d failed, %d lines; want 4, 1, 5", completed, failed, len(got))
		}
	})

	t.Run("GroupTransactionAllOrNothing", func(t *testing.T) {
		h := openHeld(t, dsn(t), "batch-1")
		close(h.release)
		ws := []*lineWrite{{batchID: "batch-1", line: Line{CustomID: "a", JSON: `{}`}},
			{batchID: "no-such-batch", line: Line{CustomID: "x", JSON: `{}`}},
			{batchID: "batch-1", line: Line{CustomID: "b", Failed: true, JSON: `{}`}}}
		if err := h.recordLines(ctx, ws, make([]bool, len(ws))); err == nil {
			t.Fatal("a group with a line of a missing batch was written")
		}
		completed, failed, got := h.counts(t, "batch-1")
		if completed != 0 || failed != 0 || len(got) != 0 {
			t.Fatalf("half a group recorded: %d completed, %d failed, %d lines", completed, failed, len(got))
		}
	})

	t.Run("CancelledWhileWaitingLeavesNoDeadlock", func(t *testing.T) {
		h := openHeld(t, dsn(t), "batch-1")
		close(h.release)
		// A group is in flight (as far as the queue knows), so both
		// callers wait; the first is cancelled and handed the turn to lead
		// at about the same time. Whichever it sees first, its answer
		// matches the store, and the caller behind it is recorded.
		h.lines.mu.Lock()
		h.lines.busy = true
		h.lines.mu.Unlock()
		cctx, cancel := context.WithCancel(ctx)
		gone := make(chan recordResult, 1)
		go func() {
			ok, err := h.RecordLine(cctx, "batch-1", Line{CustomID: "gone", JSON: `{}`})
			gone <- recordResult{ok, err}
		}()
		h.waitQueued(t, 1)
		behind := make(chan recordResult, 1)
		go func() {
			ok, err := h.RecordLine(ctx, "batch-1", Line{CustomID: "behind", JSON: `{}`})
			behind <- recordResult{ok, err}
		}()
		h.waitQueued(t, 2)
		cancel()
		h.lines.mu.Lock()
		h.lines.handOff() // as a finished group would
		h.lines.mu.Unlock()
		g, b := <-gone, <-behind
		if b.err != nil || !b.recorded {
			t.Fatalf("the caller behind a cancelled one: %+v", b)
		}
		_, _, lines := h.counts(t, "batch-1")
		if _, stored := lines["gone"]; stored != g.recorded || (!g.recorded && !errors.Is(g.err, context.Canceled)) {
			t.Fatalf("cancelled caller got %+v, its line stored: %v", g, stored)
		}
	})
}
