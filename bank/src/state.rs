//! Scheduler state: schedule definitions, one row per planned cycle, and backfill
//! ranges. The bank stores a schedule's definition as opaque JSON so this crate does not
//! depend on the scheduler's types.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use crate::{Bank, BankError, time};

mod cycles;

/// Lifecycle of one cycle of one schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CycleState {
    /// Due, waiting for input data or a runahead slot.
    Pending,
    /// A job was submitted and has not finished.
    Submitted,
    Succeeded,
    Failed,
    /// Not run, by the missed-cycle policy or because it fell out of the catch-up window.
    Skipped,
}

impl CycleState {
    pub const ALL: [CycleState; 5] = [
        CycleState::Pending,
        CycleState::Submitted,
        CycleState::Succeeded,
        CycleState::Failed,
        CycleState::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CycleState::Pending => "pending",
            CycleState::Submitted => "submitted",
            CycleState::Succeeded => "succeeded",
            CycleState::Failed => "failed",
            CycleState::Skipped => "skipped",
        }
    }

    /// Whether the cycle will not change state without an operator's trigger.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            CycleState::Succeeded | CycleState::Failed | CycleState::Skipped
        )
    }

    fn parse(text: &str) -> Result<Self, BankError> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
            .ok_or_else(|| invalid("cycles.state", text))
    }
}

/// Reason a cycle was planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CycleOrigin {
    /// Came due while the scheduler was running.
    Cron,
    /// Came due while the scheduler was down and was run by the missed-cycle policy.
    CatchUp,
    Backfill,
    /// Planned by an operator's trigger request.
    Trigger,
}

impl CycleOrigin {
    const ALL: [CycleOrigin; 4] = [
        CycleOrigin::Cron,
        CycleOrigin::CatchUp,
        CycleOrigin::Backfill,
        CycleOrigin::Trigger,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CycleOrigin::Cron => "cron",
            CycleOrigin::CatchUp => "catch_up",
            CycleOrigin::Backfill => "backfill",
            CycleOrigin::Trigger => "trigger",
        }
    }

    fn parse(text: &str) -> Result<Self, BankError> {
        Self::ALL
            .into_iter()
            .find(|origin| origin.as_str() == text)
            .ok_or_else(|| invalid("cycles.origin", text))
    }
}

/// One cycle of one schedule, keyed by (schedule_id, cycle_time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CycleRecord {
    pub schedule_id: String,
    pub cycle_time: DateTime<Utc>,
    pub state: CycleState,
    pub origin: CycleOrigin,
    pub job_id: Option<String>,
    /// 1 for the first submission; each operator trigger after a failure adds one.
    pub attempt: u32,
    /// Reason the cycle failed or was skipped.
    pub reason: Option<String>,
    /// When the cycle became pending; the input-wait timeout counts from here.
    pub planned_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Whether skill scores of the finished forecast were recorded.
    pub verified: bool,
}

/// A stored schedule definition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScheduleRow {
    pub id: String,
    pub spec: serde_json::Value,
    pub paused: bool,
    /// Cycles at or before this time have been planned, skipped or found missing.
    pub cursor: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A backfill request's inclusive range of cycle times.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackfillRange {
    pub id: i64,
    pub schedule_id: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

fn invalid(field: &str, text: &str) -> BankError {
    BankError::InvalidValue {
        field: field.to_string(),
        message: format!("unknown value {text:?}"),
    }
}

const SCHEDULE_COLUMNS: &str = "id, spec, paused, cursor, created_at, updated_at";

fn schedule_from_row(row: &Row<'_>) -> rusqlite::Result<[String; 6]> {
    let paused: bool = row.get(2)?;
    Ok([
        row.get(0)?,
        row.get(1)?,
        paused.to_string(),
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    ])
}

fn finish_schedule(raw: [String; 6]) -> Result<ScheduleRow, BankError> {
    let [id, spec, paused, cursor, created_at, updated_at] = raw;
    let spec = serde_json::from_str(&spec).map_err(|err| BankError::InvalidValue {
        field: format!("schedules.spec of {id}"),
        message: err.to_string(),
    })?;
    Ok(ScheduleRow {
        spec,
        paused: paused == "true",
        cursor: time::from_text("schedules.cursor", &cursor)?,
        created_at: time::from_text("schedules.created_at", &created_at)?,
        updated_at: time::from_text("schedules.updated_at", &updated_at)?,
        id,
    })
}

impl Bank {
    /// Stores a new schedule; fails with [`BankError::AlreadyExists`] if the id is taken.
    pub fn insert_schedule(&self, row: &ScheduleRow) -> Result<(), BankError> {
        let result = self.conn().execute(
            "INSERT INTO schedules (id, spec, paused, cursor, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                row.id,
                row.spec.to_string(),
                row.paused,
                time::to_text(row.cursor),
                time::to_text(row.created_at),
                time::to_text(row.updated_at),
            ],
        );
        match result {
            Ok(_) => Ok(()),
            Err(err)
                if err.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) =>
            {
                Err(BankError::AlreadyExists {
                    what: "schedule",
                    id: row.id.clone(),
                })
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Replaces a schedule's definition. Returns false when no such schedule exists.
    pub fn update_schedule_spec(
        &self,
        id: &str,
        spec: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<bool, BankError> {
        let changed = self.conn().execute(
            "UPDATE schedules SET spec = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, spec.to_string(), time::to_text(now)],
        )?;
        Ok(changed == 1)
    }

    /// Pauses or resumes a schedule. Returns false when no such schedule exists.
    pub fn set_schedule_paused(
        &self,
        id: &str,
        paused: bool,
        now: DateTime<Utc>,
    ) -> Result<bool, BankError> {
        let changed = self.conn().execute(
            "UPDATE schedules SET paused = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, paused, time::to_text(now)],
        )?;
        Ok(changed == 1)
    }

    /// Deletes a schedule, its pending cycles and its backfill ranges. Cycles that ran
    /// stay on record for skill history. Returns false when no such schedule exists.
    pub fn delete_schedule(&self, id: &str) -> Result<bool, BankError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let deleted = tx.execute("DELETE FROM schedules WHERE id = ?1", [id])?;
        tx.execute(
            "DELETE FROM cycles WHERE schedule_id = ?1 AND state = 'pending'",
            [id],
        )?;
        tx.execute("DELETE FROM backfills WHERE schedule_id = ?1", [id])?;
        tx.commit()?;
        Ok(deleted == 1)
    }

    /// Lists all schedules, ordered by id.
    pub fn schedules(&self) -> Result<Vec<ScheduleRow>, BankError> {
        let conn = self.conn();
        let sql = format!("SELECT {SCHEDULE_COLUMNS} FROM schedules ORDER BY id");
        let mut statement = conn.prepare(&sql)?;
        let rows = statement.query_map([], schedule_from_row)?;
        let mut schedules = Vec::new();
        for row in rows {
            schedules.push(finish_schedule(row?)?);
        }
        Ok(schedules)
    }

    pub fn schedule(&self, id: &str) -> Result<Option<ScheduleRow>, BankError> {
        let conn = self.conn();
        let sql = format!("SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id = ?1");
        let raw = conn.query_row(&sql, [id], schedule_from_row).optional()?;
        raw.map(finish_schedule).transpose()
    }
}
