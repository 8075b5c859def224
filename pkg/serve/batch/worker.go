package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/llmctl/llmctl/pkg/billing"
)

// Run is the worker: it takes every unfinished batch (its own, a restart's
// leftovers, another replica's once its lease ended) through validating →
// in_progress → finalizing → completed (or failed, cancelled, expired)
// until ctx ends. Every finished line is recorded once per (batch id,
// custom_id), so a batch resumes where it stopped. One replica works on a
// batch at a time: the one holding the batch row's lease (lease.go); a
// line that a crashed owner ran and was charged for is charged once
// (charges.go).
func (s *Service) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTicker(s.opts.PollInterval)
	defer t.Stop()
	for {
		bs, err := s.opts.Store.Unfinished(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "batch worker: list unfinished batches", "err", err)
		}
		for _, b := range bs {
			s.mu.Lock()
			busy := s.running[b.ID]
			s.running[b.ID] = true
			s.mu.Unlock()
			var l *lease
			if !busy {
				var err error
				if l, err = s.claim(ctx, b.ID); err != nil && ctx.Err() == nil {
					s.log.ErrorContext(ctx, "batch worker: claim a batch", "batch", b.ID, "err", err)
				}
			}
			if l == nil {
				if !busy {
					s.mu.Lock()
					delete(s.running, b.ID)
					s.mu.Unlock()
				}
				continue
			}
			wg.Go(func() {
				defer func() {
					s.mu.Lock()
					delete(s.running, b.ID)
					s.mu.Unlock()
				}()
				switch err := s.work(ctx, b, l); {
				case errors.Is(err, errLeaseLost):
					s.log.InfoContext(ctx, "batch worker stopped: its lease was lost", "batch", b.ID)
				case err != nil && ctx.Err() == nil:
					s.log.ErrorContext(ctx, "batch worker", "batch", b.ID, "err", err)
				}
			})
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.wake:
		}
	}
}

// process advances b until it is terminal, ctx ends or l is lost.
func (s *Service) process(ctx context.Context, b Batch, l *lease) error {
	// valid is the input as validate just read it, so that runLines
	// need not read and parse the whole file again.
	var valid []Request
	for !b.Status.Terminal() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !l.valid(s.opts.Now()) {
			return errLeaseLost
		}
		var err error
		switch b.Status {
		case StatusValidating:
			valid, err = s.validate(ctx, b)
		case StatusInProgress, StatusCancelling:
			err = s.runLines(ctx, b, l, valid)
			valid = nil // a second pass reads the input again
		case StatusFinalizing:
			err = s.finalize(ctx, b)
		default:
			return fmt.Errorf("unknown status %q", b.Status)
		}
		if err != nil {
			return err
		}
		if b, err = s.opts.Store.Batch(ctx, b.TenantID, b.ID); err != nil {
			return err
		}
	}
	return nil
}

