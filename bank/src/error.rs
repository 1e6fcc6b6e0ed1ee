use std::path::PathBuf;

/// Failure of a ReasoningBank operation. Open errors name the file and what to do.
///
/// Variants that wrap a library or OS error in their message (`error`, `Sqlite`) do not
/// also return it from `source()`, so a printed error chain states it once.
#[derive(Debug, thiserror::Error)]
pub enum BankError {
    /// Another process holds a write lock on the bank file past the busy timeout.
    #[error(
        "bank file {path} is locked by another process; stop the other gridcast process \
         or point this one at a different bank file"
    )]
    Locked {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// The file exists but is not a readable SQLite database.
    #[error(
        "bank file {path} is not a valid SQLite database ({error}); restore it from an \
         export with `gridcast bank import` into a new file, or move it aside"
    )]
    Corrupt {
        path: PathBuf,
        error: rusqlite::Error,
    },
    /// The file was written by a newer gridcast with a schema this build cannot read.
    #[error(
        "bank file {path} has schema version {found}, but this build reads up to version \
         {supported}; upgrade gridcast"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    /// Opening the file failed for another reason (permissions, missing directory).
    #[error("failed to open bank file {path}: {error}")]
    Open {
        path: PathBuf,
        error: rusqlite::Error,
    },
    /// A query failed after the bank was opened.
    #[error("bank query failed: {0}")]
    Sqlite(rusqlite::Error),
    /// A value read from or written to the bank could not be converted.
    #[error("invalid {field}: {message}")]
    InvalidValue { field: String, message: String },
    /// A record with this key already exists.
    #[error("{what} {id} already exists")]
    AlreadyExists { what: &'static str, id: String },
    /// A backfill range overlaps one whose cycles are still pending or running.
    #[error(
        "backfill {start}..{end} of schedule {schedule_id} overlaps backfill {existing_id} \
         ({existing_start}..{existing_end}) that is still running; wait for it to finish \
         or choose a range outside it"
    )]
    BackfillOverlap {
        schedule_id: String,
        start: chrono::DateTime<chrono::Utc>,
        end: chrono::DateTime<chrono::Utc>,
        existing_id: i64,
        existing_start: chrono::DateTime<chrono::Utc>,
        existing_end: chrono::DateTime<chrono::Utc>,
    },
    /// Reading or writing an export file failed.
    #[error("I/O failed on {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// An export file that cannot be imported; nothing was changed.
    #[error("cannot import {path}: {message}; nothing was imported")]
    Import { path: PathBuf, message: String },
}

impl From<rusqlite::Error> for BankError {
    fn from(error: rusqlite::Error) -> Self {
        BankError::Sqlite(error)
    }
}
