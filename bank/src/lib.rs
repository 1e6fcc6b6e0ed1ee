//! ReasoningBank: a SQLite file that records every forecast job's outcome and skill, and
//! learns recency-weighted patterns from them (expected run time, best batch size, batch
//! sizes that ran out of memory, skill by schedule and lead time).
//!
//! The same file also stores the scheduler's state (schedules, planned cycles,
//! backfills), so a restarted scheduler knows which cycles it missed.
//!
//! [`Bank`] is synchronous. Each call holds one SQLite connection behind a mutex for a
//! few milliseconds, so async callers may call it directly on small tables; bulk work
//! such as [`Bank::import`] belongs under `tokio::task::spawn_blocking`.

mod error;
mod metrics;
mod outcome;
mod pattern;
mod schema;
mod skill;
mod state;
mod time;
mod transfer;
mod weights;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};

pub use error::BankError;
pub use metrics::BankMetrics;
pub use outcome::{ERROR_CLASS_OUT_OF_MEMORY, JobEnd, Outcome};
pub use pattern::{BatchAdvice, Estimate, Pattern, PatternKind, RuntimeQuery, SafeBatch};
pub use schema::SCHEMA_VERSION;
pub use skill::{SkillRecord, SkillSummary};
pub use state::{BackfillRange, CycleOrigin, CycleRecord, CycleState, ScheduleRow};
pub use transfer::{EXPORT_FORMAT, EXPORT_VERSION, ImportReport};
pub use weights::grid_bucket;

/// Tuning of the pattern learner.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BankOptions {
    /// Age at which an observation counts half as much as the newest one of its pattern.
    pub half_life: Duration,
    /// How long a call waits for another process's write lock before failing.
    pub busy_timeout: Duration,
}

impl Default for BankOptions {
    /// A 7-day half-life follows driver, model and data changes within about two weeks
    /// while a single slow run moves an estimate by only a few percent.
    fn default() -> Self {
        Self {
            half_life: Duration::from_secs(7 * 24 * 3600),
            busy_timeout: Duration::from_secs(2),
        }
    }
}

/// A handle on one bank file. Cheap to share behind an `Arc`.
pub struct Bank {
    conn: Mutex<Connection>,
    path: PathBuf,
    options: BankOptions,
}

impl std::fmt::Debug for Bank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bank")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Bank {
    /// Opens or creates the bank file at `path` with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, BankError> {
        Self::open_with(path, BankOptions::default())
    }

    /// Opens or creates the bank file at `path`. Fails with [`BankError::Locked`] when
    /// another process holds its write lock, [`BankError::Corrupt`] when it is not a
    /// SQLite database, and [`BankError::NewerSchema`] when a newer gridcast wrote it.
    pub fn open_with(path: impl AsRef<Path>, options: BankOptions) -> Result<Self, BankError> {
        let path = path.as_ref().to_path_buf();
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags).map_err(|error| BankError::Open {
            path: path.clone(),
            error,
        })?;
        Self::init(conn, path, options)
    }

    /// Opens a bank that lives in memory only, for tests and dry runs.
    pub fn open_in_memory() -> Result<Self, BankError> {
        let conn = Connection::open_in_memory().map_err(|error| BankError::Open {
            path: PathBuf::from(":memory:"),
            error,
        })?;
        Self::init(conn, PathBuf::from(":memory:"), BankOptions::default())
    }

    fn init(mut conn: Connection, path: PathBuf, options: BankOptions) -> Result<Self, BankError> {
        let classify = |source: rusqlite::Error| classify_open_error(&path, source);
        conn.busy_timeout(options.busy_timeout).map_err(classify)?;
        let version = schema::migrate(&mut conn).map_err(classify)?;
        if version > SCHEMA_VERSION {
            return Err(BankError::NewerSchema {
                path,
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        Ok(Self {
            conn: Mutex::new(conn),
            path,
            options,
        })
    }

    /// Path of the bank file (`:memory:` for an in-memory bank).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Options the bank was opened with.
    pub fn options(&self) -> BankOptions {
        self.options
    }

    /// Locks the connection. A panic in another thread cannot leave a transaction open
    /// (rusqlite rolls back on drop), so a poisoned lock still guards a usable connection.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn classify_open_error(path: &Path, source: rusqlite::Error) -> BankError {
    let path = path.to_path_buf();
    match source.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            BankError::Locked { path, source }
        }
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => BankError::Corrupt {
            path,
            error: source,
        },
        _ => BankError::Open {
            path,
            error: source,
        },
    }
}
