//! Cycles planned by request rather than by the clock: trigger and backfill.

use chrono::{DateTime, Utc};
use gridcast_bank::{BackfillRange, CycleOrigin, CycleRecord, CycleState};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::scheduler::{Scheduler, load_schedule};
use crate::spec::Schedule;

/// Inclusive range of cycle times to backfill. The HTTP route reads it field by field
/// (`http::parse_backfill`), so that a bad time names its field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillRequest {
    #[serde(deserialize_with = "gridcast_engine::deserialize_utc_time")]
    pub from: DateTime<Utc>,
    #[serde(deserialize_with = "gridcast_engine::deserialize_utc_time")]
    pub to: DateTime<Utc>,
}

/// The result of a backfill request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackfillAccepted {
    pub backfill: BackfillRange,
    /// Cycle times in the range.
    pub cycles: usize,
    /// Cycles that were already on record and are left as they are.
    pub already_planned: usize,
}

impl Scheduler {
    fn active_schedule(&self, id: &str) -> Result<Schedule, ApiError> {
        let row = self
            .bank
            .schedule(id)?
            .ok_or_else(|| ApiError::not_found(id))?;
        if row.paused {
            let message = format!("schedule {id:?} is paused; resume it first");
            return Err(ApiError::conflict("schedule_paused", message));
        }
        load_schedule(&row)
            .map_err(|err| ApiError::invalid("invalid_stored_schedule", err.to_string(), None))
    }

    /// Plans the newest cycle at or before now for immediate submission. A failed or
    /// skipped cycle is planned again as a new attempt with its own idempotency key. A
    /// cycle that is pending, submitted or succeeded is a conflict.
    pub fn trigger(&self, id: &str) -> Result<CycleRecord, ApiError> {
        let schedule = self.active_schedule(id)?;
        let now = self.ports.clock.now();
        let Some(cycle_time) = schedule.rule.latest_at_or_before(now) else {
            let message = format!("schedule {id:?} has no cycle time at or before now");
            return Err(ApiError::conflict("no_cycle", message));
        };
        let mut cycle = self.new_cycle(id, cycle_time, CycleOrigin::Trigger);
        match self.bank.cycle(id, cycle_time)? {
            None => {
                self.bank
                    .plan_cycles(id, None, std::slice::from_ref(&cycle))?;
            }
            Some(existing)
                if matches!(existing.state, CycleState::Failed | CycleState::Skipped) =>
            {
                cycle.attempt = existing.attempt + 1;
                self.bank.update_cycle(&cycle)?;
            }
            Some(existing) => {
                let message = format!(
                    "cycle {} of schedule {id:?} is already {}",
                    cycle_time.to_rfc3339(),
                    existing.state.as_str()
                );
                return Err(ApiError::conflict("cycle_exists", message));
            }
        }
        tracing::info!(schedule_id = id, cycle_time = %cycle_time.to_rfc3339(), attempt = cycle.attempt, "cycle triggered");
        Ok(cycle)
    }

    /// Rejects cycle times outside the dataset's time axis, whose input never arrives.
    fn check_time_span(
        &self,
        schedule: &Schedule,
        times: &[DateTime<Utc>],
    ) -> Result<(), ApiError> {
        let dataset = &schedule.spec.dataset;
        let (Some(earliest), Some(latest)) = (times.first(), times.last()) else {
            return Ok(());
        };
        let Some((first, last)) = self.ports.inputs.time_span(dataset) else {
            let message = format!("dataset {dataset:?} has no analysis times to backfill from");
            return Err(ApiError::invalid("invalid_range", message, Some("from")));
        };
        let field = if *earliest < first {
            "from"
        } else if *latest > last {
            "to"
        } else {
            return Ok(());
        };
        let message = format!(
            "the range has cycles from {} to {}, but the data of dataset {dataset:?} runs \
             from {} to {}; backfill cycles within that span",
            earliest.to_rfc3339(),
            latest.to_rfc3339(),
            first.to_rfc3339(),
            last.to_rfc3339()
        );
        Err(ApiError::invalid("invalid_range", message, Some(field)))
    }

    /// Plans every cycle of the schedule in `from..=to`. Cycles on record are kept, so
    /// a backfill never doubles a cycle. Cycles outside the dataset's time axis are
    /// rejected.
    pub fn backfill(
        &self,
        id: &str,
        request: BackfillRequest,
    ) -> Result<BackfillAccepted, ApiError> {
        let schedule = self.active_schedule(id)?;
        let now = self.ports.clock.now();
        let BackfillRequest { from, to } = request;
        if from > to {
            let message = format!("from {} is after to {}", from.to_rfc3339(), to.to_rfc3339());
            return Err(ApiError::invalid("invalid_range", message, Some("from")));
        }
        if to > now {
            let message = format!(
                "to {} is in the future; the scheduler plans future cycles itself",
                to.to_rfc3339()
            );
            return Err(ApiError::invalid("invalid_range", message, Some("to")));
        }
        let limit = self.config.max_backfill_cycles;
        let mut times =
            schedule
                .rule
                .cycles_between(from - chrono::Duration::seconds(1), to, limit + 1);
        times.retain(|time| *time >= from);
        if times.is_empty() {
            let message = format!(
                "the range {}..{} contains no cycle of rule {:?}",
                from.to_rfc3339(),
                to.to_rfc3339(),
                schedule.spec.cron
            );
            return Err(ApiError::invalid("empty_range", message, Some("from")));
        }
        if times.len() > limit {
            let message = format!(
                "the range contains more than {limit} cycles; split it into smaller backfills"
            );
            return Err(ApiError::invalid("range_too_large", message, Some("to")));
        }
        self.check_time_span(&schedule, &times)?;
        // The data span is fine, but the model may need states before the first cycle.
        if let Some(first) = times.first() {
            self.ports
                .catalog
                .check_cycle(&schedule.request(*first))
                .map_err(|err| {
                    let message = format!(
                        "the first cycle of the range, {}, cannot run: {err}; start the \
                         range later",
                        first.to_rfc3339()
                    );
                    ApiError::invalid("invalid_range", message, Some("from"))
                })?;
        }
        let cycles: Vec<CycleRecord> = times
            .iter()
            .map(|t| self.new_cycle(id, *t, CycleOrigin::Backfill))
            .collect();
        let (backfill, added) = self.bank.add_backfill(id, (from, to), &cycles, now)?;
        tracing::info!(
            schedule_id = id,
            backfill_id = backfill.id,
            cycles = cycles.len(),
            added,
            "backfill planned"
        );
        Ok(BackfillAccepted {
            backfill,
            cycles: cycles.len(),
            already_planned: cycles.len() - added,
        })
    }
}