// inputRequests reads and validates the batch's input file.
func (s *Service) inputRequests(ctx context.Context, b Batch) ([]Request, []LineError, error) {
	f, err := s.opts.Store.FileContent(ctx, b.TenantID, b.InputFileID)
	if errors.Is(err, ErrNotFound) {
		return nil, []LineError{{Code: "file_not_found", Message: fmt.Sprintf("the input file %s was deleted", b.InputFileID)}}, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var p billing.Principal
	if err := json.Unmarshal([]byte(b.Principal), &p); err != nil {
		return nil, nil, fmt.Errorf("decode principal: %w", err)
	}
	reqs, errs := Validate(f.Content, b.Endpoint, s.opts.Limits, p.Allows)
	return reqs, errs, nil
}

// validate checks the input file up front: the batch fails with errors
// naming the lines, before anything runs or is charged; or it starts
// with the lines returned.
func (s *Service) validate(ctx context.Context, b Batch) ([]Request, error) {
	reqs, errs, err := s.inputRequests(ctx, b)
	if err != nil {
		return nil, err
	}
	now := s.opts.Now()
	if len(errs) > 0 {
		ej, err := json.Marshal(errs)
		if err != nil {
			return nil, fmt.Errorf("encode errors: %w", err)
		}
		b.Status, b.Errors, b.FailedAt = StatusFailed, string(ej), now
		s.log.InfoContext(ctx, "batch failed validation", "batch", b.ID, "errors", errorSummary(errs))
		reqs = nil // nothing of a failed input runs
	} else {
		b.Status, b.Total, b.InProgressAt = StatusInProgress, int64(len(reqs)), now
	}
	_, err = s.opts.Store.UpdateBatch(ctx, b, StatusValidating) // lost to a cancel: process rereads
	return reqs, err
}

// outputLine is one line of the output or error file, as OpenAI documents.
type outputLine struct {
	ID       string          `json:"id"`
	CustomID string          `json:"custom_id"`
	Response *lineResponse   `json:"response"`
	Error    *lineErrorField `json:"error"`
}

type lineResponse struct {
	StatusCode int             `json:"status_code"`
	RequestID  string          `json:"request_id"`
	Body       json.RawMessage `json:"body"`
}

type lineErrorField struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// requestID is a line's request id: stable across restarts, so the ledger
// entry of a rerun line has the same key.
func requestID(batchID string, line int64) string { return fmt.Sprintf("%s-%d", batchID, line) }

// runLines runs every line not yet recorded, Concurrency at a time, until
// the batch is cancelled or expires or l is lost; then moves it on. A line
// whose earlier run still holds a reservation (charges.go) waits for its
// outcome, polled every PollInterval. valid is the input if this process
// just validated it, else nil (it is read again).
func (s *Service) runLines(ctx context.Context, b Batch, l *lease, valid []Request) error {
	reqs, errs := valid, []LineError(nil)
	if reqs == nil {
		var err error
		if reqs, errs, err = s.inputRequests(ctx, b); err != nil {
			return err
		}
	}
	if len(errs) > 0 {
		// The input changed under a running batch (it was deleted): the
		// batch fails, or is cancelled if that was asked.
		if b.Status == StatusCancelling {
			reqs = nil
		} else {
			ej, _ := json.Marshal(errs)
			from := b.Status
			b.Status, b.Errors, b.FailedAt = StatusFailed, string(ej), s.opts.Now()
			_, err := s.opts.Store.UpdateBatch(ctx, b, from)
			return err
		}
	}
	var p billing.Principal
	if err := json.Unmarshal([]byte(b.Principal), &p); err != nil {
		return fmt.Errorf("decode principal: %w", err)
	}
	// stop ends starting lines when the batch is cancelled or expires or
	// the lease is lost; a running line finishes (it is never cut halfway
	// through its charge).
	//
	// A cancel is looked for at most every cancelEvery (real time): a read
	// of the batch before every line would bound the batch's throughput by
	// one database round trip a line.
	var lastLook time.Time
	stopped := func() (Status, bool) {
		if !l.valid(s.opts.Now()) {
			return statusLeaseLost, true
		}
		if s.opts.Now().After(b.ExpiresAt) {
			return StatusExpired, true
		}
		if b.Status == StatusCancelling {
			return StatusCancelling, true
		}
		if time.Since(lastLook) < cancelEvery {
			return "", false
		}
		lastLook = time.Now()
		cur, err := s.opts.Store.Batch(ctx, b.TenantID, b.ID)
		if err == nil && cur.Status == StatusCancelling {
			return StatusCancelling, true
		}
		return "", false
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		lineErr error
		stop    Status
	)
	todo := reqs
	for first := true; len(todo) > 0 && stop == ""; first = false {
		if !first {
			// Only lines whose earlier run is still held are left: look
			// again after a poll.
			select {
			case <-ctx.Done():
				wg.Wait()
				return ctx.Err()
			case <-time.After(s.opts.PollInterval):
			}
		}
		// What is recorded and what the ledger holds, read after the
		// lease was taken: what an earlier owner left behind.
		pending, charges, err := s.unrecorded(ctx, b.ID, todo)
		if err != nil {
			wg.Wait()
			return err
		}
		todo = nil
		for _, req := range pending {
			if ctx.Err() != nil {
				break // a stopping process starts nothing more
			}
			if st, ok := stopped(); ok {
				stop = st
				break
			}
			rid, ok := runID(b.ID, req.LineNo, charges[req.LineNo])
			if !ok {
				todo = append(todo, req)
				continue
			}
			// s.slots bounds the lines running; the gateway's admission
			// queue then holds each below interactive traffic (its batch
			// tier). A line gives its slot back once answered, before it
			// is recorded, so the next runs while it is written (in a
			// group with the others finishing then: linegroup.go);
			// s.toRecord bounds the lines started and not yet recorded.
			select {
			case s.toRecord <- struct{}{}:
			case <-ctx.Done():
				wg.Wait()
				return ctx.Err()
			}
			select {
			case s.slots <- struct{}{}:
			case <-ctx.Done():
				<-s.toRecord
				wg.Wait()
				return ctx.Err()
			}
			wg.Go(func() {
				defer func() { <-s.toRecord }()
				// A started line is never cut by a stop: cut, it could be
				// charged (what the backend used) and then run again after
				// the restart. It finishes and is recorded; Run waits for
				// it. Only its wait for a backend slot ends with ctx (runLine).
				if err := s.runLine(ctx, b, p, req, rid); err != nil {
					mu.Lock()
					lineErr = errors.Join(lineErr, err)
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if lineErr != nil {
		return lineErr
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if stop == statusLeaseLost {
		return errLeaseLost
	}
	if stop == "" {
		lastLook = time.Time{} // a cancel made while the last lines ran
		if st, ok := stopped(); ok && b.Status != StatusCancelling {
			stop = st
		}
	}
	if stop == StatusExpired {
		// Expired as documented: what did not run ends in the error file.
		for _, req := range reqs {
			l := errorLine(b.ID, req, "batch_expired", "this request could not be executed before the completion window expired")
			if _, err := s.opts.Store.RecordLine(ctx, b.ID, l); err != nil {
				return err
			}
		}
	}
	from := b.Status
	if stop == StatusCancelling {
		from = StatusCancelling
	}
	b.Status, b.FinalizingAt = StatusFinalizing, s.opts.Now()
	if stop == StatusExpired {
		b.ExpiredAt = b.FinalizingAt
	}
	if _, err := s.opts.Store.UpdateBatch(ctx, b, from); err != nil {
		return err
	}
	return nil
}

// unrecorded is the lines of reqs not yet recorded, and what the ledger
// holds of the batch's lines.
func (s *Service) unrecorded(ctx context.Context, batchID string, reqs []Request) ([]Request, map[int64]LineCharge, error) {
	done, err := s.opts.Store.Lines(ctx, batchID)
	if err != nil {
		return nil, nil, err
	}
	recorded := make(map[string]bool, len(done))
	for _, l := range done {
		recorded[l.CustomID] = true
	}
	var out []Request
	for _, r := range reqs {
		if !recorded[r.CustomID] {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil, nil, nil
	}
	charges, err := s.opts.Store.LineCharges(ctx, batchID)
	if err != nil {
		return nil, nil, err
	}
	return out, charges, nil
}

// recordAhead × Options.Concurrency lines may be started and not yet
// recorded: the running ones, and the answered ones waiting for their
// group's commit (a group gathers for lineGroupDelay). It bounds what a
// stalled database holds in memory, and the answered lines a kill -9
// loses (each is run again after the restart and charged once).
const recordAhead = 16

// cancelEvery is how often a running batch's worker looks for a cancel.
const cancelEvery = 100 * time.Millisecond

// statusNotRun is Runner.RunLine's answer to a line whose ctx ended while
// it waited for a backend slot (499, as for a client that left).
const statusNotRun = 499

func errorLine(batchID string, req Request, code, msg string) Line {
	lj, _ := json.Marshal(outputLine{ID: "batch_req_" + requestID(batchID, req.LineNo), CustomID: req.CustomID,
		Error: &lineErrorField{Code: code, Message: msg}})
	return Line{CustomID: req.CustomID, LineNo: req.LineNo, Failed: true, JSON: string(lj)}
}

// runLine runs one line through the gateway as request rid (runID),
// gives back the s.slots place it was started with, and records the
// line's answer once. ctx bounds only the line's wait for a backend slot:
// a line whose wait ctx ended did not run, is not recorded and runs after
// the restart.
func (s *Service) runLine(ctx context.Context, b Batch, p billing.Principal, req Request, rid string) error {
	status, body := func() (int, []byte) {
		defer func() { <-s.slots }()
		return s.opts.Runner.RunLine(ctx, p, b.ID, b.Endpoint, req.Body, rid)
	}()
	if status == statusNotRun && ctx.Err() != nil {
		return nil
	}
	ctx = context.WithoutCancel(ctx) // the answer is recorded whatever ctx does
	if !json.Valid(body) {
		body, _ = json.Marshal(map[string]any{"error": map[string]string{"message": string(body), "type": "server_error"}})
	}
	lj, err := json.Marshal(outputLine{ID: "batch_req_" + requestID(b.ID, req.LineNo), CustomID: req.CustomID,
		Response: &lineResponse{StatusCode: status, RequestID: rid, Body: body}})
	if err != nil {
		return fmt.Errorf("encode line %d: %w", req.LineNo, err)
	}
	failed := status != http.StatusOK
	_, err = s.opts.Store.RecordLine(ctx, b.ID, Line{CustomID: req.CustomID, LineNo: req.LineNo, Failed: failed, JSON: string(lj)})
	return err
}

// finalize writes the output and error files from the recorded lines and
// ends the batch. The files' ids are derived from the batch's, so a
// finalize cut short and rerun finds them instead of writing them twice.
func (s *Service) finalize(ctx context.Context, b Batch) error {
	lines, err := s.opts.Store.Lines(ctx, b.ID)
	if err != nil {
		return err
	}
	var out, errs []byte
	for _, l := range lines {
		if l.Failed {
			errs = append(append(errs, l.JSON...), '\n')
		} else {
			out = append(append(out, l.JSON...), '\n')
		}
	}
	write := func(kind string, content []byte) (string, error) {
		if len(content) == 0 {
			return "", nil
		}
		id := "file-" + b.ID + "-" + kind
		if _, err := s.opts.Store.File(ctx, b.TenantID, id); err == nil {
			return id, nil
		} else if !errors.Is(err, ErrNotFound) {
			return "", err
		}
		f := File{ID: id, TenantID: b.TenantID, Purpose: "batch_output", Filename: b.ID + "_" + kind + ".jsonl",
			CreatedAt: s.opts.Now(), Content: content}
		return id, s.opts.Store.CreateFile(ctx, f)
	}
	if b.OutputFileID, err = write("output", out); err != nil {
		return err
	}
	if b.ErrorFileID, err = write("error", errs); err != nil {
		return err
	}
	now := s.opts.Now()
	switch {
	case !b.ExpiredAt.IsZero():
		b.Status = StatusExpired
	case !b.CancellingAt.IsZero():
		b.Status, b.CancelledAt = StatusCancelled, now
	default:
		b.Status, b.CompletedAt = StatusCompleted, now
	}
	_, err = s.opts.Store.UpdateBatch(ctx, b, StatusFinalizing)
	return err
}
