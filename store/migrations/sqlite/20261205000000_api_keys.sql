-- API keys and job ownership. A key belongs to one tenant and has one role; only the
-- SHA-256 of the key is stored, so a leaked database does not leak usable keys.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('read', 'submit', 'admin')),
    key_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

-- Tenant of the key that submitted the job; NULL for jobs submitted without keys
-- (embedded mode on loopback) and by the scheduler.
ALTER TABLE jobs ADD COLUMN tenant TEXT;
CREATE INDEX jobs_tenant ON jobs (tenant, seq);
