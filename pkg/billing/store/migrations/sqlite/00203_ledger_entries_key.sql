-- +goose Up
-- The public id of the API key whose request an entry charges (debits and
-- releases), so spend can be split per key; '' for credits, adjustments and
-- entries written before this column existed.
ALTER TABLE ledger_entries ADD COLUMN key_id TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE ledger_entries DROP COLUMN key_id;
