//! Interfaces to the rest of the system. The job service, the engine's catalog and the
//! lock backend implement these; the scheduler's tests use small in-memory versions.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use gridcast_engine::{ForecastRequest, RequestError};

/// A boxed future, so the traits stay object-safe without `async_trait`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A submitted job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRef {
    pub job_id: String,
    /// False when the idempotency key matched an existing job, which was returned instead.
    pub created: bool,
}

/// State of a submitted job as the job service reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed { message: String },
    Cancelled,
}

/// Failure to submit or look up a job.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SubmitError {
    /// The job service rejected the request; resubmitting the same request fails again.
    #[error("job service rejected the request: {message}")]
    Rejected {
        field: Option<String>,
        message: String,
    },
    /// The job service could not be reached or is overloaded; try again later.
    #[error("job service unavailable: {message}")]
    Unavailable { message: String },
    #[error("job {job_id} not found")]
    NotFound { job_id: String },
}

/// The job service, as the scheduler uses it. `submit` must return the existing job when
/// `idempotency_key` was used before, so a cycle is never queued twice, even by two
/// schedulers or after a restart.
pub trait JobSubmitter: Send + Sync {
    fn submit(
        &self,
        request: ForecastRequest,
        priority: i32,
        idempotency_key: String,
    ) -> BoxFuture<'_, Result<JobRef, SubmitError>>;

    fn job_state(&self, job_id: String) -> BoxFuture<'_, Result<JobState, SubmitError>>;
}

/// Leadership among scheduler processes: only the holder plans and submits cycles.
/// Idempotency keys keep cycles single even if two processes believe they hold it.
pub trait SchedulerLease: Send + Sync {
    /// Acquires or renews the lease; returns whether this process holds it now.
    fn acquire(&self) -> BoxFuture<'_, bool>;

    /// Gives the lease up at shutdown, if this process holds it, so that a standby or a
    /// restarted process takes over at its next tick instead of when the lease lapses.
    fn release(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// The lease of the embedded service, where only one scheduler runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysHeld;

impl SchedulerLease for AlwaysHeld {
    fn acquire(&self) -> BoxFuture<'_, bool> {
        Box::pin(async { true })
    }
}

/// Availability of analyses in a dataset. A cycle waits until its init time is
/// available, and verification waits for the valid time.
pub trait InputAvailability: Send + Sync {
    fn has_time(&self, dataset: &str, time: DateTime<Utc>) -> bool;

    /// First and last time of the dataset's time axis, or `None` for an unknown dataset.
    /// A backfill is rejected when one of its cycles lies outside this span, because
    /// such a cycle would wait for input until its timeout.
    fn time_span(&self, dataset: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)>;
}

/// Availability from explicit lists of times, which can grow while the scheduler runs.
#[derive(Debug, Default)]
pub struct FixedTimes {
    times: Mutex<HashMap<String, BTreeSet<DateTime<Utc>>>>,
}

impl FixedTimes {
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks `time` as available in `dataset`.
    pub fn insert(&self, dataset: &str, time: DateTime<Utc>) {
        let mut times = self.times.lock().unwrap_or_else(|p| p.into_inner());
        times.entry(dataset.to_string()).or_default().insert(time);
    }

    /// Creates the 64 six-hourly analysis times of the storm-1996 dataset under `dataset`.
    pub fn storm_1996(dataset: &str) -> Self {
        let fixed = Self::new();
        let start = crate::clock::storm_1996_start();
        for step in 0..64 {
            fixed.insert(dataset, start + chrono::Duration::hours(6 * step));
        }
        fixed
    }
}

impl InputAvailability for FixedTimes {
    fn has_time(&self, dataset: &str, time: DateTime<Utc>) -> bool {
        let times = self.times.lock().unwrap_or_else(|p| p.into_inner());
        times.get(dataset).is_some_and(|set| set.contains(&time))
    }

    /// Returns the span of the times inserted so far. A later [`FixedTimes::insert`]
    /// widens it.
    fn time_span(&self, dataset: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let times = self.times.lock().unwrap_or_else(|p| p.into_inner());
        let set = times.get(dataset)?;
        Some((*set.first()?, *set.last()?))
    }
}

/// Resolved shape of a valid request, on which the bank's run-time patterns are keyed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestShape {
    /// The model that will run, after the dataset's default was applied.
    pub model: String,
    pub grid_cells: u64,
    pub lead_steps: u32,
}

/// Validation of a schedule's request against the datasets and models that exist. The
/// engine's `Catalog` is expected to provide it.
pub trait RequestCatalog: Send + Sync {
    fn check(&self, request: &ForecastRequest) -> Result<RequestShape, RequestError>;

    /// Checks one cycle's request at its own init time, which [`RequestCatalog::check`]
    /// does not: a backfill's first cycle may lie too early for the model's history.
    /// Catalogs without a time axis accept every cycle.
    fn check_cycle(&self, _request: &ForecastRequest) -> Result<(), RequestError> {
        Ok(())
    }
}

/// A finished scheduled forecast to verify against analyses.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyTarget {
    pub job_id: String,
    pub schedule_id: String,
    pub request: ForecastRequest,
}

/// One verification score.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub variable: String,
    pub lead_hours: u32,
    /// Root-mean-square error in the variable's unit.
    pub rmse: f64,
    /// Anomaly correlation coefficient, when a climatology exists.
    pub acc: Option<f64>,
}

/// Failure to score a forecast; the scheduler retries on a later tick.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("verification of job {job_id} failed: {message}")]
pub struct VerifyError {
    pub job_id: String,
    pub message: String,
}

/// Scores a finished forecast against the analyses at its valid times (RMSE, ACC). The
/// engine's verification is expected to provide it.
pub trait Verifier: Send + Sync {
    fn score(&self, target: VerifyTarget) -> BoxFuture<'_, Result<Vec<Score>, VerifyError>>;
}
