//! Decoding of `jobs` rows into [`Job`].

use uuid::Uuid;

use crate::job::from_millis;
use crate::{Job, JobError, JobState, StoreError};

/// Column list that [`decode_job`] expects, in `concat!`-able form so queries stay
/// `&'static str`.
macro_rules! job_columns {
    () => {
        "seq, id, state, request, priority, steps_total, steps_done, attempts, max_attempts, \
         run_after, cancel_requested, worker, device, error_code, error_message, result_key, \
         summary, created_at, started_at, finished_at, updated_at, tenant"
    };
}
pub(crate) use job_columns;

/// A `jobs` row as both backends return it: text and 64-bit integers only, so one
/// decoder serves SQLite and Postgres.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct JobRecord {
    seq: i64,
    id: String,
    state: String,
    request: String,
    priority: i64,
    steps_total: i64,
    steps_done: i64,
    attempts: i64,
    max_attempts: i64,
    run_after: i64,
    cancel_requested: i64,
    worker: Option<String>,
    device: Option<String>,
    error_code: Option<String>,
    error_message: Option<String>,
    result_key: Option<String>,
    summary: Option<String>,
    created_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    updated_at: i64,
    tenant: Option<String>,
}

/// A row read by an idempotency lookup: the job and the hash of the body it was
/// submitted with.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct KeyedRecord {
    pub request_hash: Option<String>,
    #[sqlx(flatten)]
    pub job: JobRecord,
}

pub(crate) fn decode_job(row: JobRecord) -> Result<Job, StoreError> {
    let id_text = row.id;
    let corrupt = |message: String| StoreError::CorruptRow {
        job_id: id_text.clone(),
        message,
    };
    let id = Uuid::parse_str(&id_text).map_err(|err| corrupt(format!("id: {err}")))?;
    let state: JobState = row.state.parse().map_err(corrupt)?;
    let request =
        serde_json::from_str(&row.request).map_err(|err| corrupt(format!("request: {err}")))?;
    let summary = row
        .summary
        .map(|text| serde_json::from_str(&text))
        .transpose()
        .map_err(|err| corrupt(format!("summary: {err}")))?;
    let error = row.error_code.map(|code| JobError {
        code,
        message: row.error_message.unwrap_or_default(),
    });
    let optional_time = |millis: Option<i64>| {
        millis
            .map(|millis| from_millis(&id_text, millis))
            .transpose()
    };
    let count = |column: &str, value: i64| {
        u32::try_from(value).map_err(|_| corrupt(format!("{column} = {value} is not a count")))
    };
    let priority = i32::try_from(row.priority)
        .map_err(|_| corrupt(format!("priority {} is out of range", row.priority)))?;
    Ok(Job {
        id,
        seq: row.seq,
        state,
        request,
        priority,
        steps_total: count("steps_total", row.steps_total)?,
        steps_done: count("steps_done", row.steps_done)?,
        attempts: count("attempts", row.attempts)?,
        max_attempts: count("max_attempts", row.max_attempts)?,
        cancel_requested: row.cancel_requested != 0,
        worker: row.worker,
        device: row.device,
        error,
        result_key: row.result_key,
        summary,
        created_at: from_millis(&id_text, row.created_at)?,
        started_at: optional_time(row.started_at)?,
        finished_at: optional_time(row.finished_at)?,
        updated_at: from_millis(&id_text, row.updated_at)?,
        run_after: from_millis(&id_text, row.run_after)?,
        tenant: row.tenant,
    })
}
