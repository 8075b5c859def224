-- +goose Up
-- Times are unix microseconds (BIGINT) in both dialects, so one code path
-- reads them exactly.
CREATE TABLE tenants (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    rpm             BIGINT NOT NULL DEFAULT 0,
    tpm             BIGINT NOT NULL DEFAULT 0,
    max_concurrency BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    name            TEXT NOT NULL DEFAULT '',
    secret_hash     BYTEA NOT NULL,
    models          TEXT NOT NULL DEFAULT '[]',
    rpm             BIGINT NOT NULL DEFAULT 0,
    tpm             BIGINT NOT NULL DEFAULT 0,
    max_concurrency BIGINT NOT NULL DEFAULT 0,
    expires_at      BIGINT,
    revoked_at      BIGINT,
    created_at      BIGINT NOT NULL
);

CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id);

-- +goose Down
DROP TABLE api_keys;
DROP TABLE tenants;
