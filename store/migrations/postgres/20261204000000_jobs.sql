-- Job metadata and the durable queue share one table, as in the SQLite schema: a queued
-- row is a queue entry, and a running row carries the lease of the worker attempt that
-- owns it. Timestamps are milliseconds since the Unix epoch (UTC), taken from the
-- database server's clock. Integers are BIGINT so one decoder reads both backends.
CREATE TABLE jobs (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL
        CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    request TEXT NOT NULL,
    priority BIGINT NOT NULL DEFAULT 0,
    idempotency_key TEXT UNIQUE,
    request_hash TEXT,
    steps_total BIGINT NOT NULL,
    steps_done BIGINT NOT NULL DEFAULT 0,
    attempts BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    run_after BIGINT NOT NULL,
    lease_owner TEXT,
    lease_expires_at BIGINT,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    worker TEXT,
    device TEXT,
    error_code TEXT,
    error_message TEXT,
    result_key TEXT,
    summary TEXT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    updated_at BIGINT NOT NULL
);

CREATE INDEX jobs_claim_order ON jobs (state, priority DESC, seq);
CREATE INDEX jobs_lease_expiry ON jobs (state, lease_expires_at);
