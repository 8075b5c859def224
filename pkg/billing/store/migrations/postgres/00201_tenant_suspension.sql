-- +goose Up
-- A suspended tenant's keys stop authenticating; its keys, limits and
-- ledger are kept, so resuming (suspended_at back to NULL) restores it all.
ALTER TABLE tenants ADD COLUMN suspended_at BIGINT;

-- +goose Down
ALTER TABLE tenants DROP COLUMN suspended_at;
