//! Job outcomes: what was requested, how it ran and how it ended.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rusqlite::{Transaction, params};
use serde::{Deserialize, Serialize};

use crate::pattern::{self, RuntimeQuery};
use crate::{Bank, BankError, time, weights};

/// `Outcome::error_class` of a job that ran out of device or host memory. Failure
/// patterns count only this class.
pub const ERROR_CLASS_OUT_OF_MEMORY: &str = "out_of_memory";

/// Final state of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobEnd {
    Succeeded,
    Failed,
    Cancelled,
}

impl JobEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            JobEnd::Succeeded => "succeeded",
            JobEnd::Failed => "failed",
            JobEnd::Cancelled => "cancelled",
        }
    }
}

/// One finished job. Workers record it once per job; recording the same `job_id` again
/// replaces the earlier record, so a redelivered completion does not count twice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    pub job_id: String,
    pub model: String,
    pub dataset: String,
    /// Grid cells of the forecast region (latitudes x longitudes).
    pub grid_cells: u64,
    /// Autoregressive model steps from init time to the last lead time.
    pub lead_steps: u32,
    /// Ensemble members; 1 for a deterministic forecast.
    pub members: u32,
    #[serde(default)]
    pub schedule_id: Option<String>,
    #[serde(default)]
    pub cycle_time: Option<DateTime<Utc>>,
    /// Device the job ran on, for example `cuda:0` or `cpu`.
    pub device: String,
    pub batch_size: u32,
    pub queue_wait_seconds: f64,
    /// Duration of each phase in seconds, keyed by phase name (for example `load`,
    /// `rollout`, `write`). Their sum is the job's run time.
    pub phase_seconds: BTreeMap<String, f64>,
    #[serde(default)]
    pub peak_memory_bytes: Option<u64>,
    pub attempts: u32,
    pub state: JobEnd,
    /// Failure class, for example [`ERROR_CLASS_OUT_OF_MEMORY`]; `None` on success.
    #[serde(default)]
    pub error_class: Option<String>,
    pub finished_at: DateTime<Utc>,
}

impl Outcome {
    /// Run time in seconds: the sum of the phase durations, without queue wait.
    pub fn run_seconds(&self) -> f64 {
        self.phase_seconds.values().sum()
    }

    pub fn is_out_of_memory(&self) -> bool {
        self.error_class.as_deref() == Some(ERROR_CLASS_OUT_OF_MEMORY)
    }

    /// Checks the numbers a pattern would average, naming the first bad field.
    pub fn validate(&self) -> Result<(), BankError> {
        let invalid = |field: &str, message: String| BankError::InvalidValue {
            field: format!("outcome {} {field}", self.job_id),
            message,
        };
        if self.job_id.is_empty() {
            return Err(invalid("job_id", "must not be empty".into()));
        }
        if !(self.queue_wait_seconds.is_finite() && self.queue_wait_seconds >= 0.0) {
            let message = format!("{} must be a finite number >= 0", self.queue_wait_seconds);
            return Err(invalid("queue_wait_seconds", message));
        }
        for (phase, seconds) in &self.phase_seconds {
            if !(seconds.is_finite() && *seconds >= 0.0) {
                let message = format!("{seconds} must be a finite number >= 0");
                return Err(invalid(&format!("phase_seconds.{phase}"), message));
            }
        }
        Ok(())
    }

    pub(crate) fn runtime_query(&self) -> RuntimeQuery {
        RuntimeQuery {
            model: self.model.clone(),
            device: Some(self.device.clone()),
            grid_cells: self.grid_cells,
            lead_steps: self.lead_steps,
        }
    }
}

impl Bank {
    /// Records a finished job and refreshes the patterns it feeds. The estimate that
    /// existed before this outcome is stored with it, to measure ETA error.
    pub fn record_outcome(&self, outcome: &Outcome) -> Result<(), BankError> {
        outcome.validate()?;
        let half_life = self.options.half_life;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let eta = pattern::estimate_in(&tx, &outcome.runtime_query())?.map(|e| e.seconds);
        insert_outcome(&tx, outcome, eta)?;
        pattern::refresh_for_outcome(&tx, outcome, half_life)?;
        tx.commit()?;
        tracing::debug!(
            job_id = %outcome.job_id,
            state = outcome.state.as_str(),
            run_seconds = outcome.run_seconds(),
            "recorded job outcome"
        );
        Ok(())
    }

    /// Number of recorded outcomes.
    pub fn outcomes_total(&self) -> Result<u64, BankError> {
        let count: i64 = self
            .conn()
            .query_row("SELECT COUNT(*) FROM outcomes", [], |row| row.get(0))?;
        Ok(count as u64)
    }

    /// Reads the recorded outcome of a job, if any.
    pub fn outcome(&self, job_id: &str) -> Result<Option<Outcome>, BankError> {
        let conn = self.conn();
        let mut statement = conn.prepare("SELECT record FROM outcomes WHERE job_id = ?1")?;
        let mut rows = statement.query([job_id])?;
        match rows.next()? {
            Some(row) => Ok(Some(decode_record(&row.get::<_, String>(0)?)?)),
            None => Ok(None),
        }
    }
}

pub(crate) fn decode_record(json: &str) -> Result<Outcome, BankError> {
    serde_json::from_str(json).map_err(|err| BankError::InvalidValue {
        field: "outcomes.record".into(),
        message: err.to_string(),
    })
}

/// Inserts one outcome row, replacing an earlier row of the same job.
pub(crate) fn insert_outcome(
    tx: &Transaction<'_>,
    outcome: &Outcome,
    eta_seconds: Option<f64>,
) -> Result<(), BankError> {
    let record = serde_json::to_string(outcome).map_err(|err| BankError::InvalidValue {
        field: "outcome".into(),
        message: err.to_string(),
    })?;
    tx.execute(
        "INSERT OR REPLACE INTO outcomes (job_id, model, dataset, grid_cells, grid_bucket,
             lead_steps, members, schedule_id, cycle_time, device, batch_size,
             queue_wait_seconds, run_seconds, peak_memory_bytes, attempts, state,
             error_class, finished_at, eta_seconds, record)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
             ?18, ?19, ?20)",
        params![
            outcome.job_id,
            outcome.model,
            outcome.dataset,
            outcome.grid_cells as i64,
            weights::grid_bucket(outcome.grid_cells),
            outcome.lead_steps,
            outcome.members,
            outcome.schedule_id,
            outcome.cycle_time.map(time::to_text),
            outcome.device,
            outcome.batch_size,
            outcome.queue_wait_seconds,
            outcome.run_seconds(),
            outcome.peak_memory_bytes.map(|bytes| bytes as i64),
            outcome.attempts,
            outcome.state.as_str(),
            outcome.error_class,
            time::to_text(outcome.finished_at),
            eta_seconds,
            record,
        ],
    )?;
    Ok(())
}
