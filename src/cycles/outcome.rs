//! Recording finished jobs of the store into the ReasoningBank.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use gridcast_bank::{Bank, CycleState, JobEnd, Outcome};
use gridcast_engine::{Catalog, ForecastRequest, RequestLimits};
use gridcast_store::{Job, JobState, Store};
use uuid::Uuid;

/// Phase name under which the whole run time is recorded. The worker does not time the
/// load, rollout and write phases separately, so each outcome has this one phase.
pub const RUN_PHASE: &str = "run";

/// Records a finished job's outcome in the bank and returns it.
///
/// The request shape (model, grid cells, lead steps) comes from validating the stored
/// request against `catalog`, as the scheduler keys its run-time estimates. When the
/// catalog no longer accepts the request, the shape comes from the job's forecast
/// summary. The schedule and cycle come from the bank's cycle of this job, if any.
/// Recording a job again replaces its earlier outcome. Fails when the job is not
/// finished or its request cannot be read.
pub fn record_outcome(
    bank: &Bank,
    catalog: &Catalog,
    limits: &RequestLimits,
    job: &Job,
) -> anyhow::Result<Outcome> {
    let outcome = build_outcome(bank, catalog, limits, job)?;
    bank.record_outcome(&outcome)
        .with_context(|| format!("failed to record the outcome of job {} in the bank", job.id))?;
    Ok(outcome)
}

/// Loads job `job_id` from `store` and records its outcome when it is finished. Returns
/// `None`, recording nothing, while the job is queued or running, so a completion hook
/// that holds only the job id can call it after every attempt.
pub async fn record_job_outcome(
    bank: &Bank,
    catalog: &Catalog,
    limits: &RequestLimits,
    store: &Store,
    job_id: Uuid,
) -> anyhow::Result<Option<Outcome>> {
    let job = store
        .job(job_id)
        .await
        .with_context(|| format!("failed to read job {job_id} from the store"))?
        .with_context(|| format!("job {job_id} not found in the store"))?;
    if !job.state.is_final() {
        return Ok(None);
    }
    record_outcome(bank, catalog, limits, &job).map(Some)
}

fn build_outcome(
    bank: &Bank,
    catalog: &Catalog,
    limits: &RequestLimits,
    job: &Job,
) -> anyhow::Result<Outcome> {
    let state = match job.state {
        JobState::Succeeded => JobEnd::Succeeded,
        JobState::Failed => JobEnd::Failed,
        JobState::Cancelled => JobEnd::Cancelled,
        live => bail!(
            "job {} is {live}; only finished jobs have an outcome",
            job.id
        ),
    };
    let Some(finished_at) = job.finished_at else {
        bail!(
            "job {} is {} but has no finished_at time",
            job.id,
            job.state
        );
    };
    let request: ForecastRequest = serde_json::from_value(job.request.clone())
        .with_context(|| format!("stored request of job {} is not a forecast request", job.id))?;
    let shape = request_shape(catalog, limits, &request, job)?;
    let cycle = find_cycle(bank, &job.id.to_string())?;
    let (queue_wait, run) = durations(job, finished_at);
    Ok(Outcome {
        job_id: job.id.to_string(),
        model: shape.model,
        dataset: request.dataset,
        grid_cells: shape.grid_cells,
        lead_steps: shape.lead_steps,
        members: request.members,
        schedule_id: cycle.as_ref().map(|(id, _)| id.clone()),
        cycle_time: cycle.map(|(_, time)| time),
        device: job.device.clone().unwrap_or_else(|| "unknown".to_string()),
        // The engine runs all members of one request together, so the batch is the
        // ensemble size.
        batch_size: request.members,
        queue_wait_seconds: queue_wait,
        phase_seconds: BTreeMap::from([(RUN_PHASE.to_string(), run)]),
        peak_memory_bytes: None,
        attempts: job.attempts,
        state,
        // NOTE: the worker's error codes (`invalid_request`, `io`, `model`, ...) name no
        // out-of-memory class yet, so no outcome counts as `out_of_memory`.
        error_class: job.error.as_ref().map(|error| error.code.clone()),
        finished_at,
    })
}

struct Shape {
    model: String,
    grid_cells: u64,
    lead_steps: u32,
}

