-- Named leases for singleton roles, such as the active forecast-cycle scheduler. The
-- holder renews its lease before it expires; another process takes it over after.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
