-- +goose Up
-- Batch-only limits stored on a tenant and on a key (docs/limits.md, "Batch
-- lines"): the requests and tokens per minute of its batch lines, counted
-- apart from its interactive rpm/tpm; 0 = the config's limits.batch default.
ALTER TABLE tenants ADD COLUMN batch_rpm BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN batch_tpm BIGINT NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN batch_rpm BIGINT NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN batch_tpm BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE api_keys DROP COLUMN batch_tpm;
ALTER TABLE api_keys DROP COLUMN batch_rpm;
ALTER TABLE tenants DROP COLUMN batch_tpm;
ALTER TABLE tenants DROP COLUMN batch_rpm;
