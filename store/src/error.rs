use crate::JobState;

/// Failure of a store operation.
///
/// Variants that wrap a library or OS error include its text in their message and do
/// not return it from `source()`, so a printed error chain states it once.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A backend URL names a scheme this build cannot open.
    #[error("unsupported {setting} URL `{url}`: supported schemes are {supported}")]
    UnsupportedUrl {
        setting: &'static str,
        url: String,
        supported: &'static str,
    },
    /// Creating the directory behind a `sqlite://` or `file://` URL failed.
    #[error("cannot create directory {path}: {error}")]
    CreateDir {
        path: std::path::PathBuf,
        error: std::io::Error,
    },
    /// The first connection to the database failed: wrong address, credentials or
    /// database name, or the server is down.
    #[error(
        "cannot connect to database {url}: {message}; check that the server runs there \
         and that the URL's user, password and database are right"
    )]
    Connect { url: String, message: String },
    #[error("database operation failed: {0}")]
    Database(sqlx::Error),
    #[error("applying database migrations failed: {0}")]
    Migrate(sqlx::migrate::MigrateError),
    #[error("object store operation failed: {0}")]
    ObjectStore(object_store::Error),
    /// A value read back from the database does not decode; the row was written by an
    /// incompatible version or edited by hand.
    #[error("corrupt job row {job_id}: {message}")]
    CorruptRow { job_id: String, message: String },
    /// The same idempotency key was sent earlier with a different request body.
    #[error("idempotency key `{key}` was already used for a different request (job {job_id})")]
    IdempotencyConflict { key: String, job_id: uuid::Uuid },
    /// The queue contains `depth` queued jobs and accepts at most `max_depth`.
    #[error("queue is full: {depth} queued jobs, maximum {max_depth}")]
    QueueFull { depth: u64, max_depth: u64 },
    /// A value given to the store is malformed.
    #[error("invalid {what}: {message}")]
    InvalidValue { what: &'static str, message: String },
    /// A job cannot make the requested transition from its current state.
    #[error("job {job_id} is {state} and cannot be {action}")]
    InvalidTransition {
        job_id: uuid::Uuid,
        state: JobState,
        action: &'static str,
    },
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        StoreError::Database(error)
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(error: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate(error)
    }
}

impl From<object_store::Error> for StoreError {
    fn from(error: object_store::Error) -> Self {
        StoreError::ObjectStore(error)
    }
}
