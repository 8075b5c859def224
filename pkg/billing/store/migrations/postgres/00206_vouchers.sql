-- +goose Up
-- Prepaid vouchers (pkg/billing/ledger/vouchers.go). The code itself is
-- never stored: code_hash is the hex SHA-256 of its normalized form, enough
-- for a code of 160 random bits. Times are unix microseconds like the
-- ledger's; NULL expires_at never expires. tenant_id restricts who may
-- redeem it ('' = anyone); redeemed_by is the tenant that did. A redemption
-- is the credit entry keyed 'voucher:' || id, written in the same
-- transaction that sets redeemed_at.
CREATE TABLE vouchers (
    id          TEXT PRIMARY KEY,
    code_hash   TEXT NOT NULL UNIQUE,
    amount      BIGINT NOT NULL CHECK (amount > 0),
    tenant_id   TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    redeemed_at BIGINT,
    redeemed_by TEXT NOT NULL DEFAULT '',
    revoked_at  BIGINT
);
CREATE INDEX vouchers_created_idx ON vouchers (created_at);

-- +goose Down
DROP TABLE vouchers;
