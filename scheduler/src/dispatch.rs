//! Tracking submitted jobs, submitting pending cycles, and verifying finished ones.

use chrono::{DateTime, Utc};
use gridcast_bank::{CycleRecord, CycleState, SkillRecord};

use crate::metrics::add;
use crate::ports::{JobState, SubmitError, VerifyTarget};
use crate::scheduler::{Scheduler, TickError, TickReport};
use crate::spec::{Schedule, idempotency_key};

impl Scheduler {
    /// Updates submitted cycles from the job service and returns how many are still in
    /// flight. A lookup failure counts the cycle as in flight, so the runahead limit
    /// still applies while the job service is unreachable.
    pub(crate) async fn refresh_in_flight(
        &self,
        schedule: &Schedule,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) -> Result<u32, TickError> {
        let submitted = self
            .bank
            .cycles(&schedule.spec.id, &[CycleState::Submitted])?;
        let mut in_flight = 0;
        for mut cycle in submitted {
            let Some(job_id) = cycle.job_id.clone() else {
                continue;
            };
            let state = match self.ports.submitter.job_state(job_id.clone()).await {
                Ok(state) => state,
                Err(err) => {
                    tracing::warn!(schedule_id = %cycle.schedule_id, %job_id, error = %err, "job state lookup failed");
                    in_flight += 1;
                    continue;
                }
            };
            let (next, reason) = match state {
                JobState::Queued | JobState::Running => {
                    in_flight += 1;
                    continue;
                }
                JobState::Succeeded => (CycleState::Succeeded, None),
                JobState::Failed { message } => {
                    (CycleState::Failed, Some(format!("job failed: {message}")))
                }
                JobState::Cancelled => (CycleState::Failed, Some("job was cancelled".to_string())),
            };
            cycle.state = next;
            cycle.reason = reason;
            cycle.updated_at = now;
            self.bank.update_cycle(&cycle)?;
            self.note_finished(schedule, &cycle, now, report);
        }
        Ok(in_flight)
    }

    fn note_finished(
        &self,
        schedule: &Schedule,
        cycle: &CycleRecord,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) {
        let cycle_time = cycle.cycle_time.to_rfc3339();
        if cycle.state == CycleState::Succeeded {
            report.succeeded += 1;
            tracing::info!(schedule_id = %cycle.schedule_id, %cycle_time, "cycle succeeded");
        } else {
            report.failed += 1;
            add(&self.metrics.cycles_failed, 1);
            let reason = cycle.reason.as_deref().unwrap_or_default();
            tracing::warn!(schedule_id = %cycle.schedule_id, %cycle_time, reason, "cycle failed");
        }
        if let Some(minutes) = schedule.spec.deadline_minutes {
            let deadline = cycle.cycle_time + chrono::Duration::minutes(i64::from(minutes));
            if now > deadline {
                add(&self.metrics.cycles_late, 1);
                tracing::warn!(schedule_id = %cycle.schedule_id, %cycle_time, deadline = %deadline.to_rfc3339(), "cycle finished after its publish deadline");
            }
        }
    }

    /// Submits pending cycles, oldest first, while fewer than `runahead` are in flight.
    /// A cycle whose input is missing waits, and fails once its input timeout passes.
    pub(crate) async fn submit_pending(
        &self,
        schedule: &Schedule,
        mut in_flight: u32,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) -> Result<(), TickError> {
        let pending = self
            .bank
            .cycles(&schedule.spec.id, &[CycleState::Pending])?;
        let timeout = schedule.input_timeout(self.config.input_timeout);
        for mut cycle in pending {
            if in_flight >= schedule.spec.runahead {
                break;
            }
            if !self
                .ports
                .inputs
                .has_time(&schedule.spec.dataset, cycle.cycle_time)
            {
                if now - cycle.planned_at > timeout {
                    self.fail_input_timeout(schedule, &mut cycle, timeout, now, report)?;
                }
                continue;
            }
            let key = idempotency_key(&schedule.spec.id, cycle.cycle_time, cycle.attempt);
            let request = schedule.request(cycle.cycle_time);
            match self
                .ports
                .submitter
                .submit(request, schedule.spec.priority, key.clone())
                .await
            {
                Ok(job) => {
                    cycle.state = CycleState::Submitted;
                    cycle.job_id = Some(job.job_id.clone());
                    cycle.updated_at = now;
                    self.bank.update_cycle(&cycle)?;
                    in_flight += 1;
                    report.submitted += 1;
                    add(&self.metrics.cycles_submitted, 1);
                    tracing::info!(schedule_id = %schedule.spec.id, job_id = %job.job_id, idempotency_key = %key, created = job.created, "cycle submitted");
                }
                Err(SubmitError::Unavailable { message }) => {
                    tracing::warn!(schedule_id = %schedule.spec.id, idempotency_key = %key, %message, "job service unavailable; retrying next tick");
                    break;
                }
                Err(err) => {
                    cycle.state = CycleState::Failed;
                    cycle.reason = Some(err.to_string());
                    cycle.updated_at = now;
                    self.bank.update_cycle(&cycle)?;
                    self.note_finished(schedule, &cycle, now, report);
                }
            }
        }
        Ok(())
    }

    fn fail_input_timeout(
        &self,
        schedule: &Schedule,
        cycle: &mut CycleRecord,
        timeout: chrono::Duration,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) -> Result<(), TickError> {
        cycle.state = CycleState::Failed;
        cycle.reason = Some(format!(
            "input not available: dataset {} has no data for {} after waiting {} min",
            schedule.spec.dataset,
            cycle.cycle_time.to_rfc3339(),
            timeout.num_minutes()
        ));
        cycle.updated_at = now;
        self.bank.update_cycle(cycle)?;
        add(&self.metrics.cycles_input_timeout, 1);
        self.note_finished(schedule, cycle, now, report);
        Ok(())
    }

    /// Scores succeeded cycles once the dataset contains their last valid time, and
    /// records the scores in the bank.
    pub(crate) async fn verify_finished(
        &self,
        schedule: &Schedule,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) -> Result<(), TickError> {
        let Some(verifier) = &self.ports.verifier else {
            return Ok(());
        };
        let succeeded = self
            .bank
            .cycles(&schedule.spec.id, &[CycleState::Succeeded])?;
        let lead = chrono::Duration::hours(i64::from(schedule.spec.lead_hours));
        for mut cycle in succeeded.into_iter().filter(|c| !c.verified) {
            let (Some(job_id), true) = (
                cycle.job_id.clone(),
                self.ports
                    .inputs
                    .has_time(&schedule.spec.dataset, cycle.cycle_time + lead),
            ) else {
                continue;
            };
            let target = VerifyTarget {
                job_id: job_id.clone(),
                schedule_id: schedule.spec.id.clone(),
                request: schedule.request(cycle.cycle_time),
            };
            let scores = match verifier.score(target).await {
                Ok(scores) => scores,
                Err(err) => {
                    tracing::warn!(schedule_id = %schedule.spec.id, %job_id, error = %err, "verification failed; retrying next tick");
                    continue;
                }
            };
            for score in scores {
                let record = SkillRecord {
                    job_id: job_id.clone(),
                    schedule_id: schedule.spec.id.clone(),
                    variable: score.variable,
                    lead_hours: score.lead_hours,
                    rmse: score.rmse,
                    acc: score.acc,
                    recorded_at: now,
                };
                self.bank.record_skill(&record)?;
            }
            cycle.verified = true;
            cycle.updated_at = now;
            self.bank.update_cycle(&cycle)?;
            report.verified += 1;
            add(&self.metrics.verifications, 1);
        }
        Ok(())
    }
}
