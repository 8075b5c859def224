package serve

// The rate limits of batch lines (docs/limits.md, "Batch lines"): a line
// is admitted by BatchAdmitter, against counters of its own, never the
// interactive RPM, TPM or concurrency of its key; and a line over a
// batch-only limit waits for its turn instead of failing with 429, since
// nobody is there to retry it.

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/llmctl/llmctl/pkg/billing"
)

// BatchAdmitter admits a batch line against the batch-only limits
// (limits.Limiter.AdmitBatch). An Admitter without it admits batch lines
// without counting them: they never touch the interactive limits.
type BatchAdmitter interface {
	AdmitBatch(ctx context.Context, p billing.Principal, model string, maxTokens int64) (billing.Ticket, error)
}

// admitLine is admit for a line of cr's batch: it waits out a batch-only
// limit (Retry-After) for as long as the batch's context allows, holding
// the backend slot it has (one of the batch share's, so interactive
// traffic loses nothing by it). A limit no wait can meet (TooLarge) fails
// the line with 400, as it would an interactive request.
func (g *Gateway) admitLine(cr *clientRequest) func(http.ResponseWriter, *http.Request, *reqState, billing.Principal, string, int64) (*settlement, *apiError) {
	return func(w http.ResponseWriter, r *http.Request, st *reqState, p billing.Principal, model string, tokens int64) (*settlement, *apiError) {
		ba, ok := g.opts.Admitter.(BatchAdmitter)
		if !ok {
			return newSettlement(r.Context(), nil), nil
		}
		for {
			ticket, err := ba.AdmitBatch(cr.waitCtx, p, model, tokens)
			if err == nil {
				for k, vs := range ticket.Header() {
					w.Header()[k] = vs
				}
				return newSettlement(r.Context(), ticket), nil
			}
			le, limited := errors.AsType[*billing.LimitError](err)
			if !limited || le.TooLarge {
				if cr.waitCtx.Err() != nil {
					return nil, clientClosed()
				}
				return nil, g.admitError(r, st, err)
			}
			t := time.NewTimer(max(le.RetryAfter, time.Millisecond))
			select {
			case <-t.C:
			case <-cr.waitCtx.Done():
				t.Stop()
				// Not run: the worker runs it again later (batchapi.go).
				return nil, clientClosed()
			}
		}
	}
}
