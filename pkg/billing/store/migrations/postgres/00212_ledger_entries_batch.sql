-- +goose Up
-- The batch a charge belongs to (the Batches API): the batch id of a line's
-- debit or release, '' for an interactive request, so that spend splits by
-- batch (/v1/me, spend?by=batch) without parsing idempotency keys, which a
-- client's X-Request-Id shapes. Old entries read '': none was a batch line.
ALTER TABLE ledger_entries ADD COLUMN batch_id TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE ledger_entries DROP COLUMN batch_id;
