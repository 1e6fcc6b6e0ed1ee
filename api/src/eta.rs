//! Run-time estimates for live jobs, from the ReasoningBank's learned run times.

use chrono::{DateTime, Utc};
use gridcast_bank::RuntimeQuery;
use gridcast_engine::ForecastRequest;
use gridcast_store::{Job, JobState};
use serde::{Deserialize, Serialize};

use crate::AppState;

/// Expected run time of a queued or running job. Queue wait is not included: a queued
/// job's `remaining_seconds` starts counting when a worker claims it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Eta {
    /// Expected run time of the whole job, in seconds.
    pub run_seconds: f64,
    /// Expected seconds until the job finishes once running, scaled by the rollout
    /// steps still to do.
    pub remaining_seconds: f64,
    /// For a running job, the expected finish time.
    pub expected_finish: Option<DateTime<Utc>>,
    /// Finished jobs behind the estimate, and the bank's confidence in it (0 to 1).
    pub evidence: u64,
    pub confidence: f64,
    /// The ReasoningBank pattern the estimate comes from (see `GET /v1/insights`).
    pub pattern_id: i64,
}

/// Estimates the run time of `job` when it is live and the bank has seen similar jobs.
pub(crate) fn estimate(state: &AppState, job: &Job, now: DateTime<Utc>) -> Option<Eta> {
    if !matches!(job.state, JobState::Queued | JobState::Running) {
        return None;
    }
    let bank = state.bank.as_ref()?;
    let request: ForecastRequest = serde_json::from_value(job.request.clone()).ok()?;
    let validated = state
        .catalog
        .validate(&request, &state.config.request_limits)
        .ok()?;
    let query = RuntimeQuery {
        model: validated.model.clone(),
        device: job.device.clone(),
        grid_cells: validated.grid_cells as u64,
        lead_steps: validated.steps,
    };
    let estimate = match bank.estimate_runtime(&query) {
        Ok(estimate) => estimate?,
        Err(err) => {
            tracing::warn!(job_id = %job.id, error = %err, "failed to read the run-time estimate");
            return None;
        }
    };
    let done = if job.steps_total == 0 {
        0.0
    } else {
        f64::from(job.steps_done) / f64::from(job.steps_total)
    };
    let remaining_seconds = estimate.seconds * (1.0 - done);
    let expected_finish = (job.state == JobState::Running)
        .then(|| now + chrono::Duration::milliseconds((remaining_seconds * 1000.0) as i64));
    Some(Eta {
        run_seconds: estimate.seconds,
        remaining_seconds,
        expected_finish,
        evidence: estimate.evidence,
        confidence: estimate.confidence,
        pattern_id: estimate.pattern_id,
    })
}
