-- +goose Up
-- Spend over a time window across all tenants (`llmctl top`'s ledger pane)
-- scans by created_at alone, which the (tenant_id, created_at) index cannot
-- serve.
CREATE INDEX IF NOT EXISTS ledger_entries_created_idx ON ledger_entries (created_at);

-- +goose Down
DROP INDEX IF EXISTS ledger_entries_created_idx;
