-- +goose Up
-- Budgets (pkg/billing/ledger/budget.go): a cap on what a tenant, or one of
-- its API keys (key_id <> ''), may spend per calendar period in a time zone
-- or per rolling duration. Spend is summed from ledger_entries and
-- ledger_holds when a request reserves, so nothing ever has to reset.
CREATE TABLE ledger_budgets (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    key_id      TEXT NOT NULL DEFAULT '',
    amount      BIGINT NOT NULL CHECK (amount > 0),
    period      TEXT NOT NULL CHECK (period IN ('day', 'week', 'month', 'rolling')),
    tz          TEXT NOT NULL DEFAULT 'UTC',
    duration_us BIGINT NOT NULL DEFAULT 0 CHECK (duration_us >= 0),
    created_at  BIGINT NOT NULL,
    -- One budget per owner and window: `budgets set` replaces its amount.
    UNIQUE (tenant_id, key_id, period, tz, duration_us)
);

-- The key whose request reserved a hold, so a key's budget counts its own
-- open holds; '' for holds reserved before this column existed.
ALTER TABLE ledger_holds ADD COLUMN key_id TEXT NOT NULL DEFAULT '';
CREATE INDEX ledger_holds_tenant_key_idx ON ledger_holds (tenant_id, key_id);

-- The windowed sums of a reservation under a budget read debits only.
CREATE INDEX ledger_entries_debit_tenant_idx ON ledger_entries (tenant_id, created_at) INCLUDE (amount) WHERE kind = 'debit';
CREATE INDEX ledger_entries_debit_key_idx ON ledger_entries (key_id, created_at) INCLUDE (amount) WHERE kind = 'debit' AND key_id <> '';

-- +goose Down
DROP INDEX ledger_entries_debit_key_idx;
DROP INDEX ledger_entries_debit_tenant_idx;
DROP INDEX ledger_holds_tenant_key_idx;
ALTER TABLE ledger_holds DROP COLUMN key_id;
DROP TABLE ledger_budgets;