fn request_shape(
    catalog: &Catalog,
    limits: &RequestLimits,
    request: &ForecastRequest,
    job: &Job,
) -> anyhow::Result<Shape> {
    let validation = match catalog.validate(request, limits) {
        Ok(validated) => {
            return Ok(Shape {
                model: validated.model,
                grid_cells: validated.grid_cells as u64,
                lead_steps: validated.steps,
            });
        }
        Err(err) => err,
    };
    let summary = job.summary.as_ref();
    let model = summary.and_then(|s| s["model_id"].as_str());
    let grid_cells = summary.and_then(|s| s["grid_cells"].as_u64());
    match (model, grid_cells) {
        (Some(model), Some(grid_cells)) => Ok(Shape {
            model: model.to_string(),
            grid_cells,
            lead_steps: job.steps_total,
        }),
        _ => bail!(
            "cannot resolve the request shape of job {}: the catalog rejects its request \
             ({validation}) and the job has no forecast summary",
            job.id
        ),
    }
}

/// Queue wait from creation to the first start, and run time from the first start to
/// the end, in seconds. A job cancelled before it started waited until it was cancelled
/// and ran for 0 s.
// NOTE: `started_at` is the start of the first attempt, so with retries the run time
// includes the failed attempts and their backoff.
fn durations(job: &Job, finished_at: DateTime<Utc>) -> (f64, f64) {
    let seconds = |from: DateTime<Utc>, to: DateTime<Utc>| {
        ((to - from).num_milliseconds() as f64 / 1000.0).max(0.0)
    };
    match job.started_at {
        Some(started_at) => (
            seconds(job.created_at, started_at),
            seconds(started_at, finished_at),
        ),
        None => (seconds(job.created_at, finished_at), 0.0),
    }
}

/// Finds the schedule and cycle time whose cycle submitted `job_id`, scanning every
/// schedule's cycles. The bank has no index by job id, so the cost grows with the
/// cycles on record, which stays small in the embedded service.
fn find_cycle(bank: &Bank, job_id: &str) -> anyhow::Result<Option<(String, DateTime<Utc>)>> {
    let states = [
        CycleState::Submitted,
        CycleState::Succeeded,
        CycleState::Failed,
    ];
    for schedule in bank
        .schedules()
        .context("failed to read schedules from the bank")?
    {
        let cycles = bank
            .cycles(&schedule.id, &states)
            .with_context(|| format!("failed to read cycles of schedule {}", schedule.id))?;
        if let Some(cycle) = cycles
            .into_iter()
            .find(|cycle| cycle.job_id.as_deref() == Some(job_id))
        {
            return Ok(Some((cycle.schedule_id, cycle.cycle_time)));
        }
    }
    Ok(None)
}

/// How often the outcome sweeper looks for newly finished jobs.
const SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Records the outcome of every finished job that the bank lacks, reading the shared
/// store, until `shutdown`. A scheduler process runs it when the workers are other
/// processes, which cannot reach its bank file. Jobs are read in `seq` order from a
/// cursor that passes a job only once it is finished, so none is skipped. Jobs the bank
/// already contains are not recorded again.
pub fn spawn_outcome_sweeper(
    bank: std::sync::Arc<Bank>,
    catalog: std::sync::Arc<Catalog>,
    store: Store,
    limits: RequestLimits,
    shutdown: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut cursor: Option<i64> = None;
        loop {
            match sweep_outcomes(&bank, &catalog, &store, &limits, cursor).await {
                Ok(next) => cursor = next,
                Err(err) => tracing::warn!(error = %err, "recording finished jobs failed"),
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(SWEEP_INTERVAL) => {}
            }
        }
    })
}

/// One pass of the sweeper from `cursor`; returns the new cursor.
async fn sweep_outcomes(
    bank: &Bank,
    catalog: &Catalog,
    store: &Store,
    limits: &RequestLimits,
    mut cursor: Option<i64>,
) -> anyhow::Result<Option<i64>> {
    let mut after = cursor;
    let mut passed_unfinished = false;
    loop {
        let page = store
            .list(&gridcast_store::ListQuery {
                state: None,
                after_seq: after,
                limit: 200,
                tenant: None,
            })
            .await?;
        for job in &page.jobs {
            if !job.state.is_final() {
                passed_unfinished = true;
                continue;
            }
            if bank.outcome(&job.id.to_string())?.is_none()
                && let Err(err) = record_outcome(bank, catalog, limits, job)
            {
                tracing::warn!(job_id = %job.id, error = %err, "failed to record a job outcome");
            }
            if !passed_unfinished {
                cursor = Some(job.seq);
            }
        }
        match page.next_after_seq {
            Some(next) => after = Some(next),
            None => return Ok(cursor),
        }
    }
}
