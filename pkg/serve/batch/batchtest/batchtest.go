// Package batchtest is the conformance suite every batch.Store passes
// (SQLite and PostgreSQL alike).
package batchtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/serve/batch"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newBatch(id, tenant string, created time.Time) batch.Batch {
	return batch.Batch{ID: id, TenantID: tenant, Principal: `{"TenantID":"` + tenant + `"}`, InputFileID: "file-in",
		Endpoint: "/v1/chat/completions", CompletionWindow: "24h", Metadata: `{"k":"v"}`, Status: batch.StatusValidating,
		CreatedAt: created, ExpiresAt: created.Add(24 * time.Hour)}
}

// Run runs the suite; open returns a fresh, empty store.
func Run(t *testing.T, open func(t *testing.T) batch.Store) {
	ctx := context.Background()

	t.Run("FilesBelongToTheirTenant", func(t *testing.T) {
		s := open(t)
		content := []byte("{\"custom_id\":\"a\"}\n\x00\xff binary kept")
		f := batch.File{ID: "file-1", TenantID: "a", Purpose: "batch", Filename: "in.jsonl", CreatedAt: t0, Content: content}
		if err := s.CreateFile(ctx, f); err != nil {
			t.Fatal(err)
		}
		got, err := s.File(ctx, "a", "file-1")
		if err != nil {
			t.Fatal(err)
		}
		if got.Size != int64(len(content)) || got.Content != nil || !got.CreatedAt.Equal(t0) || got.Filename != "in.jsonl" || got.Purpose != "batch" {
			t.Fatalf("file %+v", got)
		}
		full, err := s.FileContent(ctx, "a", "file-1")
		if err != nil || string(full.Content) != string(content) {
			t.Fatalf("content %q, %v", full.Content, err)
		}
		for _, fn := range []func() error{
			func() error { _, err := s.File(ctx, "b", "file-1"); return err },
			func() error { _, err := s.FileContent(ctx, "b", "file-1"); return err },
			func() error { return s.DeleteFile(ctx, "b", "file-1") },
			func() error { _, err := s.File(ctx, "a", "file-2"); return err },
		} {
			if err := fn(); !errors.Is(err, batch.ErrNotFound) {
				t.Fatalf("another tenant or id: %v, want ErrNotFound", err)
			}
		}
		if err := s.DeleteFile(ctx, "a", "file-1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.File(ctx, "a", "file-1"); !errors.Is(err, batch.ErrNotFound) {
			t.Fatalf("deleted file: %v", err)
		}
		if err := s.DeleteFile(ctx, "a", "file-1"); !errors.Is(err, batch.ErrNotFound) {
			t.Fatalf("deleted twice: %v", err)
		}
		// An empty file is kept as empty, not absent.
		if err := s.CreateFile(ctx, batch.File{ID: "file-e", TenantID: "a", Purpose: "batch_output", Filename: "o.jsonl", CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
		if e, err := s.FileContent(ctx, "a", "file-e"); err != nil || e.Size != 0 || e.Content == nil {
			t.Fatalf("empty file %+v, %v", e, err)
		}
	})

	t.Run("BatchRoundTripAndTransitions", func(t *testing.T) {
		s := open(t)
		b := newBatch("batch-1", "a", t0)
		if err := s.CreateBatch(ctx, b); err != nil {
			t.Fatal(err)
		}
		got, err := s.Batch(ctx, "a", "batch-1")
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(b) {
			t.Fatalf("read back\n%+v\nwant\n%+v", got, b)
		}
		if _, err := s.Batch(ctx, "b", "batch-1"); !errors.Is(err, batch.ErrNotFound) {
			t.Fatalf("other tenant: %v", err)
		}
		b.Status, b.Total, b.InProgressAt = batch.StatusInProgress, 3, t0.Add(time.Second)
		if ok, err := s.UpdateBatch(ctx, b, batch.StatusValidating); err != nil || !ok {
			t.Fatalf("update: %v %v", ok, err)
		}
		// A stale transition (from a state it is no longer in) is refused.
		stale := b
		stale.Status = batch.StatusFailed
		if ok, err := s.UpdateBatch(ctx, stale, batch.StatusValidating); err != nil || ok {
			t.Fatalf("stale update applied: %v %v", ok, err)
		}
		got, _ = s.Batch(ctx, "a", "batch-1")
		if got.Status != batch.StatusInProgress || got.Total != 3 || !got.InProgressAt.Equal(t0.Add(time.Second)) || !got.CompletedAt.IsZero() {
			t.Fatalf("after update %+v", got)
		}
		un, err := s.Unfinished(ctx)
		if err != nil || len(un) != 1 || un[0].ID != "batch-1" {
			t.Fatalf("unfinished %v %v", un, err)
		}
		b.Status, b.CompletedAt, b.OutputFileID = batch.StatusCompleted, t0.Add(time.Minute), "file-out"
		if ok, err := s.UpdateBatch(ctx, b, batch.StatusInProgress); err != nil || !ok {
			t.Fatalf("complete: %v %v", ok, err)
		}
		if un, _ := s.Unfinished(ctx); len(un) != 0 {
			t.Fatalf("a completed batch is unfinished: %v", un)
		}
	})

	t.Run("LinesExactlyOnce", func(t *testing.T) {
		s := open(t)
		b := newBatch("batch-1", "a", t0)
		if err := s.CreateBatch(ctx, b); err != nil {
			t.Fatal(err)
		}
		// Many writers record the same 20 lines; each lands and counts once.
		var recorded atomic.Int64
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for i := range 20 {
					l := batch.Line{CustomID: fmt.Sprintf("c-%d", i), LineNo: int64(i), Failed: i%5 == 0, JSON: fmt.Sprintf(`{"i":%d,"w":%d}`, i, w)}
					ok, err := s.RecordLine(ctx, "batch-1", l)
					if err != nil {
						t.Error(err)
						return
					}
					if ok {
						recorded.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if recorded.Load() != 20 {
			t.Fatalf("recorded %d lines, want 20", recorded.Load())
		}
		got, _ := s.Batch(ctx, "a", "batch-1")
		if got.Completed != 16 || got.Failed != 4 {
			t.Fatalf("counts %d completed %d failed, want 16 and 4", got.Completed, got.Failed)
		}
		lines, err := s.Lines(ctx, "batch-1")
		if err != nil || len(lines) != 20 {
			t.Fatalf("lines %d, %v", len(lines), err)
		}
		for i, l := range lines {
			if l.LineNo != int64(i) || l.CustomID != fmt.Sprintf("c-%d", i) || l.Failed != (i%5 == 0) {
				t.Fatalf("line %d: %+v", i, l)
			}
		}
	})

	t.Run("LeaseOneOwnerAtATime", func(t *testing.T) { lease(t, open(t)) })

	t.Run("ListPagesNewestFirstPerTenant", func(t *testing.T) {
		s := open(t)
		for i := range 5 {
			// Two share a second: the id breaks the tie.
			if err := s.CreateBatch(ctx, newBatch(fmt.Sprintf("batch-%d", i), "a", t0.Add(time.Duration(i/2)*time.Second))); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.CreateBatch(ctx, newBatch("batch-x", "b", t0)); err != nil {
			t.Fatal(err)
		}
		var ids []string
		after := ""
		for {
			page, more, err := s.ListBatches(ctx, "a", after, 2)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range page {
				ids = append(ids, b.ID)
			}
			if !more {
				break
			}
			after = page[len(page)-1].ID
		}
		if fmt.Sprint(ids) != "[batch-4 batch-3 batch-2 batch-1 batch-0]" {
			t.Fatalf("pages %v", ids)
		}
		if _, _, err := s.ListBatches(ctx, "a", "batch-x", 2); !errors.Is(err, batch.ErrNotFound) {
			t.Fatalf("another tenant's cursor: %v", err)
		}
	})

	t.Run("ListFilesPagesPerTenant", func(t *testing.T) { listFiles(t, open(t)) })
}

// listFiles: a tenant's files page in created order either way (the id
// breaks a tie within a second), by purpose, never another tenant's.
func listFiles(t *testing.T, s batch.Store) {
	ctx := context.Background()
	for i := range 5 {
		purpose := "batch"
		if i%2 == 1 {
			purpose = "batch_output"
		}
		f := batch.File{ID: fmt.Sprintf("file-%d", i), TenantID: "a", Purpose: purpose, Filename: "f.jsonl",
			CreatedAt: t0.Add(time.Duration(i/2) * time.Second), Content: []byte("x")}
		if err := s.CreateFile(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateFile(ctx, batch.File{ID: "file-x", TenantID: "b", Purpose: "batch", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	all := func(q batch.FileQuery) string {
		t.Helper()
		var ids []string
		for {
			page, more, err := s.ListFiles(ctx, "a", q)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range page {
				if f.Content != nil || f.Size != 1 {
					t.Fatalf("listed %+v", f)
				}
				ids = append(ids, f.ID)
			}
			if !more {
				return fmt.Sprint(ids)
			}
			q.After = page[len(page)-1].ID
		}
	}
	for _, tc := range []struct {
		q    batch.FileQuery
		want string
	}{
		{batch.FileQuery{Limit: 2}, "[file-4 file-3 file-2 file-1 file-0]"},
		{batch.FileQuery{Limit: 2, Asc: true}, "[file-0 file-1 file-2 file-3 file-4]"},
		{batch.FileQuery{Limit: 1, Purpose: "batch_output"}, "[file-3 file-1]"},
		{batch.FileQuery{Limit: 10, Purpose: "batch", Asc: true}, "[file-0 file-2 file-4]"},
	} {
		if got := all(tc.q); got != tc.want {
			t.Fatalf("%+v: %s, want %s", tc.q, got, tc.want)
		}
	}
	if _, _, err := s.ListFiles(ctx, "a", batch.FileQuery{Limit: 2, After: "file-x"}); !errors.Is(err, batch.ErrNotFound) {
		t.Fatalf("another tenant's cursor: %v", err)
	}
}

// lease: the batch row's lease goes to one owner at a time, is renewed by
// it, and passes to another only once it has ended; a finished batch is
// nobody's.
func lease(t *testing.T, s batch.Store) {
	ctx := context.Background()
	const ttl = 30 * time.Second
	if err := s.CreateBatch(ctx, newBatch("batch-1", "a", t0)); err != nil {
		t.Fatal(err)
	}
	claim := func(owner string, at time.Time, want bool) {
		t.Helper()
		ok, err := s.Claim(ctx, "batch-1", owner, at, ttl)
		if err != nil || ok != want {
			t.Fatalf("%s claims at t0+%s: %v, %v; want %v", owner, at.Sub(t0), ok, err, want)
		}
	}
	// Of many replicas racing for a fresh batch, exactly one gets it.
	var won atomic.Int64
	var winner atomic.Value
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			owner := fmt.Sprintf("r%d", i)
			ok, err := s.Claim(ctx, "batch-1", owner, t0, ttl)
			if err != nil {
				t.Error(err)
			}
			if ok {
				won.Add(1)
				winner.Store(owner)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d replicas took the lease at once, want 1", won.Load())
	}
	a := winner.Load().(string)
	b := "other"
	claim(b, t0.Add(ttl-time.Second), false) // still a's
	claim(a, t0.Add(10*time.Second), true)   // renewed: until t0+40s
	claim(b, t0.Add(ttl+time.Second), false) // the renewal counts
	claim(b, t0.Add(10*time.Second+ttl+time.Millisecond), true)
	claim(a, t0.Add(10*time.Second+ttl+2*time.Millisecond), false) // a lost it: its renewal fails
	// Release by another owner changes nothing; by the owner, frees it.
	if err := s.Release(ctx, "batch-1", a); err != nil {
		t.Fatal(err)
	}
	claim(a, t0.Add(45*time.Second), false)
	if err := s.Release(ctx, "batch-1", b); err != nil {
		t.Fatal(err)
	}
	claim(a, t0.Add(45*time.Second), true)
	// A finished batch: its owner's renewal still succeeds (it may have
	// just finished it); nobody else can take it, even once the lease ended.
	done := newBatch("batch-1", "a", t0)
	done.Status, done.CompletedAt = batch.StatusCompleted, t0.Add(time.Minute)
	if ok, err := s.UpdateBatch(ctx, done, batch.StatusValidating); err != nil || !ok {
		t.Fatalf("complete: %v %v", ok, err)
	}
	claim(a, t0.Add(50*time.Second), true)
	claim(b, t0.Add(time.Hour), false)
	if err := s.Release(ctx, "batch-1", a); err != nil {
		t.Fatal(err)
	}
	claim(b, t0.Add(time.Hour), false)
}
