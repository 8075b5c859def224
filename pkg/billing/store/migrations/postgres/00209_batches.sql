-- +goose Up
-- The Files and Batches API (pkg/serve/batch). A file's bytes live in the
-- database, in content, so a batch survives the loss of any replica; one
-- file is at most the gateway's per-file limit (batch.Options.MaxFileBytes,
-- default 100 MiB), and size repeats its length for listings. Times are unix
-- seconds, as the API shows them; NULL = not reached. principal is the
-- creating key's snapshot (JSON) that the worker runs the lines as.
-- batch_lines holds one finished line per (batch_id, custom_id): its
-- primary key is what makes every line land exactly once in the output or
-- the error file, whatever restarts in between.
CREATE TABLE batch_files (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    purpose    TEXT NOT NULL,
    filename   TEXT NOT NULL,
    content    BYTEA NOT NULL,
    size       BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX batch_files_tenant_idx ON batch_files (tenant_id, created_at);

CREATE TABLE batches (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL,
    principal         TEXT NOT NULL,
    input_file_id     TEXT NOT NULL,
    endpoint          TEXT NOT NULL,
    completion_window TEXT NOT NULL,
    metadata          TEXT NOT NULL DEFAULT '',
    status            TEXT NOT NULL,
    errors            TEXT NOT NULL DEFAULT '',
    total             BIGINT NOT NULL DEFAULT 0,
    completed         BIGINT NOT NULL DEFAULT 0,
    failed            BIGINT NOT NULL DEFAULT 0,
    output_file_id    TEXT NOT NULL DEFAULT '',
    error_file_id     TEXT NOT NULL DEFAULT '',
    created_at        BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    in_progress_at    BIGINT,
    finalizing_at     BIGINT,
    completed_at      BIGINT,
    failed_at         BIGINT,
    expired_at        BIGINT,
    cancelling_at     BIGINT,
    cancelled_at      BIGINT
);
CREATE INDEX batches_tenant_idx ON batches (tenant_id, created_at, id);
CREATE INDEX batches_status_idx ON batches (status);

CREATE TABLE batch_lines (
    batch_id  TEXT NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    custom_id TEXT NOT NULL,
    line_no   BIGINT NOT NULL,
    failed    BIGINT NOT NULL,
    line      TEXT NOT NULL,
    PRIMARY KEY (batch_id, custom_id)
);

-- +goose Down
DROP TABLE batch_lines;
DROP TABLE batches;
DROP TABLE batch_files;
