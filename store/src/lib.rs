//! Durable job metadata, queue and result storage of the gridcast service.
//!
//! Backends are chosen by URL so another backend is a configuration change, not a new
//! call site. This build opens `sqlite://` for metadata and queue and `file://` for
//! results (through `object_store`'s `LocalFileSystem`).
//!
//! The queue lives in the `jobs` table. A worker claims the next queued job by taking a
//! lease on it (owner string plus expiry) and renews the lease by heartbeat. It ends the
//! attempt with an update that checks it still owns the lease. A job whose lease expires
//! is claimed again by any worker, which counts a new attempt.

mod error;
mod job;
mod jobs;
mod queue;
mod results;
mod row;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

pub use error::StoreError;
pub use job::{Idempotency, Job, JobError, JobState, NewJob};
pub use jobs::{CancelOutcome, JobPage, ListQuery, Submission};
pub use queue::{Heartbeat, Lease, WorkerIdentity};
pub use results::ResultStore;

/// Backend locations of a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// Job metadata and queue, for example `sqlite:///var/lib/gridcast/gridcast.db`.
    pub database_url: String,
    /// Result objects, for example `file:///var/lib/gridcast/objects`.
    pub results_url: String,
    /// Maximum open database connections.
    pub max_connections: u32,
}

impl StoreConfig {
    /// Embedded layout under one data directory: `DIR/gridcast.db` and `DIR/objects/`.
    pub fn embedded(data_dir: &Path) -> StoreConfig {
        StoreConfig {
            database_url: format!("sqlite://{}", data_dir.join("gridcast.db").display()),
            results_url: format!("file://{}", data_dir.join("objects").display()),
            max_connections: 8,
        }
    }
}

/// Handle to job metadata, queue and results. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    results: ResultStore,
    /// Wakes idle workers of this process when a job is submitted through it, so a
    /// job starts at once instead of after the next queue poll.
    submitted: std::sync::Arc<tokio::sync::Notify>,
}

/// How long a connection waits for another writer before SQLite reports `SQLITE_BUSY`.
/// Writes here are single short statements, so a few seconds covers heavy contention.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

impl Store {
    /// Opens (creating if needed) the database and result store and applies the embedded
    /// migrations.
    pub async fn open(config: &StoreConfig) -> Result<Store, StoreError> {
        let pool = open_database(config).await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        let results = ResultStore::open(&config.results_url)?;
        Ok(Store {
            pool,
            results,
            submitted: Default::default(),
        })
    }

    /// Completes when a job is submitted through this handle or a clone of it. Each
    /// submission wakes one waiting worker, or the next one to wait when none is. Workers
    /// wait on it beside their poll timer, because jobs submitted by other processes
    /// and retries after backoff are still found by polling.
    pub async fn job_submitted(&self) {
        self.submitted.notified().await;
    }

    pub fn results(&self) -> &ResultStore {
        &self.results
    }

    /// Checks that the database runs a query and the result store can be listed.
    pub async fn check_ready(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        self.results.check_ready().await
    }

    /// Closes the connection pool, waiting for queries in flight.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

async fn open_database(config: &StoreConfig) -> Result<SqlitePool, StoreError> {
    let url = &config.database_url;
    if !url.starts_with("sqlite:") {
        return Err(StoreError::UnsupportedUrl {
            setting: "database",
            url: url.clone(),
            supported: "sqlite://PATH",
        });
    }
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true);
    if let Some(parent) = options.get_filename().parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateDir {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    let pool = SqlitePoolOptions::new()
        .max_connections(config.max_connections.max(1))
        .connect_with(options)
        .await?;
    Ok(pool)
}
