-- +goose Up
-- A key's priority in the admission queue (docs/routing.md): high, normal
-- or low; '' = not set (the config's queue.priorities for its tenant, else
-- normal).
ALTER TABLE api_keys ADD COLUMN priority TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE api_keys DROP COLUMN priority;
