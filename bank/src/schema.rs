//! Table layout and migrations. `PRAGMA user_version` stores the schema version so that a
//! newer file is rejected instead of misread.

use rusqlite::Connection;

/// Schema version this build writes and reads.
pub const SCHEMA_VERSION: i64 = 1;

const SCHEMA_V1: &str = "
CREATE TABLE outcomes (
    job_id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    dataset TEXT NOT NULL,
    grid_cells INTEGER NOT NULL,
    grid_bucket INTEGER NOT NULL,
    lead_steps INTEGER NOT NULL,
    members INTEGER NOT NULL,
    schedule_id TEXT,
    cycle_time TEXT,
    device TEXT NOT NULL,
    batch_size INTEGER NOT NULL,
    queue_wait_seconds REAL NOT NULL,
    run_seconds REAL NOT NULL,
    peak_memory_bytes INTEGER,
    attempts INTEGER NOT NULL,
    state TEXT NOT NULL,
    error_class TEXT,
    finished_at TEXT NOT NULL,
    eta_seconds REAL,
    record TEXT NOT NULL
);
CREATE INDEX outcomes_runtime_key ON outcomes (model, device, grid_bucket, lead_steps);
CREATE TABLE skill (
    job_id TEXT NOT NULL,
    schedule_id TEXT NOT NULL,
    variable TEXT NOT NULL,
    lead_hours INTEGER NOT NULL,
    rmse REAL NOT NULL,
    acc REAL,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (job_id, variable, lead_hours)
);
CREATE INDEX skill_key ON skill (schedule_id, variable, lead_hours);
CREATE TABLE patterns (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    model TEXT,
    device TEXT,
    grid_bucket INTEGER,
    lead_steps INTEGER,
    schedule_id TEXT,
    variable TEXT,
    lead_hours INTEGER,
    value REAL NOT NULL,
    evidence INTEGER NOT NULL,
    effective_weight REAL NOT NULL,
    confidence REAL NOT NULL,
    updated_at TEXT NOT NULL,
    detail TEXT NOT NULL,
    UNIQUE (kind, key)
);
CREATE INDEX patterns_runtime ON patterns (kind, model, grid_bucket, lead_steps);
CREATE TABLE schedules (
    id TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    paused INTEGER NOT NULL,
    cursor TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE cycles (
    schedule_id TEXT NOT NULL,
    cycle_time TEXT NOT NULL,
    state TEXT NOT NULL,
    origin TEXT NOT NULL,
    job_id TEXT,
    attempt INTEGER NOT NULL,
    reason TEXT,
    planned_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    verified INTEGER NOT NULL,
    PRIMARY KEY (schedule_id, cycle_time)
);
CREATE TABLE backfills (
    id INTEGER PRIMARY KEY,
    schedule_id TEXT NOT NULL,
    range_start TEXT NOT NULL,
    range_end TEXT NOT NULL,
    created_at TEXT NOT NULL
);
";

/// Creates the tables of an empty file, or checks the version of an existing one.
/// Returns the version found, so the caller can reject one newer than `SCHEMA_VERSION`.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<i64> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version == 0 {
        tx.execute_batch(SCHEMA_V1)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    tx.commit()?;
    Ok(if version == 0 {
        SCHEMA_VERSION
    } else {
        version
    })
}
