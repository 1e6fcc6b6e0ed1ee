//! Cycle rows and backfill ranges.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, Transaction, params};

use super::{BackfillRange, CycleOrigin, CycleRecord, CycleState};
use crate::{Bank, BankError, time};

const CYCLE_COLUMNS: &str = "schedule_id, cycle_time, state, origin, job_id, attempt, reason,
    planned_at, updated_at, verified";

struct RawCycle {
    schedule_id: String,
    cycle_time: String,
    state: String,
    origin: String,
    job_id: Option<String>,
    attempt: u32,
    reason: Option<String>,
    planned_at: String,
    updated_at: String,
    verified: bool,
}

fn cycle_from_row(row: &Row<'_>) -> rusqlite::Result<RawCycle> {
    Ok(RawCycle {
        schedule_id: row.get(0)?,
        cycle_time: row.get(1)?,
        state: row.get(2)?,
        origin: row.get(3)?,
        job_id: row.get(4)?,
        attempt: row.get(5)?,
        reason: row.get(6)?,
        planned_at: row.get(7)?,
        updated_at: row.get(8)?,
        verified: row.get(9)?,
    })
}

fn finish_cycle(raw: RawCycle) -> Result<CycleRecord, BankError> {
    Ok(CycleRecord {
        schedule_id: raw.schedule_id,
        cycle_time: time::from_text("cycles.cycle_time", &raw.cycle_time)?,
        state: CycleState::parse(&raw.state)?,
        origin: CycleOrigin::parse(&raw.origin)?,
        job_id: raw.job_id,
        attempt: raw.attempt,
        reason: raw.reason,
        planned_at: time::from_text("cycles.planned_at", &raw.planned_at)?,
        updated_at: time::from_text("cycles.updated_at", &raw.updated_at)?,
        verified: raw.verified,
    })
}

/// Inserts cycles that are not on record yet and returns how many were new.
fn insert_new_cycles(tx: &Transaction<'_>, cycles: &[CycleRecord]) -> Result<usize, BankError> {
    let mut statement = tx.prepare_cached(
        "INSERT OR IGNORE INTO cycles (schedule_id, cycle_time, state, origin, job_id, attempt,
             reason, planned_at, updated_at, verified)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    let mut inserted = 0;
    for cycle in cycles {
        inserted += statement.execute(params![
            cycle.schedule_id,
            time::to_text(cycle.cycle_time),
            cycle.state.as_str(),
            cycle.origin.as_str(),
            cycle.job_id,
            cycle.attempt,
            cycle.reason,
            time::to_text(cycle.planned_at),
            time::to_text(cycle.updated_at),
            cycle.verified,
        ])?;
    }
    Ok(inserted)
}

