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

// StoredLimits is an optional part of the Authenticator
// (store.Authenticator): the limits stored now on a key and its tenant. A
// batch's lines run as the principal the batch was created with; with it,
// each line is admitted under the key's current batch limits instead, so a
// limit changed while a batch runs applies to its next line.
type StoredLimits interface {
	StoredLimits(ctx context.Context, keyID string) (key, tenant billing.Limits, err error)
}

// currentLimits is p with its key's and tenant's current stored limits,
// or p as it is when they cannot be read (the batch's own snapshot is the
// best there is; the store's trouble is logged).
func (g *Gateway) currentLimits(ctx context.Context, st *reqState, p billing.Principal) billing.Principal {
	sl, ok := g.opts.Auth.(StoredLimits)
	if !ok || p.KeyID == "" {
		return p
	}
	k, t, err := sl.StoredLimits(ctx, p.KeyID)
	if err != nil {
		g.log.Warn("batch line: reading the key's stored limits; using those it had when the batch was created",
			"request_id", st.id, "key", p.KeyID, "err", err)
		return p
	}
	p.KeyLimits, p.TenantLimits = k, t
	return p
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
			ticket, err := ba.AdmitBatch(cr.waitCtx, g.currentLimits(cr.waitCtx, st, p), model, tokens)
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
