//! Turning due cycle times into cycle records, by the missed-cycle policy.

use chrono::{DateTime, Utc};
use gridcast_bank::{CycleOrigin, CycleRecord, CycleState};

use crate::metrics::add;
use crate::scheduler::{Scheduler, TickError, TickReport};
use crate::spec::{MissedCyclePolicy, Schedule};

/// Cycles enumerated per schedule and tick. After a long outage of a frequent schedule
/// the cursor catches up over several ticks instead of one huge transaction.
const MAX_CYCLES_PER_TICK: usize = 10_000;

/// Decision for one due cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decision {
    pub cycle_time: DateTime<Utc>,
    /// Came due longer than the on-time grace ago.
    pub missed: bool,
    /// `Ok(origin)` to run the cycle, `Err(reason)` to skip it.
    pub action: Result<CycleOrigin, String>,
}

/// Applies the schedule's policy to the due cycle times (oldest first).
pub(crate) fn decide(
    schedule: &Schedule,
    due: &[DateTime<Utc>],
    now: DateTime<Utc>,
    grace: chrono::Duration,
) -> Vec<Decision> {
    let newest = due.last().copied();
    let window = schedule.catch_up_window();
    let policy = schedule.spec.missed_cycles;
    due.iter()
        .map(|&cycle_time| {
            let age = now - cycle_time;
            let missed = age > grace;
            let action = if !missed {
                Ok(CycleOrigin::Cron)
            } else if age > window {
                Err(format!(
                    "missed by {} h, beyond the catch-up window of {} h",
                    age.num_hours(),
                    schedule.spec.catch_up_hours
                ))
            } else {
                match policy {
                    MissedCyclePolicy::RunAll => Ok(CycleOrigin::CatchUp),
                    MissedCyclePolicy::RunLatest if Some(cycle_time) == newest => {
                        Ok(CycleOrigin::CatchUp)
                    }
                    MissedCyclePolicy::RunLatest => Err(
                        "missed; policy run_latest runs only the newest missed cycle".to_string(),
                    ),
                    MissedCyclePolicy::Skip => Err("missed; policy skip".to_string()),
                }
            };
            Decision {
                cycle_time,
                missed,
                action,
            }
        })
        .collect()
}

impl Scheduler {
    /// Records the cycles that came due since the schedule's cursor and moves the cursor,
    /// in one transaction.
    pub(crate) fn plan_due(
        &self,
        schedule: &Schedule,
        cursor: DateTime<Utc>,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) -> Result<(), TickError> {
        let due = schedule
            .rule
            .cycles_between(cursor, now, MAX_CYCLES_PER_TICK);
        let new_cursor = if due.len() == MAX_CYCLES_PER_TICK {
            due.last().copied()
        } else {
            Some(now)
        };
        let grace =
            chrono::Duration::from_std(self.config.on_time_grace).unwrap_or(chrono::Duration::MAX);
        let decisions = decide(schedule, &due, now, grace);
        let records: Vec<CycleRecord> =
            decisions.iter().map(|d| record(schedule, d, now)).collect();
        let inserted = self
            .bank
            .plan_cycles(&schedule.spec.id, new_cursor, &records)?;
        if inserted < records.len() {
            tracing::debug!(
                schedule_id = %schedule.spec.id,
                already_planned = records.len() - inserted,
                "some due cycles were already planned by another scheduler"
            );
        }
        for decision in &decisions {
            log_decision(&schedule.spec.id, decision);
        }
        let missed = decisions.iter().filter(|d| d.missed).count();
        let skipped = decisions.iter().filter(|d| d.action.is_err()).count();
        add(&self.metrics.cycles_planned, decisions.len());
        add(&self.metrics.cycles_missed, missed);
        add(&self.metrics.cycles_skipped, skipped);
        report.planned += decisions.len();
        report.missed += missed;
        report.skipped += skipped;
        Ok(())
    }
}

fn record(schedule: &Schedule, decision: &Decision, now: DateTime<Utc>) -> CycleRecord {
    let (state, origin, reason) = match &decision.action {
        Ok(origin) => (CycleState::Pending, *origin, None),
        Err(reason) => (
            CycleState::Skipped,
            CycleOrigin::CatchUp,
            Some(reason.clone()),
        ),
    };
    CycleRecord {
        schedule_id: schedule.spec.id.clone(),
        cycle_time: decision.cycle_time,
        state,
        origin,
        job_id: None,
        attempt: 1,
        reason,
        planned_at: now,
        updated_at: now,
        verified: false,
    }
}

fn log_decision(schedule_id: &str, decision: &Decision) {
    let cycle_time = decision.cycle_time.to_rfc3339();
    match (&decision.action, decision.missed) {
        (Ok(_), false) => tracing::info!(schedule_id, %cycle_time, "cycle due"),
        (Ok(_), true) => tracing::warn!(schedule_id, %cycle_time, "missed cycle will be caught up"),
        (Err(reason), _) => {
            tracing::warn!(schedule_id, %cycle_time, reason = %reason, "missed cycle skipped")
        }
    }
}
