-- +goose Up
-- The ledger (pkg/billing/ledger). Amounts are signed integer micro-units
-- (1 unit of currency = 1,000,000); times are unix microseconds, as in the
-- store's tables, so one code path reads both dialects exactly.

-- Append-only: every movement of money is one row, unique by idempotency key.
CREATE TABLE ledger_entries (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    idem_key          TEXT NOT NULL UNIQUE,
    tenant_id         TEXT NOT NULL,
    kind              TEXT NOT NULL CHECK (kind IN ('credit', 'debit', 'reservation', 'release', 'adjustment')),
    amount            BIGINT NOT NULL,
    model             TEXT NOT NULL DEFAULT '',
    prompt_tokens     BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    reason            TEXT NOT NULL DEFAULT '',
    created_at        BIGINT NOT NULL
);
CREATE INDEX ledger_entries_tenant_time_idx ON ledger_entries (tenant_id, created_at);

-- Balances, maintained in the same transaction as the entries they sum;
-- reserved is the sum of open holds. `llmctl ledger verify` recomputes both.
CREATE TABLE ledger_accounts (
    tenant_id TEXT PRIMARY KEY,
    balance   BIGINT NOT NULL DEFAULT 0,
    reserved  BIGINT NOT NULL DEFAULT 0
);

-- Open reservations: a request's maximum cost, held until it settles.
CREATE TABLE ledger_holds (
    hold_key   TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    amount     BIGINT NOT NULL CHECK (amount >= 0),
    created_at BIGINT NOT NULL
);
CREATE INDEX ledger_holds_created_idx ON ledger_holds (created_at);

-- +goose StatementBegin
CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
BEGIN
    SELECT RAISE(ABORT, 'ledger_entries is append-only');
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries
BEGIN
    SELECT RAISE(ABORT, 'ledger_entries is append-only');
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER ledger_entries_no_delete;
DROP TRIGGER ledger_entries_no_update;
DROP TABLE ledger_holds;
DROP TABLE ledger_accounts;
DROP TABLE ledger_entries;