impl Bank {
    /// Records newly due cycles and moves the schedule's cursor in one transaction, so a
    /// crash cannot lose a cycle or plan it twice. Cycles already on record are kept as
    /// they are. Returns the number of new cycle rows.
    pub fn plan_cycles(
        &self,
        schedule_id: &str,
        cursor: Option<DateTime<Utc>>,
        cycles: &[CycleRecord],
    ) -> Result<usize, BankError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let inserted = insert_new_cycles(&tx, cycles)?;
        if let Some(cursor) = cursor {
            tx.execute(
                "UPDATE schedules SET cursor = ?2 WHERE id = ?1",
                params![schedule_id, time::to_text(cursor)],
            )?;
        }
        tx.commit()?;
        Ok(inserted)
    }

    /// Overwrites the state, job, attempt, reason and times of a cycle on record.
    pub fn update_cycle(&self, cycle: &CycleRecord) -> Result<(), BankError> {
        self.conn().execute(
            "UPDATE cycles SET state = ?3, origin = ?4, job_id = ?5, attempt = ?6, reason = ?7,
                 planned_at = ?8, updated_at = ?9, verified = ?10
             WHERE schedule_id = ?1 AND cycle_time = ?2",
            params![
                cycle.schedule_id,
                time::to_text(cycle.cycle_time),
                cycle.state.as_str(),
                cycle.origin.as_str(),
                cycle.job_id,
                cycle.attempt,
                cycle.reason,
                time::to_text(cycle.planned_at),
                time::to_text(cycle.updated_at),
                cycle.verified,
            ],
        )?;
        Ok(())
    }

    /// Cycles of a schedule in the given states (all states when empty), oldest first.
    pub fn cycles(
        &self,
        schedule_id: &str,
        states: &[CycleState],
    ) -> Result<Vec<CycleRecord>, BankError> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {CYCLE_COLUMNS} FROM cycles WHERE schedule_id = ?1 ORDER BY cycle_time"
        );
        let mut statement = conn.prepare(&sql)?;
        let rows = statement.query_map([schedule_id], cycle_from_row)?;
        let mut cycles = Vec::new();
        for row in rows {
            let cycle = finish_cycle(row?)?;
            if states.is_empty() || states.contains(&cycle.state) {
                cycles.push(cycle);
            }
        }
        Ok(cycles)
    }

    pub fn cycle(
        &self,
        schedule_id: &str,
        cycle_time: DateTime<Utc>,
    ) -> Result<Option<CycleRecord>, BankError> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {CYCLE_COLUMNS} FROM cycles WHERE schedule_id = ?1 AND cycle_time = ?2"
        );
        let args = params![schedule_id, time::to_text(cycle_time)];
        let raw = conn.query_row(&sql, args, cycle_from_row).optional()?;
        raw.map(finish_cycle).transpose()
    }

    /// Records a backfill range and its cycles in one transaction. Fails with
    /// [`BankError::BackfillOverlap`] when the range overlaps an earlier backfill of the
    /// same schedule that still has pending or submitted cycles. Returns the range and
    /// the number of cycles that were not on record before.
    pub fn add_backfill(
        &self,
        schedule_id: &str,
        (start, end): (DateTime<Utc>, DateTime<Utc>),
        cycles: &[CycleRecord],
        now: DateTime<Utc>,
    ) -> Result<(BackfillRange, usize), BankError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if let Some(existing) = active_overlap(&tx, schedule_id, start, end)? {
            return Err(BankError::BackfillOverlap {
                schedule_id: schedule_id.to_string(),
                start,
                end,
                existing_id: existing.id,
                existing_start: existing.start,
                existing_end: existing.end,
            });
        }
        let id = tx.query_row(
            "INSERT INTO backfills (schedule_id, range_start, range_end, created_at)
             VALUES (?1, ?2, ?3, ?4) RETURNING id",
            params![
                schedule_id,
                time::to_text(start),
                time::to_text(end),
                time::to_text(now)
            ],
            |row| row.get(0),
        )?;
        let inserted = insert_new_cycles(&tx, cycles)?;
        tx.commit()?;
        let range = BackfillRange {
            id,
            schedule_id: schedule_id.to_string(),
            start,
            end,
            created_at: now,
        };
        Ok((range, inserted))
    }
}

/// Finds the first backfill of the schedule that overlaps `start..=end` and still has cycles
/// pending or submitted.
fn active_overlap(
    tx: &Transaction<'_>,
    schedule_id: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Option<BackfillRange>, BankError> {
    let raw = tx
        .query_row(
            "SELECT b.id, b.range_start, b.range_end, b.created_at FROM backfills b
             WHERE b.schedule_id = ?1 AND b.range_start <= ?3 AND b.range_end >= ?2
             AND EXISTS (SELECT 1 FROM cycles c WHERE c.schedule_id = b.schedule_id
                 AND c.cycle_time BETWEEN b.range_start AND b.range_end
                 AND c.state IN ('pending', 'submitted'))
             ORDER BY b.id LIMIT 1",
            params![schedule_id, time::to_text(start), time::to_text(end)],
            |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                ))
            },
        )
        .optional()?;
    let Some((id, range_start, range_end, created_at)) = raw else {
        return Ok(None);
    };
    Ok(Some(BackfillRange {
        id,
        schedule_id: schedule_id.to_string(),
        start: time::from_text("backfills.range_start", &range_start)?,
        end: time::from_text("backfills.range_end", &range_end)?,
        created_at: time::from_text("backfills.created_at", &created_at)?,
    }))
}
