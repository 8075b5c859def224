-- +goose Up
-- The lease on a batch (pkg/serve/batch/lease.go): the replica lease_owner
-- works the batch until lease_until (unix milliseconds) and renews it well
-- before then; another replica takes the batch only once lease_until has
-- passed, so exactly one replica runs a batch at a time, and a killed
-- replica's batch is picked up one lease TTL later. '' / 0 = nobody's.
ALTER TABLE batches ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE batches ADD COLUMN lease_until BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE batches DROP COLUMN lease_until;
ALTER TABLE batches DROP COLUMN lease_owner;
