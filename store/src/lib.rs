//! Durable job metadata, queue and result storage of the gridcast service.
//!
//! Backends are chosen by URL and share every code path: `sqlite://PATH` (embedded) or
//! `postgres://…` (distributed) for metadata and queue, `file:///PATH` or
//! `s3://BUCKET/PREFIX` for results through `object_store`. The two databases differ
//! only in the few statements [`Dialect`] picks. With Postgres, lease times come from
//! the database server's clock: workers on machines with skewed clocks still agree.
//!
//! The queue lives in the `jobs` table. A worker claims the next queued job by taking a
//! lease on it (owner string plus expiry) and renews the lease by heartbeat. It ends the
//! attempt with an update that checks it still owns the lease. A job whose lease expires
//! is claimed again by any worker, which counts a new attempt.

mod error;
mod job;
mod jobs;
mod keys;
mod leases;
mod queue;
mod results;
mod row;
mod wakeup;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

pub use error::StoreError;
pub use job::{Idempotency, Job, JobError, JobState, NewJob};
pub use jobs::{CancelOutcome, JobPage, ListQuery, Submission};
pub use keys::{ApiKey, Role};
pub use queue::{Heartbeat, Lease, WorkerIdentity};
pub use results::ResultStore;
pub use wakeup::WakeupStats;

/// Backend locations of a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// Job metadata and queue, for example `sqlite:///var/lib/gridcast/gridcast.db`.
    pub database_url: String,
    /// Result objects, for example `file:///var/lib/gridcast/objects`.
    pub results_url: String,
    /// Maximum open database connections.
    pub max_connections: u32,
    /// Redis that carries job wake-ups between processes, for example
    /// `redis://redis:6379`; `None` leaves other processes to their poll interval.
    pub redis_url: Option<String>,
    /// S3 settings as `object_store` keys (`aws_endpoint`, ...) that override the
    /// environment; empty in services, which read the standard `AWS_*` variables.
    pub results_options: Vec<(String, String)>,
}

impl StoreConfig {
    /// Embedded layout under one data directory: `DIR/gridcast.db` and `DIR/objects/`.
    pub fn embedded(data_dir: &Path) -> StoreConfig {
        StoreConfig {
            database_url: format!("sqlite://{}", data_dir.join("gridcast.db").display()),
            results_url: format!("file://{}", data_dir.join("objects").display()),
            max_connections: 8,
            redis_url: None,
            results_options: Vec::new(),
        }
    }
}

