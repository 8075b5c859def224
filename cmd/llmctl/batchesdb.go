package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/serve/batch"
)

// runDB is `llmctl batches` on the database: the same reads and cancel as
// the API's, scoped to --tenant. A cancel takes effect on whichever
// replica works the batch once it next reads the batch row.
func (o *batchesOptions) runDB(ctx context.Context) ([]batchView, error) {
	dsn, err := o.db.resolve()
	if err != nil {
		return nil, err
	}
	db, err := store.OpenDB(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	t, err := db.Store().GetTenant(ctx, o.tenant)
	if err != nil {
		return nil, fmt.Errorf("tenant %q: %w", o.tenant, err)
	}
	bs := batch.OnDB(db)
	var got []batch.Batch
	switch o.verb {
	case "list":
		page, _, err := bs.ListBatches(ctx, t.ID, o.after, int(o.limit))
		if errors.Is(err, batch.ErrNotFound) {
			return nil, fmt.Errorf("--after %s: tenant %s has no such batch", o.after, t.Name)
		}
		if err != nil {
			return nil, fmt.Errorf("list batches: %w", err)
		}
		got = page
	case "show":
		b, err := bs.Batch(ctx, t.ID, o.id)
		if err != nil {
			return nil, notFoundAs(err, "show", o.id, t.Name)
		}
		got = []batch.Batch{b}
	case "cancel":
		b, err := batch.Cancel(ctx, bs, t.ID, o.id, time.Now())
		if err != nil {
			return nil, notFoundAs(err, "cancel", o.id, t.Name)
		}
		got = []batch.Batch{b}
	}
	views := make([]batchView, 0, len(got))
	for _, b := range got {
		views = append(views, toBatchViewDB(b))
	}
	return views, nil
}

func notFoundAs(err error, verb, id, tenant string) error {
	if errors.Is(err, batch.ErrNotFound) {
		return fmt.Errorf("%s batch %s: tenant %s has no such batch", verb, id, tenant)
	}
	return fmt.Errorf("%s batch %s: %w", verb, id, err)
}

// toBatchViewDB is a stored batch as printed, the same view as the API's.
func toBatchViewDB(b batch.Batch) batchView {
	v := batchView{ID: b.ID, Status: string(b.Status), Endpoint: b.Endpoint, InputFileID: b.InputFileID,
		OutputFileID: b.OutputFileID, ErrorFileID: b.ErrorFileID, Total: b.Total, Completed: b.Completed, Failed: b.Failed,
		CreatedAt: time.Unix(b.CreatedAt.Unix(), 0).UTC(), CompletionWindow: b.CompletionWindow}
	if b.Metadata != "" {
		_ = json.Unmarshal([]byte(b.Metadata), &v.Metadata)
	}
	if b.Errors != "" {
		var errs []batch.LineError
		if json.Unmarshal([]byte(b.Errors), &errs) == nil {
			for _, e := range errs {
				v.Errors = append(v.Errors, e.Message)
			}
		}
	}
	return v
}
