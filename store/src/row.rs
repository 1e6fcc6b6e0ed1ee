//! Decoding of `jobs` rows into [`Job`].

use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use crate::job::from_millis;
use crate::{Job, JobError, JobState, StoreError};

/// Column list that [`decode_job`] expects, in `concat!`-able form so queries stay
/// `&'static str`.
macro_rules! job_columns {
    () => {
        "seq, id, state, request, priority, steps_total, steps_done, attempts, max_attempts, \
         run_after, cancel_requested, worker, device, error_code, error_message, result_key, \
         summary, created_at, started_at, finished_at, updated_at"
    };
}
pub(crate) use job_columns;

pub(crate) fn decode_job(row: &SqliteRow) -> Result<Job, StoreError> {
    let id_text: String = row.try_get("id")?;
    let corrupt = |message: String| StoreError::CorruptRow {
        job_id: id_text.clone(),
        message,
    };
    let id = Uuid::parse_str(&id_text).map_err(|err| corrupt(format!("id: {err}")))?;
    let state: String = row.try_get("state")?;
    let state: JobState = state.parse().map_err(corrupt)?;
    let request: String = row.try_get("request")?;
    let request =
        serde_json::from_str(&request).map_err(|err| corrupt(format!("request: {err}")))?;
    let summary: Option<String> = row.try_get("summary")?;
    let summary = summary
        .map(|text| serde_json::from_str(&text))
        .transpose()
        .map_err(|err| corrupt(format!("summary: {err}")))?;
    let error_code: Option<String> = row.try_get("error_code")?;
    let error_message: Option<String> = row.try_get("error_message")?;
    let error = error_code.map(|code| JobError {
        code,
        message: error_message.unwrap_or_default(),
    });
    let time = |column: &str| -> Result<_, StoreError> {
        let millis: i64 = row.try_get(column)?;
        from_millis(&id_text, millis)
    };
    let optional_time = |column: &str| -> Result<_, StoreError> {
        let millis: Option<i64> = row.try_get(column)?;
        millis
            .map(|millis| from_millis(&id_text, millis))
            .transpose()
    };
    Ok(Job {
        id,
        seq: row.try_get("seq")?,
        state,
        request,
        priority: row.try_get("priority")?,
        steps_total: count(row, "steps_total", &id_text)?,
        steps_done: count(row, "steps_done", &id_text)?,
        attempts: count(row, "attempts", &id_text)?,
        max_attempts: count(row, "max_attempts", &id_text)?,
        cancel_requested: row.try_get("cancel_requested")?,
        worker: row.try_get("worker")?,
        device: row.try_get("device")?,
        error,
        result_key: row.try_get("result_key")?,
        summary,
        created_at: time("created_at")?,
        started_at: optional_time("started_at")?,
        finished_at: optional_time("finished_at")?,
        updated_at: time("updated_at")?,
        run_after: time("run_after")?,
    })
}

fn count(row: &SqliteRow, column: &str, job_id: &str) -> Result<u32, StoreError> {
    let value: i64 = row.try_get(column)?;
    u32::try_from(value).map_err(|_| StoreError::CorruptRow {
        job_id: job_id.to_owned(),
        message: format!("{column} = {value} is not a count"),
    })
}