/// Connection pool of one of the two database backends.
#[derive(Debug, Clone)]
enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to whichever pool the store holds. The body is
/// compiled once per backend, so the same query code serves both.
macro_rules! on_db {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.db {
            $crate::Db::Sqlite($pool) => $body,
            $crate::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_db;

/// The statements whose SQL differs between the backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// Handle to job metadata, queue and results. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
    results: ResultStore,
    /// Wakes idle workers of this process when a job is submitted through it, so a
    /// job starts at once instead of after the next queue poll.
    submitted: std::sync::Arc<tokio::sync::Notify>,
    /// Redis wake-ups to and from other processes, when configured.
    wakeups: Option<wakeup::RedisWakeups>,
}

/// How long a connection waits for another writer before SQLite reports `SQLITE_BUSY`.
/// Writes here are single short statements, so a few seconds covers heavy contention.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a request waits for a Postgres connection. Short, so that with the database
/// down the API answers 503 promptly instead of holding requests.
const PG_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

impl Store {
    /// Opens (creating if needed) the database and result store and applies the embedded
    /// migrations.
    pub async fn open(config: &StoreConfig) -> Result<Store, StoreError> {
        let store = Store::open_unmigrated(config).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Opens the database and result store without touching the schema, for processes
    /// that leave migrations to `gridcast migrate`.
    pub async fn open_unmigrated(config: &StoreConfig) -> Result<Store, StoreError> {
        let db = open_database(config).await?;
        let results =
            ResultStore::open_with_options(&config.results_url, config.results_options.clone())?;
        let wakeups = config
            .redis_url
            .as_deref()
            .map(|url| {
                wakeup::RedisWakeups::open(url).map_err(|err| StoreError::UnsupportedUrl {
                    setting: "redis",
                    url: format!("{} ({err})", redact_url(url)),
                    supported: "redis://HOST:PORT",
                })
            })
            .transpose()?;
        Ok(Store {
            db,
            results,
            submitted: Default::default(),
            wakeups,
        })
    }

    /// Applies the migrations this build carries that the database lacks. Safe to run
    /// from several processes at once: sqlx serialises them with a lock.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.db {
            Db::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await?,
            Db::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// `sqlite` or `postgres`, for logs and the start-up banner.
    pub fn backend(&self) -> &'static str {
        match self.dialect() {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }

    pub(crate) fn dialect(&self) -> Dialect {
        match &self.db {
            Db::Sqlite(_) => Dialect::Sqlite,
            Db::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Returns the time that leases and timestamps are judged by: the Postgres server's
    /// clock, or this machine's clock for the embedded SQLite file (one machine, one
    /// clock).
    pub async fn now(&self) -> Result<DateTime<Utc>, StoreError> {
        match &self.db {
            Db::Sqlite(_) => Ok(Utc::now()),
            Db::Postgres(pool) => {
                let millis: i64 = sqlx::query_scalar(
                    "SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT",
                )
                .fetch_one(pool)
                .await?;
                job::from_millis("(server clock)", millis)
            }
        }
    }

    /// Completes when a job is submitted through this handle or a clone of it. Each
    /// submission wakes one waiting worker, or the next one to wait when none is. Workers
    /// wait on it beside their poll timer, because jobs submitted by other processes
    /// and retries after backoff are still found by polling.
    pub async fn job_submitted(&self) {
        self.submitted.notified().await;
    }

    /// Starts forwarding wake-ups from Redis to this process's idle workers, when a
    /// Redis URL is configured. Returns the task, or `None` without Redis.
    pub fn spawn_wakeup_subscriber(
        &self,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Option<tokio::task::JoinHandle<()>> {
        self.wakeups
            .as_ref()
            .map(|wakeups| wakeups.spawn_subscriber(self.submitted.clone(), shutdown))
    }

    /// Counters of the Redis link; `None` without Redis.
    pub fn wakeup_stats(&self) -> Option<&WakeupStats> {
        self.wakeups.as_ref().map(|wakeups| &*wakeups.stats)
    }

    pub fn results(&self) -> &ResultStore {
        &self.results
    }

    /// Checks that the database runs a query and the result store can be listed.
    pub async fn check_ready(&self) -> Result<(), StoreError> {
        on_db!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(drop))?;
        self.results.check_ready().await
    }

    /// Closes the connection pool, waiting for queries in flight.
    pub async fn close(&self) {
        on_db!(self, pool => pool.close().await);
    }
}

async fn open_database(config: &StoreConfig) -> Result<Db, StoreError> {
    let url = &config.database_url;
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let options = PgConnectOptions::from_str(url)?;
        // One direct connection first: the pool would only report a timeout, while
        // this names the real cause (refused, authentication, unknown database).
        {
            use sqlx::Connection;
            let connection = tokio::time::timeout(
                PG_ACQUIRE_TIMEOUT,
                sqlx::PgConnection::connect_with(&options),
            )
            .await;
            let failure = match connection {
                Ok(Ok(connection)) => {
                    let _ = connection.close().await;
                    None
                }
                Ok(Err(err)) => Some(err.to_string()),
                Err(_) => Some(format!(
                    "no answer within {} s",
                    PG_ACQUIRE_TIMEOUT.as_secs()
                )),
            };
            if let Some(message) = failure {
                return Err(StoreError::Connect {
                    url: redact_url(url),
                    message,
                });
            }
        }
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections.max(1))
            .acquire_timeout(PG_ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        return Ok(Db::Postgres(pool));
    }
    if !url.starts_with("sqlite:") {
        return Err(StoreError::UnsupportedUrl {
            setting: "database",
            url: redact_url(url),
            supported: "sqlite://PATH, postgres://USER@HOST:PORT/DATABASE",
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
        std::fs::create_dir_all(parent).map_err(|error| StoreError::CreateDir {
            path: parent.to_path_buf(),
            error,
        })?;
    }
    let pool = SqlitePoolOptions::new()
        .max_connections(config.max_connections.max(1))
        .connect_with(options)
        .await?;
    Ok(Db::Sqlite(pool))
}

/// `url` with any password replaced by `***`, for error messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => {
                format!("{scheme}://{user}:***@{host}{}", &rest[authority_end..])
            }
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}
