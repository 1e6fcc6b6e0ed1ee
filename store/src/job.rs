//! Job records as the store keeps them.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::StoreError;

/// Lifecycle state of a job. `queued` and `running` are live; the other three are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 5] = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Returns whether the job can no longer change state.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for JobState {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
            .ok_or_else(|| {
                format!(
                    "unknown job state `{text}`: expected one of queued, running, succeeded, \
                     failed, cancelled"
                )
            })
    }
}

/// Error recorded on a job: a stable machine-readable code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    pub code: String,
    pub message: String,
}

/// A job to insert. The request is stored as JSON so the store does not depend on the
/// engine's request type.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub request: serde_json::Value,
    pub priority: i32,
    pub steps_total: u32,
    pub max_attempts: u32,
    pub idempotency: Option<Idempotency>,
    /// Tenant of the API key that submits the job; `None` without keys.
    pub tenant: Option<String>,
}

/// Idempotency key of a submission and the hash of the body it was sent with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    pub key: String,
    pub request_hash: String,
}

/// One job row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    pub id: Uuid,
    /// Insertion order; the cursor key of job listings.
    pub seq: i64,
    pub state: JobState,
    pub request: serde_json::Value,
    pub priority: i32,
    pub steps_done: u32,
    pub steps_total: u32,
    /// Attempts started so far, including a running one.
    pub attempts: u32,
    pub max_attempts: u32,
    pub cancel_requested: bool,
    pub worker: Option<String>,
    pub device: Option<String>,
    pub error: Option<JobError>,
    /// Object store key of the committed result, set only in state `succeeded`.
    pub result_key: Option<String>,
    pub summary: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    /// Earliest claim time of a queued job; later than `created_at` while a retry backs off.
    pub run_after: DateTime<Utc>,
    /// Tenant that owns the job; `None` for jobs submitted without keys.
    pub tenant: Option<String>,
}

/// Milliseconds since the Unix epoch, the timestamp encoding of the jobs table.
pub(crate) fn to_millis(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

pub(crate) fn from_millis(job_id: &str, millis: i64) -> Result<DateTime<Utc>, StoreError> {
    Utc.timestamp_millis_opt(millis)
        .single()
        .ok_or_else(|| StoreError::CorruptRow {
            job_id: job_id.to_owned(),
            message: format!("timestamp {millis} ms is out of range"),
        })
}
