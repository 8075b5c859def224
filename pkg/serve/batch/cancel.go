package batch

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrNotCancellable: the batch has finished (completed, failed, expired).
var ErrNotCancellable = errors.New("the batch has finished and can no longer be cancelled")

var errCancelConflict = errors.New("the batch changed while cancelling; try again")

// Cancel moves the tenant's batch, validating or in progress, to
// cancelling at now; the worker that owns it (on any replica sharing the
// store) finishes it as cancelled once it next reads it. A batch already
// cancelling or cancelled is returned as it is. Both the API and
// `llmctl batches cancel --db` cancel through here.
func Cancel(ctx context.Context, st Store, tenantID, id string, now time.Time) (Batch, error) {
	for range 5 { // a concurrent transition is retried on the new state
		b, err := st.Batch(ctx, tenantID, id)
		if err != nil {
			return Batch{}, err
		}
		from := b.Status
		switch from {
		case StatusValidating, StatusInProgress:
			b.Status, b.CancellingAt = StatusCancelling, now
		case StatusCancelling, StatusCancelled:
			return b, nil
		default:
			return b, fmt.Errorf("batch %s is %s: %w", id, from, ErrNotCancellable)
		}
		ok, err := st.UpdateBatch(ctx, b, from)
		if err != nil {
			return Batch{}, err
		}
		if ok {
			return b, nil
		}
	}
	return Batch{}, errCancelConflict
}
