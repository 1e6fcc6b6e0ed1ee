-- Job metadata and the durable queue share one table: a queued row is a queue entry, and
-- a running row carries the lease of the worker attempt that owns it.
-- Timestamps are milliseconds since the Unix epoch (UTC).
CREATE TABLE jobs (
    -- Monotonic key for cursor pagination and FIFO order; AUTOINCREMENT never reuses a
    -- value, even after deletes.
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL
        CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    -- Validated forecast request as JSON, with defaults filled in.
    request TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    idempotency_key TEXT UNIQUE,
    -- SHA-256 (hex) of the canonical submitted body, to tell a retry from a reused key.
    request_hash TEXT,
    steps_total INTEGER NOT NULL,
    steps_done INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    -- Earliest time a queued job may be claimed (retry backoff).
    run_after INTEGER NOT NULL,
    -- Lease of the running attempt: owner string and expiry. Cleared when the attempt ends.
    lease_owner TEXT,
    lease_expires_at INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    worker TEXT,
    device TEXT,
    error_code TEXT,
    error_message TEXT,
    result_key TEXT,
    summary TEXT,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    updated_at INTEGER NOT NULL
);

CREATE INDEX jobs_claim_order ON jobs (state, priority DESC, seq);
CREATE INDEX jobs_lease_expiry ON jobs (state, lease_expires_at);
