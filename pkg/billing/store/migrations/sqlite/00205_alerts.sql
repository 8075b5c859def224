-- +goose Up
-- Alerts (pkg/billing/alerts): an outbox of events written in the same
-- transaction as the ledger change that caused them, and one delivery row
-- per event and endpoint, so that a webhook survives restarts and receiver
-- outages. Times are unix microseconds, amounts micro-units, as elsewhere.
CREATE TABLE alert_events (
    id         TEXT PRIMARY KEY, -- the webhook-id receivers dedupe by
    type       TEXT NOT NULL,
    tenant_id  TEXT NOT NULL DEFAULT '',
    payload    TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL,
    -- 0 until the worker has created this event's deliveries.
    dispatched INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX alert_events_undispatched_idx ON alert_events (created_at) WHERE dispatched = 0;

CREATE TABLE alert_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT NOT NULL REFERENCES alert_events (id),
    endpoint        TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    -- retries stop 24 h after this (set at creation and by a redeliver).
    window_start    BIGINT NOT NULL,
    -- a replica sending this delivery holds it until lease_until.
    lease_owner     TEXT NOT NULL DEFAULT '',
    lease_until     BIGINT NOT NULL DEFAULT 0,
    last_status     INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT NOT NULL DEFAULT '',
    delivered_at    BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    UNIQUE (event_id, endpoint)
);
CREATE INDEX alert_deliveries_due_idx ON alert_deliveries (next_attempt_at) WHERE status = 'pending';

-- A tenant's own low-balance threshold; without a row the configured
-- default applies. 0 turns balance.low off for the tenant.
CREATE TABLE alert_thresholds (
    tenant_id   TEXT PRIMARY KEY,
    low_balance BIGINT NOT NULL CHECK (low_balance >= 0),
    updated_at  BIGINT NOT NULL
);

-- +goose Down
DROP TABLE alert_thresholds;
DROP TABLE alert_deliveries;
DROP TABLE alert_events;
